"""safetensors: an 8-byte little-endian header length, a JSON header, then one data buffer.

The header length is checked against the file size and ``Limits.max_header_bytes`` before a byte
of it is read.  The header is validated the way the reference loader validates it (known dtypes,
shapes, byte ranges that exactly tile the buffer) and a little more strictly (duplicate keys,
``__metadata__`` holding only strings).  Tensor bytes are never read; bytes after the buffer are
examined for another format (a polyglot) and handed to the scanner as a nested artifact.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ckptguard.facts import Artifact, ParseOutput, TensorRef
from ckptguard.formats import ParseContext
from ckptguard.formats.appended import appended_formats
from ckptguard.license.embedded import lineage_facts
from ckptguard.source import slice_source

# dtype -> bits per element (safetensors 0.6+: sub-byte floats pack densely).
DTYPE_BITS: Mapping[str, int] = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E4M3": 8, "F8_E5M2": 8, "F8_E4M3FNUZ": 8,
    "F8_E5M2FNUZ": 8, "F8_E8M0": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6,
    "I16": 16, "U16": 16, "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32,
    "F64": 64, "I64": 64, "U64": 64, "C64": 64,
}
NUMPY_NAMES: Mapping[str, str] = {
    "BOOL": "bool", "U8": "uint8", "I8": "int8", "I16": "int16", "U16": "uint16",
    "F16": "float16", "BF16": "bfloat16", "I32": "int32", "U32": "uint32", "F32": "float32",
    "F64": "float64", "I64": "int64", "U64": "uint64", "C64": "complex64",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
}
LICENSE_KEYS = {"license", "modelspec.license", "license_name", "license_link", "license_url",
                "general.license"}
METADATA_KEY = "__metadata__"
MAX_FACT_VALUE = 500  # characters of a metadata value kept in a fact
MAX_METADATA_IN_FACT = 100  # metadata entries summarised in the header fact
MAX_PER_PROBLEM = 100  # violation facts kept per kind of problem


class HeaderError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise HeaderError(f"non-standard JSON constant {name}")


def decode_header(raw: bytes) -> tuple[Any, list[str]]:
    """The header's JSON value and the keys that were duplicated.  Raises HeaderError."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HeaderError(f"header is not UTF-8 (byte {exc.start})") from None
    if not text.startswith("{"):
        raise HeaderError("header does not begin with '{'")
    duplicates: list[str] = []  # keys seen twice in one object, at any depth

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        value = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except RecursionError:
        raise HeaderError("header JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, over-long integer literals
        raise HeaderError(f"header is not valid JSON: {exc}"[:300]) from None
    return value, duplicates


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


@dataclass(frozen=True)
class Violation:
    problem: str
    key: str
    detail: str


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_entry(name: str, info: object) -> TensorEntry | Violation:
    """One tensor's header entry, or the first rule it breaks."""
    if not isinstance(info, Mapping):
        return Violation("tensor-entry", name, "tensor entry is not a JSON object")
    missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
    if missing:
        return Violation("tensor-entry", name, f"tensor entry lacks {', '.join(missing)}")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BITS:
        return Violation("dtype", name, f"unknown dtype {str(dtype)[:40]!r}")
    if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
        return Violation("shape", name, f"shape {str(shape)[:80]} is not a list of "
                                        "non-negative integers")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(
            _is_int(o) and o >= 0 for o in offsets) or offsets[0] > offsets[1]:
        return Violation("offsets", name, f"data_offsets {str(offsets)[:80]} is not "
                                          "[begin, end] with 0 <= begin <= end")
    bits = math.prod(shape) * DTYPE_BITS[dtype]
    begin, end = offsets
    if bits % 8 or bits // 8 != end - begin:
        return Violation("size-mismatch", name,
                         f"{dtype} shape {shape} needs {bits / 8:g} bytes but data_offsets "
                         f"span {end - begin}")
    return TensorEntry(name, dtype, tuple(shape), begin, end)


def check_layout(entries: list[TensorEntry], buffer_size: int) -> Iterator[Violation]:
    """Byte ranges inside the buffer, not overlapping, with no holes between them."""
    cursor = 0
    previous = ""
    for entry in sorted(entries, key=lambda e: (e.begin, e.end, e.name)):
        if entry.end > buffer_size:
            yield Violation("out-of-bounds", entry.name,
                            f"data_offsets end at {entry.end} but the data buffer holds "
                            f"{buffer_size} bytes")
        if entry.begin < cursor:
            yield Violation("overlap", entry.name,
                            f"bytes {entry.begin}..{entry.end} overlap tensor {previous!r} "
                            f"(which ends at {cursor})")
        elif entry.begin > cursor:
            yield Violation("hole", entry.name,
                            f"{entry.begin - cursor} unreferenced bytes before this tensor "
                            f"(from {cursor})")
        if entry.end > cursor:
            cursor, previous = entry.end, entry.name


def check_metadata(value: object) -> tuple[dict[str, str], list[Violation]]:
    if not isinstance(value, Mapping):
        return {}, [Violation("metadata", METADATA_KEY, "__metadata__ is not a JSON object")]
    kept: dict[str, str] = {}
    problems = []
    for key, item in value.items():
        if isinstance(item, str):
            kept[key] = item
        else:
            problems.append(Violation("metadata", f"{METADATA_KEY}.{key}",
                                      f"metadata value is {type(item).__name__}, not a string"))
    return kept, problems


class _Emitter:
    def __init__(self, artifact: Artifact) -> None:
        self.out = ParseOutput(format="safetensors")
        self.where = artifact.location
        self.counts: dict[str, int] = {}

    def violation(self, v: Violation, offset: int | None = None) -> None:
        """Record a violation; past MAX_PER_PROBLEM of one kind only the count grows (a hostile
        header with a million bad entries must not cost a million facts)."""
        seen = self.counts[v.problem] = self.counts.get(v.problem, 0) + 1
        if seen > MAX_PER_PROBLEM:
            return
        if seen == MAX_PER_PROBLEM:
            v = Violation(v.problem, v.key, v.detail + " (further ones of this kind not listed)")
        tensor = None if v.key.startswith(METADATA_KEY) or not v.key else v.key
        key = v.key if tensor is None and v.key else None
        self.out.add("safetensors.violation", self.where.within(offset=offset, tensor=tensor,
                                                                key=key),
                     problem=v.problem, key=v.key, detail=v.detail)


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    emit = _Emitter(artifact)
    source = artifact.source
    size = source.size
    if size < 8:
        emit.violation(Violation("header-length", "", f"file is {size} bytes, shorter than the "
                                                      "8-byte header length"), 0)
        return emit.out
    (length,) = struct.unpack("<Q", source.read(0, 8))
    if length > size - 8:
        emit.violation(Violation("header-length", "", f"header length {length} exceeds the "
                                                      f"{size - 8} bytes after it"), 0)
        return emit.out
    if length > ctx.limits.max_header_bytes:
        emit.out.add("limit.hit", emit.where.within(offset=0), limit="max_header_bytes",
                     value=length, detail=f"safetensors header of {length} bytes is larger "
                                          f"than {ctx.limits.max_header_bytes}")
        return emit.out
    try:
        header, duplicates = decode_header(source.read(8, length))
    except HeaderError as exc:
        emit.violation(Violation("header-json", "", str(exc)), 8)
        return emit.out
    if not isinstance(header, dict):
        emit.violation(Violation("header-json", "", "header is not a JSON object"), 8)
        return emit.out
    for key in sorted(set(duplicates)):
        emit.violation(Violation("duplicate-key", key, "key appears more than once in the "
                                                       "header; loaders disagree on which wins"), 8)
    _judge(artifact, ctx, emit, header, length)
    return emit.out


def _judge(artifact: Artifact, ctx: ParseContext, emit: _Emitter, header: dict[str, Any],
           length: int) -> None:
    source = artifact.source
    data_start = 8 + length
    buffer_size = source.size - data_start
    metadata: dict[str, str] = {}
    entries: list[TensorEntry] = []
    for name, info in header.items():
        if name == METADATA_KEY:
            metadata, problems = check_metadata(info)
            for problem in problems:
                emit.violation(problem, 8)
            continue
        checked = check_entry(name, info)
        if isinstance(checked, Violation):
            emit.violation(checked, 8)
        else:
            entries.append(checked)
    for problem in check_layout(entries, buffer_size):
        emit.violation(problem, 8)
    used = max((e.end for e in entries), default=0)
    emit.out.add("safetensors.header", emit.where, header_length=length, tensors=len(entries),
                 data_bytes=buffer_size, dtypes=tuple(sorted({e.dtype for e in entries})),
                 metadata={k: v[:MAX_FACT_VALUE]
                           for k, v in list(metadata.items())[:MAX_METADATA_IN_FACT]})
    for key, value in metadata.items():
        if key.lower() in LICENSE_KEYS or key.lower().endswith(".license"):
            emit.out.add("metadata.license", emit.where.within(key=f"{METADATA_KEY}.{key}"),
                         value=value[:MAX_FACT_VALUE], source=f"safetensors:{METADATA_KEY}.{key}",
                         key=key)
        emit.out.facts.extend(lineage_facts(emit.where.within(key=f"{METADATA_KEY}.{key}"), key,
                                            value, f"safetensors:{METADATA_KEY}.{key}"))
    if used < buffer_size and all(e.end <= buffer_size for e in entries):
        _trailing(artifact, emit, data_start + used, buffer_size - used)
    if ctx.want_tensors:
        _tensor_refs(artifact, emit, entries, data_start, buffer_size)


def _trailing(artifact: Artifact, emit: _Emitter, start: int, count: int) -> None:
    formats = appended_formats(artifact.source, start, "safetensors")
    detail = f"{count} bytes after the last tensor"
    if formats:
        detail += f" hold {', '.join(formats)} content"
    emit.violation(Violation("trailing-bytes", "", detail), start)
    if formats:
        emit.out.add("format.polyglot", emit.where.within(offset=start),
                     formats=("safetensors", *formats),
                     detail=f"{', '.join(formats)} data appended after the tensor buffer at "
                            f"byte {start}")
        emit.out.children.append(artifact.child(f"trailing@{start}",
                                                slice_source(artifact.source, start, count)))


def _tensor_refs(artifact: Artifact, emit: _Emitter, entries: list[TensorEntry],
                 data_start: int, buffer_size: int) -> None:
    for entry in entries:
        if entry.dtype not in NUMPY_NAMES or entry.end > buffer_size:
            continue
        emit.out.tensors.append(TensorRef(
            name=entry.name, dtype=NUMPY_NAMES[entry.dtype], shape=entry.shape,
            source=slice_source(artifact.source, data_start + entry.begin,
                                entry.end - entry.begin),
            location=emit.where.within(tensor=entry.name)))
