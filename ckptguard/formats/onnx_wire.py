"""Byte ranges of ONNX initializers' ``raw_data`` inside the model file, from the protobuf wire
format, so that weight statistics can read tensors as slices of the file (no copy).

Only the top-level graph's initializers are located; the walk is bounded by the buffer and by a
field budget, and any inconsistency simply ends it (the ``onnx`` parse is the judge of validity).
"""

from __future__ import annotations

from collections.abc import Iterator

MODEL_GRAPH = 7  # ModelProto.graph
GRAPH_INITIALIZER = 5  # GraphProto.initializer
TENSOR_NAME = 8  # TensorProto.name
TENSOR_RAW_DATA = 9  # TensorProto.raw_data
LEN = 2


class WireError(ValueError):
    pass


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while pos < end and shift < 70:
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise WireError("truncated varint")


def fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value start, value end) for each field in ``buf[start:end]``;
    for varint/fixed fields the range covers the encoded value."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, after = _varint(buf, pos, end)
        elif wire == 1:
            after = pos + 8
        elif wire == LEN:
            length, pos = _varint(buf, pos, end)
            after = pos + length
        elif wire == 5:
            after = pos + 4
        else:
            raise WireError(f"unsupported wire type {wire}")
        if after > end:
            raise WireError("field runs past its message")
        yield number, wire, pos, after
        pos = after


def initializer_ranges(buf: memoryview, max_fields: int = 10_000_000) -> dict[str, tuple[int, int]]:
    """``{initializer name: (offset, length)}`` of raw_data in the top-level graph."""
    found: dict[str, tuple[int, int]] = {}
    budget = max_fields
    try:
        for number, wire, start, end in fields(buf, 0, len(buf)):
            if number != MODEL_GRAPH or wire != LEN:
                continue
            for g_number, g_wire, g_start, g_end in fields(buf, start, end):
                budget -= 1
                if budget <= 0:
                    return found
                if g_number != GRAPH_INITIALIZER or g_wire != LEN:
                    continue
                name = None
                raw: tuple[int, int] | None = None
                for t_number, t_wire, t_start, t_end in fields(buf, g_start, g_end):
                    if t_number == TENSOR_NAME and t_wire == LEN:
                        name = bytes(buf[t_start:t_end]).decode("utf-8", "replace")
                    elif t_number == TENSOR_RAW_DATA and t_wire == LEN:
                        raw = (t_start, t_end - t_start)
                if name is not None and raw is not None:
                    found[name] = raw
    except WireError:
        return found
    return found
