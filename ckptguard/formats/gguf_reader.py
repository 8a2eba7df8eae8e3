"""A bounded little-endian cursor over a ByteSource, for GGUF's sequential header.

Every length is compared with the bytes left in the file before anything is allocated, and the
total number of header bytes examined is capped; both failures raise, never over-read.
"""

from __future__ import annotations

import struct

from ckptguard.source import ByteSource

CHUNK = 1 << 20


class Truncated(ValueError):
    """The header claims more bytes than the file holds."""


class HeaderTooLarge(ValueError):
    """The header runs past the configured limit."""


class Cursor:
    def __init__(self, source: ByteSource, budget: int) -> None:
        self.source = source
        self.size = source.size
        self.budget = budget
        self.pos = 0
        self._start = 0
        self._buf = b""

    @property
    def remaining(self) -> int:
        return self.size - self.pos

    def _need(self, count: int, what: str) -> None:
        if count < 0 or count > self.remaining:
            raise Truncated(f"{what} needs {count} bytes at offset {self.pos} but only "
                            f"{max(self.remaining, 0)} remain")
        if self.pos + count > self.budget:
            raise HeaderTooLarge(f"header continues past {self.budget} bytes")

    def read(self, count: int, what: str) -> bytes:
        self._need(count, what)
        offset = self.pos - self._start
        if offset < 0 or offset + count > len(self._buf):
            self._start = self.pos
            self._buf = self.source.read(self.pos, max(count, CHUNK))
            offset = 0
        self.pos += count
        return self._buf[offset:offset + count]

    def skip(self, count: int, what: str) -> None:
        self._need(count, what)
        self.pos += count

    def skip_strings(self, count: int, wide: bool, what: str) -> None:
        """Skip ``count`` length-prefixed strings (token vocabularies: the hot loop).  Lengths
        are read chunk by chunk; the position is checked against the file and the budget after
        every chunk, before anything past it is read."""
        size = 8 if wide else 4
        unpack = struct.Struct("<Q" if wide else "<I").unpack_from
        while count:
            self._need(size, what)
            offset = self.pos - self._start
            if offset < 0 or offset + size > len(self._buf):
                self._start, self._buf, offset = self.pos, self.source.read(self.pos, CHUNK), 0
            buf, end = self._buf, len(self._buf)
            while count and offset + size <= end:
                offset += size + unpack(buf, offset)[0]
                count -= 1
            target = self._start + offset
            if target > self.size or target > self.budget:
                self.pos = target - 1  # report where the last string would have ended
                raise (Truncated if target > self.size else HeaderTooLarge)(
                    f"{what}: a string runs to byte {target}, past the end of the header")
            self.pos = target

    def unpack(self, code: str, what: str) -> int | float | bool:
        data = self.read(struct.calcsize(code), what)
        value: int | float | bool = struct.unpack(code, data)[0]
        return value

    def u32(self, what: str) -> int:
        return int(self.unpack("<I", what))

    def u64(self, what: str) -> int:
        return int(self.unpack("<Q", what))
