"""The fleet driver: list, deduplicate, dispatch to Dask workers, gather, resume, report."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ckptguard.api import assemble, load_rules, plan
from ckptguard.config import Config
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact, ParseOutput
from ckptguard.fleet.codec import RESULTS_VERSION, outcomes_from_json, outcomes_to_json
from ckptguard.fleet.storage import LOCAL_PROTOCOLS, expand
from ckptguard.model import ArtifactSummary, ScanResult
from ckptguard.parallel import Outcomes, ScanUnit
from ckptguard.scanner import Scanner
from ckptguard.source import ByteSource


@dataclass(frozen=True)
class FleetSummary:
    files: int  # paths listed
    unique: int  # distinct units after deduplication
    scanned: int  # units scanned in this run
    resumed: int  # units taken from the results file
    failed: int  # units reported as not scanned
    seconds: float

    def line(self) -> str:
        return (f"fleet: {self.files} file(s), {self.unique} unique, {self.scanned} scanned, "
                f"{self.resumed} resumed, {self.failed} not scanned, {self.seconds:.1f} s")


def _is_remote(url: str) -> bool:
    protocol = url.split("://", 1)[0] if "://" in url else ""
    return bool(protocol) and protocol not in LOCAL_PROTOCOLS


def _remote_units(urls: Sequence[str], config: Config, storage_options: Mapping[str, Any]
                  ) -> tuple[list[ScanUnit], dict[str, str]]:
    """Units for remote files, and the content hashes their storage already knows."""
    files = expand(urls, storage_options=storage_options, excludes=config.excludes,
                   max_files=config.limits.max_repo_files * 10)
    units = [ScanUnit(Artifact((f.url,), f.source(config.limits.max_member_size)))
             for f in files]
    return units, {f.url: f.content_hash for f in files if f.content_hash is not None}


def hash_source(source: ByteSource, chunk: int = 1 << 22) -> str:
    """sha256 of a source's content, read in ranges (runs on a worker)."""
    import hashlib

    digest = hashlib.sha256()
    offset = 0
    while offset < source.size:
        block = source.read(offset, chunk)
        if not block:
            break
        digest.update(block)
        offset += len(block)
    return digest.hexdigest()


def _content_hashes(client: Any, units: Sequence[ScanUnit],
                    known: Mapping[str, str]) -> dict[int, str]:
    """Hashes for units that could be duplicates (another unit has the same size); hashes the
    storage already knows are used as they are, the others are computed on the workers."""
    by_size: dict[int, list[int]] = defaultdict(list)
    for index, unit in enumerate(units):
        if unit.artifact.directory is None:
            by_size[unit.size].append(index)
    candidates = [i for group in by_size.values() if len(group) > 1 for i in group]
    hashes = {i: known[units[i].artifact.chain[0]] for i in candidates
              if units[i].artifact.chain[0] in known}
    missing = [i for i in candidates if i not in hashes]
    if missing:
        futures = client.map(hash_source, [units[i].artifact.source for i in missing],
                             pure=False)
        hashes.update(zip(missing, (f"sha256:{h}" for h in client.gather(futures)),
                          strict=True))
    return hashes


def deduplicate(units: Sequence[ScanUnit], hashes: Mapping[int, str]) -> list[ScanUnit]:
    """One unit per distinct content; the other paths become its aliases."""
    groups: dict[str, list[int]] = defaultdict(list)
    merged: list[ScanUnit] = []
    for index, unit in enumerate(units):
        if index in hashes:
            groups[hashes[index]].append(index)
        else:
            merged.append(unit)
    for members in groups.values():
        first = units[members[0]]
        aliases = tuple(a for i in members for a in (units[i].artifact.chain[0],
                                                      *units[i].aliases))[1:]
        merged.append(ScanUnit(first.artifact, first.file, (*first.aliases, *aliases)))
    return sorted(merged, key=lambda u: u.artifact.chain[0])


def _unit_key(unit: ScanUnit) -> str:
    return f"{unit.artifact.chain[0]}|{unit.size}|{','.join(unit.aliases)}"


def _scan_task(artifact: Artifact, config: Config) -> Outcomes:
    """Runs on a worker: the same scanner a single-process scan uses."""
    return tuple(Scanner(load_rules(config), config).scan(artifact))


def _not_scanned(rules: RuleSet, unit: ScanUnit, reason: str) -> Outcomes:
    from ckptguard.scanner import ArtifactOutcome

    output = ParseOutput()
    output.add("scanner.not_scanned", unit.artifact.location, reason=reason)
    findings = tuple(rules.evaluate("*", unit.artifact, output))
    summary = ArtifactSummary(unit.artifact.chain, "not-scanned", unit.size)
    return (ArtifactOutcome(summary, findings),)


