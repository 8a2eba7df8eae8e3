"""Running the scan of top-level artifacts, in this process or in a pool of worker processes.

Each worker builds its ``Scanner`` once (rules loaded by the pool initializer), scans whole
top-level artifacts (an archive and its members stay in one worker) and sends back frozen
outcomes.  Results come back in input order whatever order the workers finish in.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptguard.config import Config
from ckptguard.cpus import usable_cpus
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact
from ckptguard.scanner import ArtifactOutcome, Scanner

if TYPE_CHECKING:
    from concurrent.futures import Future

Outcomes = tuple[ArtifactOutcome, ...]
Advance = Callable[[int], None]  # called with the size of each finished unit
MAX_BATCH = 32


@dataclass(frozen=True)
class ScanUnit:
    """One top-level artifact, and the further names the same content is reported under (the
    Hugging Face cache links one blob from several snapshots)."""

    artifact: Artifact
    file: str | None = None  # the file on disk, for content hashes
    aliases: tuple[str, ...] = ()

    @property
    def size(self) -> int:
        return self.artifact.source.size if self.artifact.directory is None else 0


def effective_jobs(jobs: int, units: int) -> int:
    """``jobs`` workers (0: one per CPU), never more than there are units."""
    return max(1, min(_wanted(jobs), units))


def threads_per_worker(jobs: int, units: int) -> int:
    """The CPUs each worker may use inside one artifact (the weight statistics' threads): those
    ``jobs`` grants beyond the workers the units keep busy (one file with ``-j 4``: 4; eight
    files with ``-j 4``: 1 each)."""
    return max(1, _wanted(jobs) // effective_jobs(jobs, units))


def weight_threads(jobs: int | None, units: int) -> int:
    """Threads for one artifact's weight statistics.  ``jobs`` None (no ``--jobs`` given): the
    files are scanned one at a time, so one checkpoint's statistics may use every CPU this
    process may run on.  Unlike torch's threads (the probes size those by the free cores), these
    never spin: BLAS is held to one thread inside each, so on a busy machine they share the
    cores rather than fight for them, and the load average (a minute behind, and counting this
    scan itself) would only take idle cores away.  An explicit ``jobs`` is a promise about CPUs
    and is kept (``-j 1``: one thread)."""
    return usable_cpus() if jobs is None else threads_per_worker(jobs, units)


def _wanted(jobs: int) -> int:
    return (os.cpu_count() or 1) if jobs <= 0 else jobs


# The scanner of this worker process, set once by the pool initializer.  Lives only in worker
# processes: the parent never reads or writes it.
_WORKER: dict[str, Scanner] = {}


def _start_worker(config: Config, rules: RuleSet | None, rule_ids: tuple[str, ...]) -> None:
    if rules is None:  # a process that did not fork: load the rules here, once
        from ckptguard.api import load_rules

        rules = load_rules(config).only(rule_ids)
    _WORKER["scanner"] = Scanner(rules, config)


def _scan_in_worker(artifacts: tuple[Artifact, ...]) -> list[Outcomes]:
    scanner = _WORKER["scanner"]
    return [tuple(scanner.scan(artifact)) for artifact in artifacts]


def batches(count: int, workers: int) -> list[range]:
    """Consecutive index ranges, small enough to balance the workers and large enough that
    inter-process traffic does not dominate when files are small."""
    size = max(1, min(MAX_BATCH, count // (workers * 4)))
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def run_units(units: Sequence[ScanUnit], config: Config, rules: RuleSet, *, jobs: int = 1,
              advance: Advance | None = None,
              start_method: str | None = None) -> list[Outcomes]:
    """Outcomes per unit, in the order of ``units``.  Forked workers inherit ``rules`` through
    the pool initializer; spawned ones load the configured rules once and keep the same ids."""
    workers = effective_jobs(jobs, len(units))
    budget = config.artifact_timeout
    if budget and units:
        from ckptguard.supervise import Supervisor, can_supervise

        if can_supervise():
            # One worker scans everything when jobs is 1 (one fork per scan, not per file).
            plan = [range(len(units))] if workers == 1 else batches(len(units), workers)
            return Supervisor(units, config, rules, workers=workers, budget=budget,
                              advance=advance).run(plan)
    if workers == 1:
        scanner = Scanner(rules, config)
        results: list[Outcomes] = []
        for unit in units:
            results.append(tuple(scanner.scan(unit.artifact)))
            if advance is not None:
                advance(unit.size)
        return results
    # Imported here: a single-process scan (every pre-commit run) never pays for them.
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    gathered: dict[int, Outcomes] = {}
    context = multiprocessing.get_context(start_method)
    inherited = rules if context.get_start_method() == "fork" else None
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker,
                             initargs=(config, inherited, tuple(sorted(rules.rules)))) as pool:
        pending: dict[Future[list[Outcomes]], range] = {
            pool.submit(_scan_in_worker, tuple(units[i].artifact for i in batch)): batch
            for batch in batches(len(units), workers)}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                batch = pending.pop(future)
                for index, outcomes in zip(batch, future.result(), strict=True):
                    gathered[index] = outcomes
                    if advance is not None:
                        advance(units[index].size)
    return [gathered[index] for index in range(len(units))]
