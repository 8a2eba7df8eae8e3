"""The one entry point the CLI and Python users share: ``scan(paths, config) -> ScanResult``.

Policy (configuration, ignores, baselines, the fail-on gate) is applied here, so that the
command line and the Python API always give the same answer.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from ckptguard import __version__
from ckptguard.baseline import Baseline, BaselineError, load_baseline, sha256_file
from ckptguard.config import Config
from ckptguard.discover import FolderSkipped, Skipped, discover
from ckptguard.engine.namelists import ListEntry
from ckptguard.engine.ruleset import RuleSet
from ckptguard.model import ArtifactSummary, Finding, Location, ScanResult
from ckptguard.parallel import Outcomes, ScanUnit, run_units, weight_threads
from ckptguard.policy import apply_policy, sort_key
from ckptguard.progress import ProgressSink
from ckptguard.scanner import PASSIVE_FORMATS


class ScanError(Exception):
    """A problem with the request itself (e.g. a path that does not exist): exit code 2."""


def included_entries(files: Iterable[str]) -> list[ListEntry]:
    """The entries of list files the configuration includes (``allowlist-files``), each keeping
    its own reason."""
    from ckptguard.engine.namelists import load_list_file

    entries: list[ListEntry] = []
    for name in files:
        try:
            listed = load_list_file(Path(name))
        except (ValueError, OSError) as exc:
            raise ScanError(f"{name}: cannot read the allowlist file ({exc})") from None
        entries += [ListEntry(e.pattern, f"included:{Path(name).name}", e.why)
                    for e in listed.entries()]
    return entries


def load_rules(config: Config) -> RuleSet:
    extra = [ListEntry(name, "configured", "allowed by the project's configuration")
             for name in config.allowed_globals]
    extra += included_entries(config.allowlist_files)
    rules = RuleSet.load(extra_list_entries={"safe_globals": extra} if extra else None)
    return rules.only(config.enable, config.disable)


def plan(paths: Iterable[str | os.PathLike[str]], config: Config, *,
         root: Path | None = None, hf_cache: str | os.PathLike[str] | None = None
         ) -> list[ScanUnit]:
    """The top-level artifacts to scan, in a deterministic order."""
    return plan_scan(paths, config, root=root, hf_cache=hf_cache).units


@dataclass(frozen=True)
class Plan:
    units: list[ScanUnit]
    skipped_folders: tuple[str, ...]  # not scanned because of their name (.git …)
    named_files: int  # files (not folders) named explicitly: a pre-commit hook names each one


def plan_scan(paths: Iterable[str | os.PathLike[str]], config: Config, *,
              root: Path | None = None, hf_cache: str | os.PathLike[str] | None = None
              ) -> Plan:
    """The top-level artifacts to scan, the folders skipped by name, the files named."""
    units: list[ScanUnit] = []
    skipped: list[str] = []
    paths = list(paths)
    named = sum(1 for raw in paths if str(raw) == "-" or
                (os.path.lexists(raw) and not os.path.isdir(raw)))
    for item in discover(paths, excludes=config.excludes, root=root,
                         include_skipped=config.include_skipped,
                         max_depth=config.limits.max_tree_depth):
        if isinstance(item, FolderSkipped):
            skipped.append(item.path)
            continue
        if isinstance(item, Skipped):
            if item.reason == "no such file or directory":
                raise ScanError(f"{item.path}: {item.reason}")
            continue
        source_path = getattr(item.source, "path", None)
        units.append(ScanUnit(item, file=source_path if item.directory is None else None))
    if hf_cache is not None:
        from ckptguard.hfcache import CacheError, cache_units, walk_cache

        try:
            snapshots = list(walk_cache(Path(hf_cache), max_files=config.limits.max_repo_files))
        except CacheError as exc:
            raise ScanError(str(exc)) from None
        units.extend(cache_units(snapshots, config.excludes))
    return Plan(units, tuple(skipped), named)


def _renamed(item: Finding, outer: str) -> Finding:
    where = item.location
    return replace(item, location=Location((outer, *where.members), offset=where.offset,
                                           tensor=where.tensor, key=where.key, line=where.line))


def _expand(unit: ScanUnit, outcomes: Outcomes) -> tuple[list[Finding], list[ArtifactSummary]]:
    """Findings and summaries of one unit, repeated under each of its aliases."""
    findings: list[Finding] = []
    artifacts: list[ArtifactSummary] = []
    for outcome in outcomes:
        shown = outcome.summary.format not in PASSIVE_FORMATS or bool(outcome.findings)
        for outer in (unit.artifact.chain[0], *unit.aliases):
            findings.extend(_renamed(f, outer) if outer != unit.artifact.chain[0] else f
                            for f in outcome.findings)
            if shown:
                artifacts.append(replace(outcome.summary,
                                         chain=(outer, *outcome.summary.chain[1:])))
    return findings, artifacts


def _files_on_disk(units: Iterable[ScanUnit]) -> dict[str, str]:
    """Reported outer path -> file on disk (for the content hashes baselines use)."""
    files: dict[str, str] = {}
    for unit in units:
        if unit.file is not None:
            for outer in (unit.artifact.chain[0], *unit.aliases):
                files[outer] = unit.file
    return files


class _Hashes:
    """sha256 of reported paths, computed only when a baseline needs one, at most once each."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files
        self.known: dict[str, str | None] = {}

    def __call__(self, outer: str) -> str | None:
        if outer not in self.known:
            path = self.files.get(outer)
            self.known[outer] = sha256_file(path) if path is not None else None
        return self.known[outer]


