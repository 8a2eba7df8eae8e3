"""Byte sources: how a parser reads an artifact without caring whether it is a file on disk, a
stored archive member (a slice of its parent file) or bytes decompressed into memory.

Parsers read only what they need (a header, a directory, a pickle member) so that a 10 GB
checkpoint costs what its metadata costs.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from typing import Protocol

# A memory map of a file that shrinks while it is read raises SIGBUS, which no Python code can
# catch.  Files up to this size are read into memory instead (a truncation then only shortens
# what is read); larger ones are mapped, and the CLI scans in a worker process whose death is
# a finding on that file (ckptguard.supervise), so the scan survives either way.
SNAPSHOT_BYTES = 64 * 1024**2


class ByteSource(Protocol):
    """Random access to an artifact's bytes."""

    @property
    def size(self) -> int: ...

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset`` (fewer at the end, never an error past it)."""
        ...

    def view(self) -> memoryview:
        """The whole content as a (possibly memory-mapped) buffer; costs no copy for files."""
        ...


@dataclass(frozen=True)
class MemorySource:
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0:
            return b""
        return self.data[offset:offset + length]

    def view(self) -> memoryview:
        return memoryview(self.data)


@dataclass(frozen=True)
class FileSource:
    """A byte range of a file on disk (the whole file by default)."""

    path: str
    start: int = 0
    length: int | None = None

    @property
    def size(self) -> int:
        if self.length is not None:
            return self.length
        return max(0, os.path.getsize(self.path) - self.start)

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.size:
            return b""
        length = min(length, self.size - offset)
        with open(self.path, "rb") as handle:
            handle.seek(self.start + offset)
            return handle.read(length)

    def view(self) -> memoryview:
        size = self.size
        if size == 0:
            return memoryview(b"")
        if size <= SNAPSHOT_BYTES:
            return memoryview(self.read(0, size))
        with open(self.path, "rb") as handle:
            # mmap needs an offset aligned to the allocation granularity.
            aligned = self.start - (self.start % mmap.ALLOCATIONGRANULARITY)
            mapped = mmap.mmap(handle.fileno(), size + (self.start - aligned),
                               access=mmap.ACCESS_READ, offset=aligned)
        return memoryview(mapped)[self.start - aligned:]

    def slice(self, offset: int, length: int) -> FileSource:
        length = max(0, min(length, self.size - offset))
        return FileSource(self.path, self.start + offset, length)


@dataclass(frozen=True)
class SliceSource:
    """A byte range of another source (decompressed content, in memory or spilled to a
    temporary file), without copying it: a tar member of a 2 GB ``.tar.gz`` costs no memory."""

    parent: ByteSource
    start: int
    length: int

    @property
    def size(self) -> int:
        return self.length

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.length:
            return b""
        return self.parent.read(self.start + offset, min(length, self.length - offset))

    def view(self) -> memoryview:
        return self.parent.view()[self.start:self.start + self.length]


COPY_SLICES_UP_TO = 1 << 20  # smaller slices of non-file sources are copied (cheap, independent)


def slice_source(source: ByteSource, offset: int, length: int) -> ByteSource:
    """A sub-range of a source, without copying when the source is a file or the range is
    large."""
    if isinstance(source, FileSource):
        return source.slice(offset, length)
    offset = max(0, min(offset, source.size))
    length = max(0, min(length, source.size - offset))
    if length <= COPY_SLICES_UP_TO:
        return MemorySource(source.read(offset, length))
    if isinstance(source, SliceSource):
        return SliceSource(source.parent, source.start + offset, length)
    return SliceSource(source, offset, length)
