"""``parse(artifact, ctx) -> ParseOutput`` for pickle streams (one or several pickles in a row).

Runs the symbolic machine over every pickle of the stream, then turns what it saw into facts
(see README.md in this package for the contract).  Nothing from the file is ever imported, loaded
or called.  Errors and limits become facts; what ran before them keeps its facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.facts import emit
from ckptguard.formats.pickle.filemode import add_file_reading
from ckptguard.formats.pickle.interpreter import Machine
from ckptguard.formats.pickle.legacy import storage_keys, tensor_refs
from ckptguard.formats.pickle.reader import ARG_READERS, ReadError, iter_ops
from ckptguard.formats.pickle.trace import LimitHit, Trace
from ckptguard.source import slice_source

TORCH_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
TORCH_LEGACY_PICKLES = 5  # magic, protocol version, sys info, the object, storage keys
TORCH_LEGACY_OBJECT = 3  # the index of the object's pickle among them


@dataclass
class StreamResult:
    trace: Trace
    pickles: int = 0
    protocol: int = 0
    layout: str = "plain"  # plain | torch-legacy | joblib
    trailing_offset: int = -1
    trailing_kind: str = ""  # unknown | torch-storages
    error: tuple[int, str, bool] | None = None  # offset, reason, truncated
    limit: LimitHit | None = None
    spans: list[tuple[int, int]] = field(default_factory=list)  # (start, end) of each pickle


def _starts_pickle(buf: memoryview, pos: int) -> bool:
    """Bytes after a STOP are read as another pickle only when they can begin one."""
    code = buf[pos]
    if code == 0x80:
        return pos + 1 < len(buf) and buf[pos + 1] <= 5
    return ARG_READERS[code] is not None and code != 0x2E


def _run(buf: memoryview, pos: int, ctx: ParseContext, result: StreamResult) -> int | None:
    """One pickle at ``pos``; its facts join the stream's.  The offset after its STOP, or None
    when the stream ends here (error, limit, or bytes after a STOP that are no pickle)."""
    base = result.trace.opcodes
    trace = Trace(opcodes=base)
    # torch's legacy loader reads the fourth pickle (the object) with its persistent_load.
    machine = Machine(buf, trace, ctx.limits.for_pickle_stream(len(buf)),
                      torch_modules=result.layout == "torch-legacy" and
                      result.pickles == TORCH_LEGACY_OBJECT)
    try:
        after = machine.run(pos)
    except ReadError as exc:
        if result.pickles and not trace.records and not trace.calls and buf[pos] != 0x80:
            result.trailing_offset, result.trailing_kind = pos, "unknown"
            return None
        result.error = (getattr(exc, "offset", pos), exc.reason, exc.truncated)
        after = None
    except LimitHit as hit:
        result.limit = hit
        after = None
    trace.opcodes -= base
    for record in trace.records:
        record.stream_index = result.pickles
    result.trace.merge(trace)
    result.spans.append((pos, after if after is not None else len(buf)))
    result.pickles += 1
    result.protocol = max(result.protocol, machine.proto)
    if result.pickles == 1 and after is not None and machine.result == TORCH_LEGACY_MAGIC:
        result.layout = "torch-legacy"
    return after


def interpret_stream(buf: memoryview, ctx: ParseContext) -> StreamResult:
    result = StreamResult(Trace())
    end = len(buf)
    pos: int | None = 0
    limits = ctx.limits
    while pos is not None and (pos < end or result.pickles == 0):
        if result.pickles >= limits.max_pickles_per_stream:
            result.limit = LimitHit("pickles per stream", limits.max_pickles_per_stream,
                                    f"more than {limits.max_pickles_per_stream} pickles in one "
                                    f"stream; stopped at byte {pos}")
            break
        if result.layout == "torch-legacy" and result.pickles >= TORCH_LEGACY_PICKLES:
            result.trailing_offset, result.trailing_kind = pos, "torch-storages"
            break
        if result.pickles and not _starts_pickle(buf, pos):
            result.trailing_offset, result.trailing_kind = pos, "unknown"
            break
        pos = _run(buf, pos, ctx, result)
    if result.layout == "plain" and result.trace.joblib_arrays:
        result.layout = "joblib"
    return result


EMBEDDED_SEARCH_BYTES = 16 * 1024**2  # how far into unexplained trailing bytes to look
MAX_EMBEDDED = 32
EMBEDDED_START = re.compile(rb"\x80[\x02-\x05]|c[A-Za-z_][A-Za-z0-9_.]*\n[A-Za-z_][A-Za-z0-9_.]*\n")


def embedded_pickles(buf: memoryview, start: int) -> list[int]:
    """Offsets after ``start`` where a further pickle begins inside bytes the stream does not
    explain (a loader that seeks past a gap would read it): candidates confirmed by the probe."""
    from ckptguard.formats.pickle.probe import reads_as_pickle

    region = bytes(buf[start:start + EMBEDDED_SEARCH_BYTES])
    view = memoryview(region)
    found: list[int] = []
    position = 0
    while len(found) < MAX_EMBEDDED:
        match = EMBEDDED_START.search(region, position)
        if match is None:
            break
        at = match.start()
        if not reads_as_pickle(region[at:at + 4096]):
            position = at + 1
            continue
        found.append(start + at)
        position = _end_of_pickle(view, at)
    return found


def _end_of_pickle(view: memoryview, at: int) -> int:
    """Where the pickle starting at ``at`` ends (after its STOP), so that the search does not
    report the inside of a pickle it already found; one past ``at`` when it cannot tell."""
    position = at
    try:
        for count, op in enumerate(iter_ops(view, at)):
            position = op.end
            if count > 1_000_000:
                break
    except ReadError:
        return max(position, at + 1)
    return position


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    """Facts for a pickle stream; works on files and on members (e.g. ``archive/data.pkl``)."""
    buf = artifact.source.view()
    output = ParseOutput()
    result = interpret_stream(buf, ctx)
    emit(result, buf, artifact, ctx, output)
    add_file_reading(buf, result, artifact, ctx, output)
    if result.trailing_kind == "unknown" and result.trailing_offset >= 0:
        for offset in embedded_pickles(buf, result.trailing_offset):
            output.children.append(artifact.child(
                f"<pickle @{offset}>", slice_source(artifact.source, offset, len(buf) - offset),
                format_hint="pickle"))
    if ctx.want_tensors and result.layout == "torch-legacy" and result.trailing_offset >= 0 \
            and len(result.spans) >= TORCH_LEGACY_PICKLES:
        keys = storage_keys(buf, result.spans[TORCH_LEGACY_PICKLES - 1][0])
        output.tensors.extend(tensor_refs(artifact, buf, keys, result.trailing_offset,
                                          result.trace.tensors))
    if result.layout != "plain":
        output.format = result.layout
    return output
