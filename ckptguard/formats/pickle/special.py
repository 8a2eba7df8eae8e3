"""Library conventions the interpreter must understand to read a stream the way its loader does:
torch tensor rebuild calls (tensor facts) and joblib arrays stored raw between opcodes."""

from __future__ import annotations

import base64
import math
import re
from typing import TYPE_CHECKING, Any

from ckptguard.formats.pickle.names import canonical, storage_dtype
from ckptguard.formats.pickle.reader import ReadError
from ckptguard.formats.pickle.trace import LimitHit
from ckptguard.formats.pickle.values import (
    Blob,
    DictV,
    Obj,
    PersRef,
    Ref,
    TensorInfo,
    render,
    text_of,
)

if TYPE_CHECKING:
    from ckptguard.formats.pickle.interpreter import Machine

_TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")
_KIND_SIZES = {"b": 1, "?": 1, "B": 1, "h": 2, "H": 2, "e": 2, "f": 4, "d": 8, "g": 16}


MAX_DIMS = 64  # numpy's limit; a longer "shape" is not one


def _ints(value: Any) -> tuple[int, ...] | None:
    if isinstance(value, tuple) and len(value) <= MAX_DIMS and \
            all(type(v) is int and v >= 0 for v in value):
        return value
    return None


def rebuild_tensor(args: tuple[Any, ...], offset: int) -> TensorInfo | None:
    """A tensor for ``_rebuild_tensor[_v2](storage, storage_offset, size, stride, ...)`` whose
    storage is a persistent id ``('storage', <storage type>, key, location, numel)``."""
    if len(args) < 3 or not isinstance(args[0], PersRef):
        return None
    pid = args[0].pid
    if not isinstance(pid, tuple) or len(pid) < 4 or text_of(pid[0]) != "storage":
        return None
    shape = _ints(args[2])
    stride = _ints(args[3]) if len(args) > 3 else None
    storage_offset: int = args[1] if type(args[1]) is int else 0
    if shape is None:
        return None
    if stride is None:
        stride = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    assert stride is not None
    dtype = storage_dtype(pid[1].qualname) if isinstance(pid[1], Ref) else "unknown"
    key = text_of(pid[2])
    return TensorInfo(offset, key if key is not None else render(pid[2], 60), dtype,
                      text_of(pid[3]) or "", shape, stride, storage_offset)


def bytes_built_at_load(value: Obj) -> Any:
    """Bytes a pickle builds from text while loading (how nested payloads are usually carried:
    ``_codecs.encode(text, 'latin1')``, ``base64.b64decode(text)``, ``bytes.fromhex(text)``), as a
    Blob; the value itself when it is not one of those."""
    args = value.args if isinstance(value.args, tuple) else ()
    source = text_of(args[0]) if args else None
    if source is None or value.cls is None:
        return value
    name = canonical(value.cls)
    try:
        if name in ("_codecs.encode", "codecs.encode"):
            encoding = text_of(args[1]) if len(args) > 1 else "utf-8"
            if encoding is None or encoding.lower().replace("-", "") not in _TEXT_CODECS:
                return value
            data = source.encode(encoding)
        elif name in ("base64.b64decode", "base64.decodebytes", "binascii.a2b_base64"):
            data = base64.b64decode(source)
        elif name in ("builtins.bytes.fromhex", "binascii.unhexlify", "binascii.a2b_hex"):
            data = bytes.fromhex(source)
        else:
            return value
    except (ValueError, LookupError):
        return value
    return Blob(value.offset, len(data), memoryview(data), contiguous=False)


_TEXT_CODECS = frozenset({"latin1", "iso88591", "utf8", "ascii", "l1"})


def _dtype_size(dtype: Any) -> tuple[int, bool] | None:
    """(itemsize, holds Python objects) of a pickled ``numpy.dtype(...)`` call, if known."""
    if not isinstance(dtype, Obj) or not isinstance(dtype.args, tuple) or not dtype.args:
        return None
    typestr = text_of(dtype.args[0])
    state = dtype.state
    has_object = False
    if isinstance(state, tuple) and len(state) >= 8 and type(state[7]) is int:
        has_object = bool(state[7] & 1)  # NPY_ITEM_REFCOUNT
    if isinstance(state, tuple) and len(state) >= 6 and type(state[5]) is int and state[5] > 0:
        return state[5], has_object
    if typestr is None:
        return None
    match = _TYPESTR.match(typestr)
    if match is None:
        return None
    kind, digits = match.group(1), match.group(2)
    if kind == "O":
        return 8, True
    if digits:
        return (int(digits) * 4 if kind == "U" else int(digits)), has_object
    known = _KIND_SIZES.get(kind)
    return (known, has_object) if known is not None else None


def skip_joblib_array(m: Machine, state: Any, pos: int) -> None:
    """joblib's unpickler reads an array's raw bytes right after BUILD of a NumpyArrayWrapper
    (after a padding-length byte and padding when the wrapper records an alignment); an array of
    Python objects is a complete pickle there instead."""
    if not isinstance(state, DictV):
        raise ReadError("joblib NumpyArrayWrapper without a state dict")
    shape = _ints(state.get("shape"))
    sized = _dtype_size(state.get("dtype"))
    if shape is None or sized is None:
        raise ReadError("joblib array with an unreadable shape or dtype: its raw bytes cannot "
                        "be skipped")
    itemsize, has_object = sized
    m.trace.joblib_arrays += 1
    if has_object:
        if m.depth + 1 > m.limits.max_nested_pickle_depth:
            raise LimitHit("nested pickle depth", m.limits.max_nested_pickle_depth,
                           f"joblib object arrays nested deeper than "
                           f"{m.limits.max_nested_pickle_depth} at byte {pos}")
        from ckptguard.formats.pickle.interpreter import Machine

        inner = Machine(m.buf, m.trace, m.limits, depth=m.depth + 1)
        m.resume_at = inner.run(pos)
        return
    if state.get("numpy_array_alignment_bytes") is not None:
        if pos >= m.end:
            raise ReadError("joblib array padding byte missing", truncated=True)
        pos += 1 + m.buf[pos]
    size = itemsize * math.prod(shape)
    if pos + size > m.end:
        raise ReadError(f"joblib array of {size} bytes runs past the end of the stream",
                        truncated=True)
    m.resume_at = pos + size