def _load_results(path: Path | None) -> dict[str, Outcomes]:
    if path is None or not path.exists():
        return {}
    done: dict[str, Outcomes] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if record.get("version") != RESULTS_VERSION:
                raise ValueError(f"results version {record.get('version')!r}")
            done[str(record["key"])] = outcomes_from_json(record["outcomes"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{number}: not a ckptguard fleet result ({exc})") from None
    return done


class _Tracker:
    """Per-task time limits: a task counts from when a worker is first seen running it."""

    def __init__(self, client: Any, limit: float | None) -> None:
        self.client = client
        self.limit = limit
        self.started: dict[str, float] = {}

    def overdue(self, keys: Iterable[str]) -> set[str]:
        if self.limit is None:
            return set()
        now = time.monotonic()
        running = {str(k) for keys_on in self.client.processing().values() for k in keys_on}
        late = set()
        for key in keys:
            if key in running:
                started = self.started.setdefault(key, now)
                if now - started > self.limit:
                    late.add(key)
        return late


def _dispatch(client: Any, todo: Sequence[ScanUnit], config: Config, rules: RuleSet, *,
              retries: int, timeout: float | None,
              record: Callable[[ScanUnit, Outcomes], None]) -> int:
    """Scan ``todo`` on the cluster; returns how many units ended up not scanned."""
    import distributed

    wait: Any = distributed.wait
    attempts: dict[int, int] = defaultdict(int)
    futures: dict[str, int] = {}

    def submit(index: int) -> None:
        attempts[index] += 1
        future = client.submit(_scan_task, todo[index].artifact, config, pure=False,
                               retries=retries)
        futures[future.key] = index
        handles[future.key] = future

    handles: dict[str, Any] = {}
    for index in range(len(todo)):
        submit(index)
    tracker = _Tracker(client, timeout)
    failed = 0
    while handles:
        with contextlib.suppress(TimeoutError):  # none finished: check the time limits
            wait(list(handles.values()), timeout=0.5, return_when="FIRST_COMPLETED")
        for future in [f for f in handles.values() if f.done()]:
            index = futures.pop(future.key)
            handles.pop(future.key)
            if future.status == "finished":
                record(todo[index], future.result())
            else:
                failed += 1
                reason = f"the task failed after {retries + 1} attempt(s): " \
                         f"{type(future.exception()).__name__}: {future.exception()}"[:300]
                record(todo[index], _not_scanned(rules, todo[index], reason))
        for key in tracker.overdue(list(handles)):
            index = futures.pop(key)
            handles.pop(key).cancel()
            if attempts[index] <= retries:
                submit(index)
            else:
                failed += 1
                record(todo[index], _not_scanned(
                    rules, todo[index], f"timed out after {timeout:.0f} s, "
                                        f"{attempts[index]} attempt(s)"))
    return failed


def fleet_scan(urls: Sequence[str], client: Any, config: Config | None = None, *,
               results_file: str | os.PathLike[str] | None = None, retries: int = 1,
               timeout: float | None = None, storage_options: Mapping[str, Any] | None = None,
               root: Path | None = None) -> tuple[ScanResult, FleetSummary]:
    """Scan local paths and fsspec URLs on a Dask cluster; the result equals a local scan's."""
    started = time.monotonic()
    config = config or Config()
    rules = load_rules(config)
    local = [u for u in urls if not _is_remote(u)]
    remote = [u for u in urls if _is_remote(u)]
    units = plan([u.removeprefix("file://") for u in local], config, root=root) if local else []
    known: dict[str, str] = {}
    if remote:
        remote_units, known = _remote_units(remote, config, storage_options or {})
        units += remote_units
    unique = deduplicate(units, _content_hashes(client, units, known))
    results_path = Path(results_file) if results_file is not None else None
    previous = _load_results(results_path)
    outcomes: dict[str, Outcomes] = {}
    todo = []
    for unit in unique:
        key = _unit_key(unit)
        if key in previous:
            outcomes[key] = previous[key]
        else:
            todo.append(unit)
    log = results_path.open("a", encoding="utf-8") if results_path is not None else None

    def record(unit: ScanUnit, result: Outcomes) -> None:
        key = _unit_key(unit)
        outcomes[key] = result
        if log is not None:
            log.write(json.dumps({"version": RESULTS_VERSION, "key": key,
                                  "outcomes": outcomes_to_json(result)}) + "\n")
            log.flush()

    try:
        failed = _dispatch(client, todo, config, rules, retries=retries, timeout=timeout,
                           record=record) if todo else 0
    finally:
        if log is not None:
            log.close()
    ordered = [outcomes[_unit_key(unit)] for unit in unique]
    result = assemble(unique, ordered, config, rules)
    summary = FleetSummary(files=len(units), unique=len(unique), scanned=len(todo),
                           resumed=len(unique) - len(todo), failed=failed,
                           seconds=time.monotonic() - started)
    return result, summary
