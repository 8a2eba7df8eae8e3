"""Turn a tensor's raw bytes into float32 numpy blocks, a bounded number of bytes at a time.

Tensors are viewed as matrices: the first axis is the row (an output neuron or channel), every
other axis is flattened into the columns.  A 1-D tensor is one row.  Bytes are read through the
source's (memory-mapped) view, so nothing is copied until a block is converted to float32.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ckptguard.facts import TensorRef

# dtype name (numpy style, as in TensorRef.dtype) -> little-endian storage dtype
_STORAGE: dict[str, str] = {
    "float64": "<f8", "float32": "<f4", "float16": "<f2", "bfloat16": "<u2",
    "int64": "<i8", "int32": "<i4", "int16": "<i2", "int8": "i1",
    "uint64": "<u8", "uint32": "<u4", "uint16": "<u2", "uint8": "u1", "bool": "u1",
}
_ALIASES = {"f64": "float64", "f32": "float32", "f16": "float16", "bf16": "bfloat16",
            "double": "float64", "float": "float32", "half": "float16", "i64": "int64",
            "i32": "int32", "i16": "int16", "i8": "int8", "u8": "uint8"}
FLOAT_DTYPES = frozenset({"float64", "float32", "float16", "bfloat16"})

DEFAULT_BLOCK_BYTES = 16 * 1024 * 1024


class TensorDecodeError(ValueError):
    """The tensor's bytes cannot be interpreted (unknown dtype, size disagreeing with shape)."""


@dataclass(frozen=True)
class MatrixShape:
    rows: int
    cols: int

    @property
    def count(self) -> int:
        return self.rows * self.cols


def canonical_dtype(name: str) -> str:
    lowered = name.strip().lower()
    return _ALIASES.get(lowered, lowered)


def is_float(ref: TensorRef) -> bool:
    return canonical_dtype(ref.dtype) in FLOAT_DTYPES


def matrix_shape(shape: tuple[int, ...]) -> MatrixShape:
    if not shape:
        return MatrixShape(1, 1)
    if len(shape) == 1:
        return MatrixShape(1, shape[0])
    return MatrixShape(shape[0], math.prod(shape[1:]))


def storage_dtype(ref: TensorRef) -> np.dtype[np.generic]:
    name = canonical_dtype(ref.dtype)
    if name not in _STORAGE:
        raise TensorDecodeError(f"dtype {ref.dtype!r} is not supported by weight statistics")
    return np.dtype(_STORAGE[name])


def checked_layout(ref: TensorRef) -> tuple[np.dtype[np.generic], MatrixShape]:
    """The storage dtype and matrix view of a tensor, after checking its byte size."""
    if any(dim < 0 for dim in ref.shape):
        raise TensorDecodeError(f"negative dimension in shape {ref.shape}")
    dtype = storage_dtype(ref)
    shape = matrix_shape(ref.shape)
    expected = shape.count * dtype.itemsize
    if ref.source.size != expected:
        raise TensorDecodeError(f"{ref.source.size} bytes stored for shape {ref.shape} of "
                                f"{ref.dtype} ({expected} expected)")
    return dtype, shape


def to_float32(raw: np.ndarray, dtype_name: str) -> np.ndarray:
    """Convert stored values to float32; bfloat16 is widened by shifting its bits."""
    if canonical_dtype(dtype_name) == "bfloat16":
        return (raw.astype(np.uint32) << 16).view(np.float32)
    return raw.astype(np.float32, copy=False)


def _buffer(source: object) -> memoryview:
    """The source's bytes.  A tensor stored in a file larger than ``SNAPSHOT_BYTES`` is viewed
    through a memory map of that file, the policy ``FileSource.view`` applies to such files (the
    CLI's worker process survives a file shrinking under the map); ``FileSource.view`` itself
    decides by the *slice's* size, and would copy every tensor below 64 MiB on each read."""
    from ckptguard.source import SNAPSHOT_BYTES, FileSource

    if isinstance(source, FileSource) and source.size > 0:
        try:
            whole = os.path.getsize(source.path)
        except OSError:
            whole = 0
        if whole > SNAPSHOT_BYTES and source.start + source.size <= whole:
            return FileSource(source.path).view()[source.start:source.start + source.size]
    view: memoryview = source.view()  # type: ignore[attr-defined]
    return view


def raw_array(ref: TensorRef) -> np.ndarray:
    """The stored values as a 2-D (rows, cols) numpy view over the source: no copy for files
    that are memory-mapped."""
    dtype, shape = checked_layout(ref)
    if shape.count == 0:
        return np.zeros((shape.rows, shape.cols), dtype=dtype)
    flat = np.frombuffer(_buffer(ref.source), dtype=dtype, count=shape.count)
    return flat.reshape(shape.rows, shape.cols)


@dataclass(frozen=True)
class Block:
    """Rows ``first_row`` .. ``first_row + values.shape[0]`` (or part of one row, from
    ``first_col``), as float32."""

    first_row: int
    first_col: int
    values: np.ndarray  # 2-D float32


def iter_blocks(ref: TensorRef, block_bytes: int = DEFAULT_BLOCK_BYTES,
                array: np.ndarray | None = None) -> Iterator[Block]:
    """The tensor as float32 blocks of whole rows; a row larger than a block comes in pieces.
    ``array``: the tensor's ``raw_array`` when the caller already holds it (one read)."""
    array = raw_array(ref) if array is None else array
    rows, cols = array.shape
    if rows == 0 or cols == 0:
        return
    per_element = max(array.dtype.itemsize, 4)
    budget = max(1, block_bytes // per_element)
    if cols <= budget:
        step = max(1, budget // cols)
        for first in range(0, rows, step):
            yield Block(first, 0, to_float32(array[first:first + step], ref.dtype))
        return
    for row in range(rows):
        for first_col in range(0, cols, budget):
            piece = array[row:row + 1, first_col:first_col + budget]
            yield Block(row, first_col, to_float32(piece, ref.dtype))
