"""Turn the pickle engine's ``torch.tensor`` facts into ``TensorRef``s: each one's source is exactly
that tensor's bytes inside its storage record, read lazily, so weight statistics can stream a
10 GB checkpoint without loading it.  Only contiguous (C-order), little-endian tensors in stored
records map to a byte range; every other tensor is skipped with a ``torch.tensor_skipped`` fact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ckptguard.facts import Artifact, Fact, ParseOutput, TensorRef
from ckptguard.formats import ParseContext, parser_for
from ckptguard.formats.zipfmt.reader import Entry, ZipError, read_local
from ckptguard.model import Location
from ckptguard.source import ByteSource, slice_source

ITEMSIZE = {
    "float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "complex128": 16, "complex64": 8,
    "int64": 8, "int32": 4, "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2,
    "uint8": 1, "bool": 1, "float8_e4m3fn": 1, "float8_e5m2": 1, "float8_e4m3fnuz": 1,
    "float8_e5m2fnuz": 1,
}


def c_contiguous(shape: Sequence[int], stride: Sequence[int]) -> bool:
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride), strict=True):
        if size != 1 and step != expected:
            return False
        expected *= size
    return True


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, (list, tuple)) and all(isinstance(v, int) and v >= 0 for v in value):
        return tuple(value)
    return None


class StorageIndex:
    """Where each storage record's data starts (local headers read once, on demand)."""

    def __init__(self, source: ByteSource, storages: Mapping[str, Entry]) -> None:
        self.source = source
        self.storages = storages
        self._starts: dict[str, int | str] = {}

    def locate(self, key: str) -> tuple[int, int] | str:
        """(data offset, size) of storage ``key``, or why it cannot be sliced."""
        entry = self.storages.get(key)
        if entry is None:
            return f"no storage record data/{key}"
        if entry.method != 0:
            return "storage record is compressed"
        if key not in self._starts:
            try:
                self._starts[key] = read_local(self.source, entry).data_offset
            except ZipError as exc:
                self._starts[key] = str(exc)
        start = self._starts[key]
        return (start, entry.compressed_size) if isinstance(start, int) else start


def tensor_ref(fact: Fact, index: StorageIndex, where: Location) -> TensorRef | str:
    """The TensorRef of one ``torch.tensor`` fact, or why there is none."""
    name = str(fact.get("name", "?"))
    dtype = str(fact.get("storage_dtype") or fact.get("dtype") or "")
    shape, stride = _ints(fact.get("shape")), _ints(fact.get("stride"))
    offset = fact.get("storage_offset", 0)
    if dtype not in ITEMSIZE:
        return f"dtype {dtype or '?'} has no fixed byte layout known to ckptguard"
    if shape is None or stride is None or len(shape) != len(stride) or not isinstance(offset, int):
        return "shape, stride or storage offset missing or malformed"
    if not c_contiguous(shape, stride):
        return "not contiguous in C order"
    located = index.locate(str(fact.get("storage_key", "")))
    if isinstance(located, str):
        return located
    start, size = located
    itemsize = ITEMSIZE[dtype]
    first, length = offset * itemsize, math.prod(shape) * itemsize
    if offset < 0 or first + length > size:
        return f"bytes {first}..{first + length} lie outside the {size}-byte storage"
    return TensorRef(name, dtype, shape, slice_source(index.source, start + first, length),
                     Location(where.chain, tensor=name))


def add_tensor_refs(pickle_artifact: Artifact, index: StorageIndex, big_endian: bool,
                    where: Location, ctx: ParseContext, output: ParseOutput) -> None:
    """Run the pickle engine on ``data.pkl`` for its tensor facts and map them to bytes."""
    try:
        parser = parser_for("pickle")
        parsed = parser(pickle_artifact, ctx) if parser is not None else None
    except ImportError:
        parsed = None
    except Exception as exc:  # noqa: BLE001 - the pickle child reports its own failure
        output.add("torch.tensor_skipped", where, name="*", reason=f"pickle engine: {exc}"[:300])
        return
    if parsed is None:
        output.add("torch.tensor_skipped", where, name="*", reason="pickle engine unavailable")
        return
    for fact in parsed.of_kind("torch.tensor"):
        ref = "byteorder record says big-endian" if big_endian else tensor_ref(fact, index, where)
        if isinstance(ref, TensorRef):
            output.tensors.append(ref)
        else:
            output.add("torch.tensor_skipped", Location(where.chain, tensor=str(fact.get("name"))),
                       name=str(fact.get("name")), reason=ref)
