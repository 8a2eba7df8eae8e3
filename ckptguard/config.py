"""Configuration: what a project decides about rules, paths and the gate.

Read from ``[tool.ckptguard]`` in ``pyproject.toml`` or from ``.ckptguard.toml`` (see
``ckptguard.config_file``); the CLI and the Python API take the same ``Config``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ckptguard.limits import DEFAULT_LIMITS, Limits
from ckptguard.model import Severity


@dataclass(frozen=True)
class Config:
    fail_on: Severity = Severity.HIGH
    enable: tuple[str, ...] | None = None  # only these rule ids (None: all)
    disable: tuple[str, ...] = ()
    severity_overrides: Mapping[str, Severity] = field(default_factory=dict)
    ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # glob -> rule ids/"*"
    allowed_globals: tuple[str, ...] = ()  # extra safe globals, wildcards allowed
    allowlist_files: tuple[str, ...] = ()  # list files (`ckptguard allowlist build` output)
    excludes: tuple[str, ...] = ()
    weights: bool = False  # run weight statistics
    base: str | None = None  # base checkpoint to diff against
    license_policy: Mapping[str, Any] = field(default_factory=dict)
    baseline: str | None = None
    limits: Limits = DEFAULT_LIMITS
    source: str | None = None  # where the configuration was read from

    def as_dict(self) -> dict[str, Any]:
        """The effective configuration as plain data, keyed as in the configuration file."""
        limits = {name.replace("_", "-"): value
                  for name, value in asdict(self.limits).items()}
        return {
            "fail-on": self.fail_on.label,
            "enable": list(self.enable) if self.enable is not None else None,
            "disable": list(self.disable),
            "severity": {rule: level.label for rule, level in
                         sorted(self.severity_overrides.items())},
            "ignore": {glob: list(ids) for glob, ids in self.ignores.items()},
            "allowed-globals": list(self.allowed_globals),
            "allowlist-files": list(self.allowlist_files),
            "exclude": list(self.excludes),
            "weights": self.weights,
            "base": self.base,
            "baseline": self.baseline,
            "license": dict(self.license_policy),
            "limits": limits,
            "source": self.source,
        }
