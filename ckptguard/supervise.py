"""Scanning in worker processes that can be stopped: a wall-clock budget per top-level artifact.

A parser that loops, a decompressor that never ends, or a file truncated under a memory map
(SIGBUS) must cost one artifact, not the scan.  Each worker is a forked copy of this process
(rules already loaded, nothing to import) that scans a batch of units one after another and
sends each unit's outcomes back as soon as it has them.  The parent waits on every worker with
a deadline: a worker past its unit's budget is killed, a worker that dies is noticed, and in
both cases that one unit is reported as not scanned (SCN003) while the rest of its batch goes to
a fresh worker.  Outcomes come back in input order whatever order the workers finish in.
"""

from __future__ import annotations

import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING

from ckptguard.config import Config
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import ParseOutput
from ckptguard.model import ArtifactSummary
from ckptguard.scanner import ArtifactOutcome, Scanner

if TYPE_CHECKING:
    from multiprocessing.context import ForkProcess

    from ckptguard.parallel import Outcomes, ScanUnit

Advance = Callable[[int], None]


def can_supervise() -> bool:
    """Workers are forked (they inherit the loaded rules for free); without fork, no budget."""
    return "fork" in multiprocessing.get_all_start_methods()


def not_scanned(rules: RuleSet, unit: ScanUnit, reason: str) -> Outcomes:
    """The outcome of a unit that could not be judged: one SCN003 finding on its path."""
    output = ParseOutput()
    output.add("scanner.not_scanned", unit.artifact.location, reason=reason)
    findings = tuple(rules.evaluate("*", unit.artifact, output))
    return (ArtifactOutcome(ArtifactSummary(unit.artifact.chain, "not-scanned", unit.size),
                            findings),)


def _work(connection: Connection, scanner: Scanner, units: Sequence[ScanUnit],
          indexes: tuple[int, ...]) -> None:
    """In the worker: scan each unit, send ``(index, outcomes)`` after each one."""
    try:
        for index in indexes:
            connection.send((index, tuple(scanner.scan(units[index].artifact))))
    finally:
        connection.close()


def death_reason(code: int | None) -> str:
    if code is not None and code < 0:
        number = -code
        name = signal.Signals(number).name if number in signal.valid_signals() else str(number)
        why = " (the file changed or shrank while it was read)" if number == signal.SIGBUS else \
            " (out of memory?)" if number == signal.SIGKILL else ""
        return f"the scanning process was killed by {name}{why}"
    return f"the scanning process ended unexpectedly (exit status {code})"


@dataclass
class _Worker:
    process: ForkProcess
    connection: Connection
    todo: deque[int]  # indexes still to be reported, the one being scanned first
    deadline: float = field(default=0.0)


class Supervisor:
    """Runs ``units`` in at most ``workers`` forked processes with ``budget`` seconds each."""

    def __init__(self, units: Sequence[ScanUnit], config: Config, rules: RuleSet, *,
                 workers: int, budget: float, advance: Advance | None = None) -> None:
        self.units = units
        self.rules = rules
        self.scanner = Scanner(rules, config)
        self.workers = max(1, workers)
        self.budget = budget
        self.advance = advance
        self.context = multiprocessing.get_context("fork")
        self.gathered: dict[int, Outcomes] = {}

    def run(self, batches: Sequence[Sequence[int]]) -> list[Outcomes]:
        waiting: deque[tuple[int, ...]] = deque(tuple(batch) for batch in batches if batch)
        running: list[_Worker] = []
        try:
            while waiting or running:
                while waiting and len(running) < self.workers:
                    running.append(self._start(waiting.popleft()))
                self._step(running, waiting)
        finally:
            for worker in running:
                self._stop(worker)
        return [self.gathered[index] for index in range(len(self.units))]

    def _start(self, indexes: tuple[int, ...]) -> _Worker:
        receive, send = self.context.Pipe(duplex=False)
        process = self.context.Process(target=_work, daemon=True,
                                       args=(send, self.scanner, self.units, indexes))
        process.start()
        send.close()
        return _Worker(process, receive, deque(indexes), time.monotonic() + self.budget)

    def _step(self, running: list[_Worker], waiting: deque[tuple[int, ...]]) -> None:
        now = time.monotonic()
        timeout = max(0.0, min(worker.deadline for worker in running) - now)
        ready = wait([worker.connection for worker in running], timeout=timeout)
        for worker in list(running):
            if worker.connection in ready:
                try:
                    index, outcomes = worker.connection.recv()
                except (EOFError, OSError):
                    worker.process.join()
                    self._lose(worker, running, waiting,
                               death_reason(worker.process.exitcode))
                    continue
                self._record(index, outcomes)
                worker.todo.popleft()
                worker.deadline = time.monotonic() + self.budget
                if not worker.todo:
                    running.remove(worker)
                    self._stop(worker)
            elif time.monotonic() >= worker.deadline:
                self._lose(worker, running, waiting,
                           f"ran past the time limit of {self.budget:g} s per file "
                           "(raise --timeout, or scan it on its own)")

    def _lose(self, worker: _Worker, running: list[_Worker], waiting: deque[tuple[int, ...]],
              reason: str) -> None:
        """The unit being scanned is reported as not scanned; the rest of the batch restarts."""
        self._stop(worker)
        running.remove(worker)
        if not worker.todo:
            return
        lost = worker.todo.popleft()
        self._record(lost, not_scanned(self.rules, self.units[lost], reason))
        if worker.todo:
            waiting.appendleft(tuple(worker.todo))

    def _record(self, index: int, outcomes: Outcomes) -> None:
        self.gathered[index] = outcomes
        if self.advance is not None:
            self.advance(self.units[index].size)

    @staticmethod
    def _stop(worker: _Worker) -> None:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.connection.close()
