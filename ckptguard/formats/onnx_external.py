"""Judging ONNX external-data references without reading them.

A tensor stored outside the model names its file in ``external_data["location"]``, relative to
the model's folder.  A loader opens that path and reads ``length`` bytes at ``offset``; a saver
writes there.  So a location that is absolute, climbs out with ``..``, or resolves through a
symlink to outside the folder lets a model read (or, on save, overwrite) any file the user can
reach.  This module only looks at paths and file sizes: it never opens the referenced file.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

# Verdicts, from worst to mildest.
ABSOLUTE = "absolute"
TRAVERSAL = "traversal"
SYMLINK_ESCAPE = "symlink-escape"
MISSING = "missing"
OUT_OF_RANGE = "out-of-range"
BAD_FIELD = "bad-field"
OK = "ok"
UNCHECKED = "unchecked"  # the model is not a plain file on disk: only the path text was judged

_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ExternalRef:
    tensor: str
    location: str
    offset: int | None
    length: int | None


@dataclass(frozen=True)
class Verdict:
    problem: str
    resolved: str  # the real path the reference reaches ("" when not resolved)
    detail: str


def _parse_int(text: str | None) -> int | None:
    if text is None:
        return None
    return int(text.strip()) if text.strip().isdigit() else -1


def _text(value: object) -> str | None:
    """protobuf hands back bytes for a string field that is not valid UTF-8."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def external_ref(tensor: str, entries: dict[str, str]) -> ExternalRef:
    """An ``ExternalRef`` from a TensorProto's ``external_data`` key/value pairs; a non-numeric
    offset or length is kept as -1 so that it is reported."""
    return ExternalRef(tensor, _text(entries.get("location")) or "",
                       _parse_int(_text(entries.get("offset"))),
                       _parse_int(_text(entries.get("length"))))


def judge_path_text(location: str) -> Verdict | None:
    """Problems visible in the path text alone (no file system access)."""
    if not location:
        return Verdict(BAD_FIELD, "", "the external data entry has no location")
    if "\0" in location:
        return Verdict(BAD_FIELD, "", "the location contains a NUL byte")
    unified = location.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified) or unified.startswith("~"):
        return Verdict(ABSOLUTE, "", f"absolute path {location!r}")
    if ".." in unified.split("/"):
        normal = posixpath.normpath(unified)
        detail = f"{location!r} climbs out of the model folder"
        if normal.startswith("..") or ".." in normal.split("/"):
            return Verdict(TRAVERSAL, "", detail)
        # "a/../b" stays inside, but ONNX itself rejects ".." outright: still a violation.
        return Verdict(TRAVERSAL, "", f"{location!r} uses '..' (stays inside after normalising)")
    return None


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def judge(ref: ExternalRef, model_dir: str | None) -> Verdict:
    """The verdict for one reference; ``model_dir`` is the folder of the model file on disk, or
    None when the model is an archive member or in memory (then only the path text is judged)."""
    textual = judge_path_text(ref.location)
    if textual is not None:
        return textual
    if (ref.offset is not None and ref.offset < 0) or (ref.length is not None and ref.length < 0):
        return Verdict(BAD_FIELD, "", "offset or length is not a non-negative integer")
    if model_dir is None:
        return Verdict(UNCHECKED, "", "the model is not a file on disk; only the path was judged")
    folder = os.path.realpath(model_dir)
    target = os.path.realpath(os.path.join(folder, ref.location.replace("\\", "/")))
    if not _inside(target, folder):
        return Verdict(SYMLINK_ESCAPE, target,
                       f"{ref.location!r} resolves through a symlink to {target}")
    if not os.path.isfile(target):
        return Verdict(MISSING, target, f"{ref.location!r} does not exist next to the model")
    size = os.path.getsize(target)
    start = ref.offset or 0
    end = start + ref.length if ref.length is not None else size
    if start > size or end > size:
        return Verdict(OUT_OF_RANGE, target,
                       f"bytes {start}..{end} requested from a {size}-byte file")
    return Verdict(OK, target, "")
