"""The one entry point the CLI and Python users share: ``scan(paths, config) -> ScanResult``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from ckptguard import __version__
from ckptguard.config import Config
from ckptguard.discover import Skipped, discover
from ckptguard.engine.namelists import ListEntry
from ckptguard.engine.ruleset import RuleSet
from ckptguard.model import ArtifactSummary, Finding, ScanResult
from ckptguard.policy import apply_policy, sort_key
from ckptguard.scanner import PASSIVE_FORMATS, Scanner


class ScanError(Exception):
    """A problem with the request itself (e.g. a path that does not exist): exit code 2."""


def load_rules(config: Config) -> RuleSet:
    extra = [ListEntry(name, "configured", "allowed by the project's configuration")
             for name in config.allowed_globals]
    rules = RuleSet.load(extra_list_entries={"safe_globals": extra} if extra else None)
    return rules.only(config.enable, config.disable)


def scan(paths: Iterable[str | os.PathLike[str]], config: Config | None = None, *,
         rules: RuleSet | None = None, baseline: frozenset[str] = frozenset(),
         root: Path | None = None) -> ScanResult:
    """Scan files, folders and archives; never loads or runs anything from them."""
    config = config or Config()
    ruleset = rules or load_rules(config)
    scanner = Scanner(ruleset, config)
    findings: list[Finding] = []
    artifacts: list[ArtifactSummary] = []
    for item in discover(paths, excludes=config.excludes, root=root):
        if isinstance(item, Skipped):
            if item.reason == "no such file or directory":
                raise ScanError(f"{item.path}: {item.reason}")
            continue
        for outcome in scanner.scan(item):
            findings.extend(outcome.findings)
            if outcome.summary.format not in PASSIVE_FORMATS or outcome.findings:
                artifacts.append(outcome.summary)
    kept, suppressed = apply_policy(findings, config, baseline)
    return ScanResult(findings=tuple(sorted(kept, key=sort_key)),
                      artifacts=tuple(artifacts), fail_on=config.fail_on,
                      suppressed=tuple(sorted(suppressed, key=sort_key)),
                      tool_version=__version__, rules_used=tuple(sorted(ruleset.rules)))
