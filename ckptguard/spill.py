"""Decompressed bytes that leave memory once there are too many of them.

A decompressed member lives in memory while it is small and while the whole scan has not yet
kept ``memory`` bytes in memory; past that it is written to an anonymous temporary file (deleted
by the operating system as soon as it is created, gone when the source is dropped).  Peak memory
then depends on the limits, not on how many members an archive claims or how far they expand.
Nobody else can write to that file, so its memory map cannot shrink underneath a parser.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from typing import IO

from ckptguard.source import ByteSource, MemorySource

SPILL_CHUNK = 1 << 20


class TempFileSource:
    """The content of an anonymous temporary file (a ``ByteSource``)."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self._handle = handle
        self._size = size

    @property
    def size(self) -> int:
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self._size:
            return b""
        length = min(length, self._size - offset)
        if hasattr(os, "pread"):
            return os.pread(self._handle.fileno(), length, offset)
        self._handle.seek(offset)  # pragma: no cover - platforms without pread
        return self._handle.read(length)

    def view(self) -> memoryview:
        if self._size == 0:
            return memoryview(b"")
        return memoryview(mmap.mmap(self._handle.fileno(), self._size, access=mmap.ACCESS_READ))

    def __getstate__(self) -> dict[str, object]:  # sent to another process: as bytes
        raise TypeError("a spilled member stays in the process that decompressed it")


class SpillBuffer:
    """Collects output; keeps at most ``memory`` bytes in memory, the rest goes to a file."""

    def __init__(self, memory: int) -> None:
        self.memory = max(0, memory)
        self._buffer = bytearray()
        self._file: IO[bytes] | None = None
        self.size = 0

    @property
    def in_memory(self) -> int:
        return len(self._buffer)

    def write(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._file is None and len(self._buffer) + len(data) <= self.memory:
            self._buffer += data
            return
        if self._file is None:
            # Owned by the returned source for its whole life, so no context manager.
            self._file = tempfile.TemporaryFile()  # noqa: SIM115
            self._file.write(self._buffer)
            self._buffer = bytearray()
        self._file.write(data)

    def truncate(self, size: int) -> None:
        """Keep only the first ``size`` bytes."""
        if size >= self.size:
            return
        self.size = size
        if self._file is None:
            del self._buffer[size:]
        else:
            self._file.truncate(size)

    def source(self) -> ByteSource:
        if self._file is None:
            return MemorySource(bytes(self._buffer))
        self._file.flush()
        return TempFileSource(self._file, self.size)
