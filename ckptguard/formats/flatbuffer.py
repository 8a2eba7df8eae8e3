"""A small bounded FlatBuffers reader: tables, scalars, strings and vectors, every position and
length checked against the buffer before it is used (malformed input raises FlatError)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

Buffer = bytes | memoryview


class FlatError(ValueError):
    """An offset, vtable or length that does not fit in the buffer."""


@dataclass(frozen=True)
class Table:
    pos: int
    vtable: int
    vtable_size: int


class FlatBuffer:
    def __init__(self, buf: Buffer, base: int = 0, end: int | None = None) -> None:
        self.buf = buf
        self.base = base
        self.end = len(buf) if end is None else end

    def _check(self, pos: int, size: int, what: str) -> None:
        if pos < self.base or size < 0 or pos + size > self.end:
            raise FlatError(f"{what} at byte {pos} (+{size}) lies outside the buffer "
                            f"[{self.base}, {self.end})")

    def u8(self, pos: int) -> int:
        self._check(pos, 1, "byte")
        return int(self.buf[pos])

    def u16(self, pos: int) -> int:
        self._check(pos, 2, "uint16")
        return int(struct.unpack_from("<H", self.buf, pos)[0])

    def u32(self, pos: int) -> int:
        self._check(pos, 4, "uint32")
        return int(struct.unpack_from("<I", self.buf, pos)[0])

    def i32(self, pos: int) -> int:
        self._check(pos, 4, "int32")
        return int(struct.unpack_from("<i", self.buf, pos)[0])

    def u64(self, pos: int) -> int:
        self._check(pos, 8, "uint64")
        return int(struct.unpack_from("<Q", self.buf, pos)[0])

    def root(self) -> Table:
        return self.table(self.base + self.u32(self.base))

    def table(self, pos: int) -> Table:
        vtable = pos - self.i32(pos)
        size = self.u16(vtable)
        if size < 4 or size % 2:
            raise FlatError(f"vtable at byte {vtable} has size {size}")
        self._check(vtable, size, "vtable")
        return Table(pos, vtable, size)

    def field(self, table: Table, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > table.vtable_size:
            return None
        offset = self.u16(table.vtable + slot)
        return table.pos + offset if offset else None

    def scalar(self, table: Table, index: int, fmt: str, default: int = 0) -> int:
        pos = self.field(table, index)
        if pos is None:
            return default
        self._check(pos, struct.calcsize(fmt), "scalar field")
        return int(struct.unpack_from(fmt, self.buf, pos)[0])

    def _deref(self, table: Table, index: int) -> int | None:
        pos = self.field(table, index)
        return None if pos is None else pos + self.u32(pos)

    def vector(self, table: Table, index: int, elem_size: int) -> tuple[int, int]:
        """(position of the first element, element count); (0, 0) when absent."""
        pos = self._deref(table, index)
        if pos is None:
            return 0, 0
        count = self.u32(pos)
        self._check(pos + 4, count * elem_size, "vector")
        return pos + 4, count

    def string(self, table: Table, index: int, limit: int = 4096) -> str | None:
        start, length = self.vector(table, index, 1)
        if not start:
            return None
        return bytes(self.buf[start:start + min(length, limit)]).decode("utf-8", "replace")

    def tables(self, table: Table, index: int) -> list[Table]:
        start, count = self.vector(table, index, 4)
        return [self.table(start + 4 * k + self.u32(start + 4 * k)) for k in range(count)]
