"""What interpreting a pickle stream observed, gathered across the pickles of one stream.

The interpreter appends to a ``Trace``; the parser turns it into facts.  Everything is bounded by
the limits the interpreter enforces (calls beyond ``MAX_CALL_EVENTS`` are counted, not stored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ckptguard.formats.pickle.values import Record, TensorInfo

MAX_CALL_EVENTS = 20_000
MAX_IMPORTS = 100_000  # import records per stream; ordinary pickles memoize their globals
MAX_NOTES = 1_000
RENDER_PER_CALLEE = 50  # calls of one callee rendered in full; later ones as "callee(…)"
CALLS_PER_CALLEE = 50  # call facts kept per named callee (its import fact says it is called)


@dataclass(frozen=True)
class CallEvent:
    callee: str
    kind: str  # reduce | inst | obj | newobj | newobj_ex | setstate
    offset: int
    reconstruction: str
    dynamic: bool  # the callee is not a named global (result of another call, ...)
    on_global: bool = False  # BUILD applied to an imported global itself (patches it)


@dataclass(frozen=True)
class NestedEvent:
    callee: str
    offset: int  # where the bytes start in the stream (the call's offset when built at load)
    size: int
    data: Any  # Blob holding the bytes
    pickle_like: bool  # the deserializer reads pickles (children are scanned as pickles)


@dataclass(frozen=True)
class Note:
    """Extension codes, persistent ids and reader divergences: offset plus a readable detail."""

    offset: int
    detail: str
    extra: tuple[tuple[str, Any], ...] = ()


class LimitHit(Exception):
    def __init__(self, limit: str, value: int, detail: str) -> None:
        super().__init__(detail)
        self.limit = limit
        self.value = value
        self.detail = detail


@dataclass
class Trace:
    records: list[Record] = field(default_factory=list)
    calls: list[CallEvent] = field(default_factory=list)
    calls_dropped: int = 0
    nested: list[NestedEvent] = field(default_factory=list)
    persistent_ids: list[Note] = field(default_factory=list)
    extensions: list[Note] = field(default_factory=list)
    divergences: list[Note] = field(default_factory=list)
    side_files: list[Note] = field(default_factory=list)  # joblib < 0.10 array files
    tensors: list[TensorInfo] = field(default_factory=list)
    joblib_arrays: int = 0
    opcodes: int = 0
    rendered: dict[str, int] = field(default_factory=dict)
    per_callee: dict[str, int] = field(default_factory=dict)
    judged_dropped: int = 0  # calls the rules judge one by one that could not be kept

    def worth_rendering(self, callee: str) -> bool:
        """Whether a call of ``callee`` gets a full reconstruction (the first few do)."""
        seen = self.rendered.get(callee, 0)
        self.rendered[callee] = seen + 1
        return seen < RENDER_PER_CALLEE

    def call(self, event: CallEvent) -> None:
        """Keep a call as a fact.  Calls of a named global repeat (a state dict calls its tensor
        rebuild function once per tensor) and the global's import fact already says it is
        called, so only the first few of each are kept; dynamic calls and BUILDs on globals are
        judged one by one, so every one is kept up to the limit, and past it the stream is
        reported as not fully judged."""
        if event.dynamic or event.on_global:
            if len(self.calls) < MAX_CALL_EVENTS:
                self.calls.append(event)
            else:
                self.judged_dropped += 1
            return
        seen = self.per_callee.get(event.callee, 0)
        self.per_callee[event.callee] = seen + 1
        if seen < CALLS_PER_CALLEE and len(self.calls) < MAX_CALL_EVENTS:
            self.calls.append(event)
        else:
            self.calls_dropped += 1

    def note(self, where: list[Note], note: Note) -> None:
        if len(where) < MAX_NOTES:
            where.append(note)

    def merge(self, other: Trace) -> None:
        self.records.extend(other.records)
        for event in other.calls:
            self.call(event)
        self.calls_dropped += other.calls_dropped
        self.judged_dropped += other.judged_dropped
        self.nested.extend(other.nested)
        self.persistent_ids.extend(other.persistent_ids)
        self.extensions.extend(other.extensions)
        self.divergences.extend(other.divergences)
        self.side_files.extend(other.side_files)
        self.tensors.extend(other.tensors)
        self.joblib_arrays += other.joblib_arrays
        self.opcodes += other.opcodes