def scan(paths: Iterable[str | os.PathLike[str]], config: Config | None = None, *,
         rules: RuleSet | None = None, baseline: frozenset[str] | Baseline | None = None,
         root: Path | None = None, jobs: int | None = None, progress: ProgressSink | None = None,
         hf_cache: str | os.PathLike[str] | None = None) -> ScanResult:
    """Scan files, folders and archives; never loads or runs anything from them.

    ``baseline`` (a loaded ``Baseline``, or a set of fingerprints) defaults to the file named by
    ``config.baseline``; ``jobs`` > 1 scans top-level artifacts in that many processes (0: one
    per CPU), and the CPUs it grants beyond the files (``-j 4`` on one checkpoint) go to the
    weight statistics' threads; ``jobs`` None (the default) scans them one at a time in this
    process, with a checkpoint's weight statistics on every usable CPU, and ``jobs=1`` keeps
    everything on one CPU; ``hf_cache`` adds a Hugging Face hub cache folder, reported by
    repo and revision.

    Files over 64 MiB are read through a memory map, and a mapped file that shrinks while it
    is read (a download still being written, a file replaced in place) raises SIGBUS, which
    ends the process.  The CLI therefore scans in forked workers (its ``--timeout``, 300 s by
    default); here that is ``Config(artifact_timeout=...)``, which turns such a death, like a
    unit past its budget, into SCN003 on that file.  Without it the scan runs in this process,
    which is faster and safe for files that do not change under it.
    """
    config = config or Config()
    if baseline is None and config.baseline:
        try:
            baseline = load_baseline(config.baseline)
        except BaselineError as exc:
            raise ScanError(str(exc)) from None
    ruleset = rules or load_rules(config)
    planned = plan_scan(paths, config, root=root, hf_cache=hf_cache)
    units = planned.units
    threads = weight_threads(jobs, len(units))
    if config.weights and threads > config.weight_threads:
        config = replace(config, weight_threads=threads)
    if progress is not None:
        progress.start(len(units), sum(unit.size for unit in units))
    try:
        outcomes = run_units(units, config, ruleset, jobs=1 if jobs is None else jobs,
                             advance=progress.advance if progress is not None else None)
    finally:
        if progress is not None:
            progress.finish()
    result = assemble(units, outcomes, config, ruleset, baseline)
    # Named files were looked at (a pre-commit hook names a lone config.json); folders that
    # held nothing to judge were not, and a gate pointed at the wrong folder must not pass.
    nothing = not (result.artifacts or result.findings or result.suppressed
                   or planned.named_files)
    return replace(result, skipped_folders=planned.skipped_folders, judged_nothing=nothing)


def assemble(units: Sequence[ScanUnit], outcomes: Sequence[Outcomes], config: Config,
             ruleset: RuleSet, baseline: frozenset[str] | Baseline | None = None) -> ScanResult:
    """One result from the outcomes of each unit (however they were computed: in this process,
    a pool, or a cluster): aliases expanded, policy applied, findings in a stable order."""
    findings: list[Finding] = []
    artifacts: list[ArtifactSummary] = []
    for unit, unit_outcomes in zip(units, outcomes, strict=True):
        more_findings, more_artifacts = _expand(unit, unit_outcomes)
        findings.extend(more_findings)
        artifacts.extend(more_artifacts)
    kept, suppressed = apply_policy(findings, config, baseline or frozenset(),
                                    _Hashes(_files_on_disk(units)))
    return ScanResult(findings=tuple(sorted(kept, key=sort_key)),
                      artifacts=tuple(artifacts), fail_on=config.fail_on,
                      suppressed=tuple(sorted(suppressed, key=sort_key)),
                      tool_version=__version__, rules_used=tuple(sorted(ruleset.rules)))
