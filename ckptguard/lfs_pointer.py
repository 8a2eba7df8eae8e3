"""Git LFS pointer files: what a checkout holds in place of a large file when LFS content was not
fetched (``actions/checkout`` without ``lfs: true``, ``git clone`` without ``git lfs``).

A pointer is a few lines of text (at most 1024 bytes, by the LFS specification)::

    version https://git-lfs.github.com/spec/v1
    oid sha256:4d7a2146...
    size 12345

Scanning it says nothing about the model it stands for, so it is reported as what it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_POINTER_BYTES = 1024
_VERSION = re.compile(rb"^version https://(?:git-lfs\.github\.com/spec/v1|hawser\.github\.com/spec/v1)\n")
_OID = re.compile(rb"^oid (?P<algo>[a-z0-9]+):(?P<hex>[0-9a-f]{1,128})$", re.MULTILINE)
_SIZE = re.compile(rb"^size (?P<size>[0-9]{1,20})$", re.MULTILINE)


@dataclass(frozen=True)
class LfsPointer:
    oid: str  # "sha256:<hex>"
    size: int  # the size of the real file, as the pointer claims


def parse_pointer(head: bytes, total_size: int) -> LfsPointer | None:
    """The pointer ``head`` (the whole file, ``total_size`` bytes) holds, or None."""
    if total_size > MAX_POINTER_BYTES or not _VERSION.match(head):
        return None
    oid, size = _OID.search(head), _SIZE.search(head)
    if oid is None or size is None:
        return None
    return LfsPointer(f"{oid['algo'].decode()}:{oid['hex'].decode()}", int(size["size"]))
