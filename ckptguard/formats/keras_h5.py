"""HDF5 files: plain HDF5 (``hdf5``) or Keras-2 models (``keras-h5``, a root ``model_config``).

Read without libhdf5: the HDF5 library can hang inside C code on a malformed file (found by
fuzzing), where no timeout can reach it, so ckptguard finds what it needs in the bytes itself.
HDF5 stores attribute names and string values uncompressed — a fixed-length string right after
the attribute's type, a variable-length one in a global heap collection — so the JSON text Keras
writes as ``model_config`` / ``training_config`` is present verbatim.  The reader looks for the
attribute names and for JSON objects in the first and last windows of the file (where HDF5
places object headers and heaps; weights are never decoded), and decodes each candidate with a
bounded JSON decoder.  A ``model_config`` whose text cannot be found or decoded is a fact
(``hdf5.unexamined``), never a silent pass.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.keras_fmt import analyse_config
from ckptguard.source import ByteSource

HEAD_WINDOW = 64 * 1024**2
TAIL_WINDOW = 16 * 1024**2
FIRST_SLICE = 64 * 1024
MAX_CANDIDATES = 256
VERSION = re.compile(rb"keras_version.{0,160}?(\d+\.\d+(?:\.\d+)?(?:[-+.\w]{0,16}))", re.DOTALL)
BACKEND = re.compile(rb"backend.{0,160}?(tensorflow|theano|cntk|jax|torch)", re.DOTALL)


def _windows(source: ByteSource) -> Iterator[tuple[int, bytes]]:
    size = source.size
    yield 0, source.read(0, min(size, HEAD_WINDOW))
    if size > HEAD_WINDOW:
        start = max(HEAD_WINDOW, size - TAIL_WINDOW)
        yield start, source.read(start, size - start)


def _decode_at(window: bytes, position: int, limit: int) -> tuple[Any, int] | None:
    """The JSON value starting at ``position`` and where it ends, reading at most ``limit``
    bytes; None when the bytes there are no complete JSON value within the limit."""
    decoder = json.JSONDecoder()
    span = FIRST_SLICE
    while True:
        chunk = window[position:position + min(span, limit)]
        text = chunk.decode("utf-8", "replace")
        try:
            value, end = decoder.raw_decode(text)
        except (ValueError, RecursionError):
            if span >= limit or position + span >= len(window):
                return None
            span *= 8
            continue
        return value, position + len(text[:end].encode("utf-8", "replace"))


def _json_objects(window: bytes, limit: int) -> Iterator[dict[str, Any]]:
    """Top-level JSON objects in ``window`` (an object inside one already found is skipped)."""
    position = window.find(b'{"')
    tried = 0
    while position >= 0 and tried < MAX_CANDIDATES:
        tried += 1
        decoded = _decode_at(window, position, limit)
        if decoded is not None and isinstance(decoded[0], dict):
            yield decoded[0]
            position = window.find(b'{"', decoded[1])
        else:
            position = window.find(b'{"', position + 2)


def _is_model_config(value: dict[str, Any]) -> bool:
    return "class_name" in value and "config" in value


def _is_training_config(value: dict[str, Any]) -> bool:
    return "optimizer_config" in value or ("loss" in value and "metrics" in value)


def declared_end(head: bytes) -> int | None:
    """The end-of-file address the HDF5 superblock declares (relative to its base address), or
    None when the superblock is not one ckptguard knows (versions 0 to 3)."""
    if len(head) < 48 or head[8] > 3:
        return None
    version = head[8]
    offsets = head[13] if version < 2 else head[9]
    if offsets not in (2, 4, 8):
        return None
    start = {0: 24, 1: 28}.get(version, 12) + 2 * offsets
    if start + offsets > len(head):
        return None
    return int.from_bytes(head[start:start + offsets], "little")


def parse(artifact: Artifact, context: ParseContext) -> ParseOutput:
    output = ParseOutput(format="hdf5")
    where = artifact.location
    end = declared_end(artifact.source.read(0, 64))
    if end is not None and end > artifact.source.size:
        # h5py (and so Keras) refuses a file shorter than its superblock says: what is missing
        # was never examined either.
        output.add("parse.error", where, format="hdf5",
                   error=f"truncated HDF5 file: the superblock ends the file at byte {end}, "
                         f"but it has {artifact.source.size} bytes", offset=artifact.source.size,
                   read=artifact.source.size)
        return output
    limit = context.limits.max_header_bytes
    named = {"model_config": False, "training_config": False}
    found: dict[str, dict[str, Any]] = {}
    version = backend = ""
    for _, window in _windows(artifact.source):
        for name in named:
            named[name] = named[name] or name.encode() in window
        if not any(named.values()):
            continue
        for value in _json_objects(window, limit):
            if _is_model_config(value):
                found.setdefault("model_config", value)
            elif _is_training_config(value):
                found.setdefault("training_config", value)
        version = version or _match(VERSION, window)
        backend = backend or _match(BACKEND, window)
    if not named["model_config"]:
        return output  # a plain HDF5 file: nothing Keras would deserialize
    output.format = "keras-h5"
    if version or backend:
        output.add("keras.version", where, keras_version=version, backend=backend,
                   source="hdf5 root attributes")
    for name in ("model_config", "training_config"):
        key = where.within(key=name)
        if name in found:
            analyse_config(found[name], output, key, name, artifact=artifact,
                           limits=context.limits)
        elif named[name]:
            output.add("hdf5.unexamined", key, reason=f"the {name!r} attribute's JSON text was "
                       f"not found or not decodable within {limit} bytes",
                       detail="the Keras configuration it holds was not examined; treat the "
                              "file as unverified")
    return output


def _match(pattern: re.Pattern[bytes], window: bytes) -> str:
    hit = pattern.search(window)
    return hit.group(1).decode("ascii", "replace") if hit else ""

