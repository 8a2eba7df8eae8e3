"""Policy: what a project's configuration does to findings after the rules produced them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from fnmatch import fnmatch

from ckptguard.config import Config
from ckptguard.model import Finding


def _ignored(item: Finding, config: Config) -> bool:
    for pattern, rule_ids in config.ignores.items():
        if any(fnmatch(part, pattern) for part in (item.location.path, item.location.artifact)) \
                and ("*" in rule_ids or item.rule_id in rule_ids):
            return True
    return False


def apply_policy(findings: Iterable[Finding], config: Config,
                 baseline: frozenset[str] = frozenset()) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed): severity overrides applied, ignored and baselined findings set aside."""
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for item in findings:
        override = config.severity_overrides.get(item.rule_id)
        if override is not None:
            item = replace(item, severity=override)
        if _ignored(item, config) or item.fingerprint in baseline:
            suppressed.append(item)
        else:
            kept.append(item)
    return kept, suppressed


def sort_key(item: Finding) -> tuple[str, int, int, str, str]:
    return (item.location.artifact, -item.severity, item.location.offset or 0, item.rule_id,
            item.fingerprint)
