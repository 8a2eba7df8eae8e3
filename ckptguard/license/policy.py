"""The license policy a project configures (``[tool.ckptguard.license]``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KNOWN_KEYS = {"fail-on-conflict", "allowed", "denied", "commercial-use"}


@dataclass(frozen=True)
class LicensePolicy:
    fail_on_conflict: bool = False
    allowed: frozenset[str] = frozenset()  # lower-cased Hub or SPDX ids; empty: no allow-list
    denied: frozenset[str] = frozenset()
    commercial_use: bool = False

    @property
    def configured(self) -> bool:
        return self.fail_on_conflict or bool(self.allowed or self.denied) or self.commercial_use

    @staticmethod
    def from_options(raw: Mapping[str, Any] | None) -> LicensePolicy:
        if not raw:
            return LicensePolicy()
        table = {str(k).replace("_", "-"): v for k, v in raw.items()}
        unknown = set(table) - KNOWN_KEYS
        if unknown:
            raise ValueError(f"unknown license policy keys: {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(KNOWN_KEYS))})")
        def ids(key: str) -> frozenset[str]:
            value = table.get(key) or ()
            items = (value,) if isinstance(value, str) else value  # one id, not its letters
            return frozenset(str(v).lower() for v in items)

        return LicensePolicy(
            fail_on_conflict=bool(table.get("fail-on-conflict", False)),
            allowed=ids("allowed"),
            denied=ids("denied"),
            commercial_use=bool(table.get("commercial-use", False)))

    def matches(self, names: frozenset[str], ids: tuple[str | None, ...]) -> bool:
        return any(i is not None and i.lower() in names for i in ids)
