"""Turn what the interpreter observed into facts (the contract in README.md)."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import TYPE_CHECKING

from ckptguard.facts import Artifact, Fact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.decompile import MAX_DECOMPILE_BYTES, decompiled_view, suspect
from ckptguard.formats.pickle.names import SNIFFING_LOADERS, canonical
from ckptguard.formats.pickle.side_files import side_file_facts
from ckptguard.formats.pickle.trace import NestedEvent
from ckptguard.formats.pickle.values import Blob
from ckptguard.formats.torchscript_code import STANDARD_NAMESPACES
from ckptguard.source import MemorySource, slice_source

if TYPE_CHECKING:
    from ckptguard.formats.pickle.parser import StreamResult

NESTED_PREFIX = "<nested pickle"
LIMIT = MAX_DECOMPILE_BYTES + 1  # one byte more, so that decompiled_view sees it is too large


INERT_WITHIN = 64  # bytes: how early a stream must break to count as no pickle at all


def archive_class(qualname: str) -> bool:
    """Whether torch.jit.load resolves this name against the archive's own TorchScript code
    (``__torch__.*``) or torch's built-in script classes, instead of importing it."""
    if not qualname.startswith("__torch__."):
        return False
    if qualname.startswith("__torch__.torch.classes."):
        namespace = qualname.split(".")[3] if qualname.count(".") >= 3 else ""
        return namespace in STANDARD_NAMESPACES
    return True


def emit(result: StreamResult, buf: memoryview, artifact: Artifact, ctx: ParseContext,
         output: ParseOutput) -> None:
    where = artifact.location
    trace = result.trace
    trailing = len(buf) - result.trailing_offset if result.trailing_offset >= 0 else 0
    output.add("pickle.stream", where, pickles=result.pickles, protocol=result.protocol,
               trailing_bytes=trailing, trailing_kind=result.trailing_kind or "none",
               trailing_offset=result.trailing_offset, opcodes=trace.opcodes,
               layout=result.layout, joblib_arrays=trace.joblib_arrays)
    views: dict[int, str] = {}
    scripted = artifact.loader == "torchscript"
    for record in trace.records:
        use = record.use
        extra: dict[str, object] = {}
        if scripted and archive_class(record.qualname):
            extra["archive_code"] = True  # resolved against the archive's code, not imported
        if use != "resolver" and suspect(record.qualname):
            index = record.stream_index
            if index not in views and index < len(result.spans):
                start, stop = result.spans[index]
                views[index] = decompiled_view(bytes(buf[start:min(stop, start + LIMIT)]))
            extra["decompiled"] = views.get(index, "unavailable")
        output.add("pickle.import", where.within(offset=record.offset),
                   qualname=record.qualname, module=record.module, name=record.name,
                   raw=record.raw, opcode=record.opcode, offset=record.offset, use=use,
                   resolved_via=record.resolved_via, reconstruction=record.reconstruction,
                   owner=record.owner, member_of=record.member_of, target=record.target,
                   **extra)
    for call in trace.calls:
        # "kind" is an attribute here, so the fact is built directly rather than via add().
        output.facts.append(Fact("pickle.call", where.within(offset=call.offset), MappingProxyType(
            {"callee": call.callee, "kind": call.kind, "offset": call.offset,
             "reconstruction": call.reconstruction, "dynamic": call.dynamic,
             "on_global": call.on_global})))
    for note in trace.persistent_ids:
        output.add("pickle.persistent_id", where.within(offset=note.offset), offset=note.offset,
                   value=note.detail)
    # A stream that breaks within its first bytes, on an opcode every unpickler rejects the same
    # way (not a truncation: the pure-Python unpickler joblib uses reads short FRAMEs on), before
    # it imports or calls anything, runs nothing under any pickle-based loader: it is data of
    # another kind (a msgpack map starts with 0x8?, which reads as EXT or NEWOBJ).
    inert = result.error is not None and not result.error[2] and \
        result.error[0] < INERT_WITHIN and not trace.records and not trace.calls and \
        not trace.nested and not trace.divergences
    for note in trace.extensions:
        output.add("pickle.extension", where.within(offset=note.offset), offset=note.offset,
                   inert=inert, **dict(note.extra))
    for note in trace.divergences:
        output.add("pickle.divergence", where.within(offset=note.offset), offset=note.offset,
                   detail=note.detail)
    for tensor in trace.tensors:
        name = tensor.name
        output.add("torch.tensor", where.within(offset=tensor.offset, tensor=name), name=name,
                   storage_key=tensor.storage_key, storage_dtype=tensor.storage_dtype,
                   dtype=tensor.storage_dtype, shape=tensor.shape, stride=tensor.stride,
                   storage_offset=tensor.storage_offset, numel=math.prod(tensor.shape),
                   storage_location=tensor.location, offset=tensor.offset)
    for event in trace.nested:
        _nested(event, artifact, ctx, output)
    side_file_facts(trace, artifact, output)
    if result.error is not None:
        offset, reason, truncated = result.error
        kind = "truncated" if truncated else "malformed"
        output.add("parse.error", where.within(offset=offset), format="pickle",
                   error=f"{kind} pickle stream at byte {offset}: {reason}", offset=offset,
                   read=offset, unread=len(buf) - offset, truncated=truncated, inert=inert)
    if result.limit is not None:
        output.add("limit.hit", where, limit=result.limit.limit, value=result.limit.value,
                   detail=result.limit.detail)
    if trace.calls_dropped:
        output.add("pickle.calls_summarized", where, dropped=trace.calls_dropped)
    if trace.judged_dropped:
        output.add("limit.hit", where, limit="pickle dynamic calls", value=trace.judged_dropped,
                   detail=f"{trace.judged_dropped} call(s) of computed callables past the "
                          "first 20,000 were not judged one by one")


def _nested(event: NestedEvent, artifact: Artifact, ctx: ParseContext,
            output: ParseOutput) -> None:
    where = artifact.location.within(offset=event.offset)
    contiguous = isinstance(event.data, Blob) and event.data.contiguous
    member = f"{NESTED_PREFIX} @{event.offset}>"
    depth = sum(part.startswith(NESTED_PREFIX) for part in artifact.chain)
    scanned = event.pickle_like and depth < ctx.limits.max_nested_pickle_depth
    # ``nested_artifact`` names the member the bytes are scanned as: the scanner judges the
    # call by what that member holds (see scanner.resolve_nested).
    output.add("pickle.nested", where, callee=event.callee, offset=event.offset, size=event.size,
               pickle=event.pickle_like, stored_as_bytes=contiguous,
               nested_artifact=member if scanned else "")
    if not event.pickle_like:
        return
    if not scanned:
        output.add("limit.hit", where, limit="nested pickle depth",
                   value=ctx.limits.max_nested_pickle_depth,
                   detail=f"pickle bytes passed to {event.callee} at depth {depth + 1} were not "
                          f"scanned")
        return
    if contiguous:
        source = slice_source(artifact.source, event.offset, event.size)
    else:
        source = MemorySource(event.data.data())
    sniffs = canonical(event.callee) in SNIFFING_LOADERS
    output.children.append(artifact.child(member, source,
                                          format_hint=None if sniffs else "pickle",
                                          nested=False))
