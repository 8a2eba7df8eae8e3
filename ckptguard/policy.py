"""Policy: what a project's configuration does to findings after the rules produced them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from fnmatch import fnmatch

from ckptguard.baseline import Baseline, ContentHash
from ckptguard.config import Config
from ckptguard.model import Finding


def _no_hash(path: str) -> str | None:
    return None


def _ignored(item: Finding, config: Config) -> bool:
    for pattern, rule_ids in config.ignores.items():
        if any(fnmatch(part, pattern) for part in (item.location.path, item.location.artifact)) \
                and ("*" in rule_ids or item.rule_id in rule_ids):
            return True
    return False


def _baselined(item: Finding, baseline: frozenset[str] | Baseline,
               content_hash: ContentHash) -> bool:
    if isinstance(baseline, Baseline):
        return baseline.matches(item, content_hash)
    return item.fingerprint in baseline


def apply_policy(findings: Iterable[Finding], config: Config,
                 baseline: frozenset[str] | Baseline = frozenset(),
                 content_hash: ContentHash = _no_hash) -> tuple[list[Finding], list[Finding]]:
    """(kept, suppressed): severity overrides applied, ignored and baselined findings set aside.

    A ``Baseline`` matches by fingerprint plus same path or same content (``content_hash`` maps a
    reported path to the sha256 of its file); a bare set of fingerprints matches anywhere."""
    kept: list[Finding] = []
    suppressed: list[Finding] = []
    for item in findings:
        override = config.severity_overrides.get(item.rule_id)
        if override is not None:
            item = replace(item, severity=override)
        if _ignored(item, config) or _baselined(item, baseline, content_hash):
            suppressed.append(item)
        else:
            kept.append(item)
    return kept, suppressed


def sort_key(item: Finding) -> tuple[str, int, int, str, str]:
    return (item.location.artifact, -item.severity, item.location.offset or 0, item.rule_id,
            item.fingerprint)
