"""Tensor bytes of legacy (pre-zip) torch files, for weight statistics.

After the storage-keys pickle, ``torch.load`` reads each storage in key order as an int64 element
count followed by ``count * element_size`` raw bytes.  Contiguous tensors over those storages
become ``TensorRef``s that are slices of the file: nothing is copied or loaded.
"""

from __future__ import annotations

import math
import struct

from ckptguard.facts import Artifact, TensorRef
from ckptguard.formats.pickle.reader import ReadError, iter_ops
from ckptguard.formats.pickle.values import TensorInfo, text_of
from ckptguard.source import slice_source

ELEMENT_SIZES = {"float32": 4, "float64": 8, "float16": 2, "bfloat16": 2, "int64": 8,
                 "int32": 4, "int16": 2, "int8": 1, "uint8": 1, "bool": 1, "complex64": 8,
                 "complex128": 16}


def storage_keys(buf: memoryview, start: int) -> list[str]:
    """The keys pickle (a list of strings) at ``start``, read without any item bound."""
    keys: list[str] = []
    try:
        for op in iter_ops(buf, start):
            text = text_of(op.arg) if op.name.endswith(("UNICODE", "STRING", "UNICODE8")) \
                else None
            if text is not None:
                keys.append(text)
    except ReadError:
        return []
    return keys


def _contiguous(shape: tuple[int, ...], stride: tuple[int, ...]) -> bool:
    expected = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    return all(s == e for s, e, d in zip(stride, expected, shape, strict=True) if d > 1)


def tensor_refs(artifact: Artifact, buf: memoryview, keys: list[str], data_start: int,
                tensors: list[TensorInfo]) -> list[TensorRef]:
    """TensorRefs for contiguous tensors whose storage lies in the file."""
    dtypes = {t.storage_key: t.storage_dtype for t in tensors}
    spans: dict[str, tuple[int, int]] = {}  # key -> (byte offset, element count)
    pos = data_start
    for key in keys:
        size = ELEMENT_SIZES.get(dtypes.get(key, ""))
        if size is None or pos + 8 > len(buf):
            break  # an unknown element size: later storages cannot be located
        (count,) = struct.unpack_from("<q", buf, pos)
        if count < 0 or pos + 8 + count * size > len(buf):
            break
        spans[key] = (pos + 8, count)
        pos += 8 + count * size
    refs = []
    for tensor in tensors:
        span = spans.get(tensor.storage_key)
        size = ELEMENT_SIZES.get(tensor.storage_dtype)
        if span is None or size is None or len(tensor.stride) != len(tensor.shape) or \
                not _contiguous(tensor.shape, tensor.stride):
            continue
        numel = math.prod(tensor.shape)
        if tensor.storage_offset + numel > span[1]:
            continue
        name = tensor.name
        source = slice_source(artifact.source, span[0] + tensor.storage_offset * size,
                              numel * size)
        refs.append(TensorRef(name, tensor.storage_dtype, tensor.shape, source,
                              artifact.location.within(offset=tensor.offset, tensor=name)))
    return refs
