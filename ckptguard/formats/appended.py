"""Data appended after the end of a format's own structure: which formats it looks like.

Used by header-described formats (safetensors, GGUF) whose structure says exactly where the file
should end: another format's bytes after that point make a polyglot.
"""

from __future__ import annotations

from ckptguard.sniff import magic_format
from ckptguard.source import ByteSource

ZIP_EOCD_SPAN = 65_557  # the end-of-central-directory record lies within this many final bytes


def appended_formats(source: ByteSource, start: int, own: str) -> list[str]:
    """Formats recognisable in the bytes from ``start`` to the end (``own`` excluded)."""
    size = source.size - start
    if size <= 0:
        return []
    found = [f for f in magic_format(source.read(start, 4096), size, "") if f != own]
    tail_start = max(start, source.size - ZIP_EOCD_SPAN)
    if "zip" not in found and b"PK\x05\x06" in source.read(tail_start, source.size - tail_start):
        found.append("zip")
    return found
