"""Decompressed bytes that leave memory once there are too many of them.

A decompressed member lives in memory while it is small and while the whole scan has not yet
kept ``memory`` bytes in memory; past that it is appended to the scan's one anonymous temporary
file (deleted by the operating system as soon as it is created; one file descriptor however many
members spill).  Peak memory then depends on the limits, not on how many members an archive
claims or how far they expand.  Nobody else can write to that file, and it only ever grows
past what any member was given, so a member's memory map cannot shrink underneath a parser.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import zlib
from typing import IO

from ckptguard.source import ByteSource, MemorySource


class SpillFile:
    """One scan's temporary file: members are ranges of it, appended one after another."""

    def __init__(self) -> None:
        self._handle: IO[bytes] | None = None
        self.end = 0

    @property
    def handle(self) -> IO[bytes]:
        if self._handle is None:
            # Owned for the scan's whole life (sources read it), so no context manager.
            self._handle = tempfile.TemporaryFile()  # noqa: SIM115
        return self._handle

    def append(self, data: bytes | bytearray) -> None:
        handle = self.handle
        handle.seek(self.end)
        handle.write(data)
        self.end += len(data)

    def cut(self, end: int) -> None:
        """Forget what was appended past ``end`` (only the last writer does this)."""
        self.end = end
        self.handle.truncate(end)

    def flush(self) -> None:
        if self._handle is not None:
            self._handle.flush()


class TempFileSource:
    """A range of a scan's spill file (a ``ByteSource``)."""

    def __init__(self, spill: SpillFile, start: int, size: int) -> None:
        self._spill = spill
        self._start = start
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self._size:
            return b""
        length = min(length, self._size - offset)
        handle = self._spill.handle
        if hasattr(os, "pread"):
            return os.pread(handle.fileno(), length, self._start + offset)
        handle.seek(self._start + offset)  # pragma: no cover - platforms without pread
        return handle.read(length)

    def view(self) -> memoryview:
        if self._size == 0:
            return memoryview(b"")
        aligned = self._start - self._start % mmap.ALLOCATIONGRANULARITY
        mapped = mmap.mmap(self._spill.handle.fileno(), self._size + self._start - aligned,
                           access=mmap.ACCESS_READ, offset=aligned)
        return memoryview(mapped)[self._start - aligned:]

    def __getstate__(self) -> dict[str, object]:
        raise TypeError("a spilled member stays in the process that decompressed it")


class SpillBuffer:
    """Collects one output; keeps at most ``memory`` bytes in memory, the rest is appended to
    ``spill`` (the scan's file; a private one when none is given).  ``crc``: also keeps the
    CRC-32 of what was written, while each piece is still in the CPU cache (``crc32`` is None
    when not asked for, or after a truncation)."""

    def __init__(self, memory: int, spill: SpillFile | None = None, crc: bool = False) -> None:
        self.memory = max(0, memory)
        self._spill = spill
        self._buffer = bytearray()
        self._start: int | None = None  # where this output begins in the spill file
        self.size = 0
        self.crc32: int | None = 0 if crc else None

    @property
    def in_memory(self) -> int:
        return len(self._buffer)

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self.crc32 is not None:
            self.crc32 = zlib.crc32(data, self.crc32)
        if self._start is None and len(self._buffer) + len(data) <= self.memory:
            self._buffer += data
            return
        if self._spill is None:
            self._spill = SpillFile()
        if self._start is None:
            self._start = self._spill.end
            self._spill.append(self._buffer)
            self._buffer = bytearray()
        self._spill.append(data)

    def truncate(self, size: int) -> None:
        """Keep only the first ``size`` bytes."""
        if size >= self.size:
            return
        self.size = size
        self.crc32 = None  # of bytes no longer all there
        if self._start is None:
            del self._buffer[size:]
        elif self._spill is not None:
            self._spill.cut(self._start + size)

    def source(self) -> ByteSource:
        if self._start is None or self._spill is None:
            return MemorySource(bytes(self._buffer))
        self._spill.flush()
        return TempFileSource(self._spill, self._start, self.size)
