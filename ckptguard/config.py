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

DIGEST_AUTO_BYTES = 64 * 1024**2  # artifacts up to this size always get their SHA-256


def exclude_globs(patterns: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Exclude patterns as people write them: ``models/tmp``, ``models/tmp/`` and
    ``./models/tmp`` all name the folder and everything under it (as ``models/tmp/**``)."""
    out: list[str] = []
    for pattern in patterns:
        text = pattern.replace("\\", "/")
        while text.startswith("./"):
            text = text[2:]
        text = text.rstrip("/") or pattern
        candidates = [text]
        if not text.endswith("*"):
            candidates.append(f"{text}/**")
        out += [c for c in candidates if c not in out]
    return tuple(out)


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
    include_skipped: bool = False  # also scan folders skipped by name (.git, venv, node_modules …)
    # Seconds per top-level artifact, in a worker that can be stopped; None or 0: no budget (the
    # command line's default is 300 s unless the configuration file sets one).
    artifact_timeout: float | None = None
    # SHA-256 of every artifact, however large (reads all its bytes); otherwise only artifacts
    # up to DIGEST_AUTO_BYTES get one, so a checkpoint costs its directory, not its weights.
    digests: bool = False
    # Threads the weight statistics of one artifact may use (``scan`` sets it from ``jobs``:
    # the CPUs granted beyond the worker processes the files keep busy).
    weight_threads: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "excludes", exclude_globs(self.excludes))

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
            "digests": self.digests,
            "include-skipped": self.include_skipped,
            "timeout": self.artifact_timeout,
            "base": self.base,
            "baseline": self.baseline,
            "license": dict(self.license_policy),
            "limits": limits,
            "source": self.source,
        }
