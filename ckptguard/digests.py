"""SHA-256 content digests of scanned artifacts, each range of bytes hashed once per scan.

An archive whose central records all point at the same member data (the overlapping zip bomb:
a thousand names for one deflated kernel) hands the scan the same bytes a thousand times; the
decompressor already reuses one inflated result for them, and the digest of each must not cost
a full pass either (1,000 members of 48 MB each took 21 s of a 24 s scan to hash).  A digest is
remembered by the bytes it covers: a file's range by path and offsets, any other source by the
object itself, held through a weak reference so that a source freed during the scan is never
mistaken for a new one that happens to reuse its address.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable

from ckptguard.facts import Artifact
from ckptguard.source import ByteSource, FileSource, SliceSource

DIGEST_CHUNK = 1 << 20


def _folder(artifact: Artifact) -> bool:
    """A folder judged as a whole (a repo folder): it has no bytes of its own to digest."""
    return bool(artifact.chain) and artifact.chain[-1].endswith(("/", "\\"))


def content_digest(artifact: Artifact) -> str | None:
    """The SHA-256 of the artifact's bytes (users pin and deduplicate by it); None for a
    folder judged as a whole, or when the bytes cannot be read."""
    if _folder(artifact):
        return None
    source = artifact.source
    digest = hashlib.sha256()
    try:
        for offset in range(0, source.size, DIGEST_CHUNK):
            digest.update(source.read(offset, min(DIGEST_CHUNK, source.size - offset)))
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


_Key = tuple[object, ...]


def _range_key(source: ByteSource) -> tuple[_Key, object | None] | None:
    """What identifies the bytes of ``source``, and the object whose identity the key uses
    (None when the key is made of values only); None when it cannot be told."""
    if isinstance(source, FileSource):
        return ("file", source.path, source.start, source.size), None
    if isinstance(source, SliceSource):
        parent = _range_key(source.parent)
        if parent is None:
            return None
        key, anchor = parent
        return (*key, "slice", source.start, source.length), anchor
    return ("object", id(source)), source


class DigestMemo:
    """The digests one scan has computed, by the bytes they cover (one per scan: no state is
    shared between scans)."""

    def __init__(self) -> None:
        self._known: dict[_Key, tuple[Callable[[], object | None] | None, str | None]] = {}

    def digest(self, artifact: Artifact) -> str | None:
        """``content_digest(artifact)``, computed once for any number of artifacts over the
        same bytes."""
        if _folder(artifact):
            return None
        identified = _range_key(artifact.source)
        if identified is None:
            return content_digest(artifact)
        key, anchor = identified
        known = self._known.get(key)
        if known is not None:
            reference, value = known
            if reference is None or reference() is anchor:
                return value
        value = content_digest(artifact)
        try:
            reference = weakref.ref(anchor) if anchor is not None else None
        except TypeError:  # an object without weak references: not remembered
            return value
        self._known[key] = (reference, value)
        return value
