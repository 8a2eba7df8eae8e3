"""joblib < 0.10 array files: ``NDArrayWrapper``/``ZNDArrayWrapper`` name a file that
``joblib.load`` opens beside the pickle (``os.path.join(dirname, filename)``) with
``numpy.load(allow_pickle=True)``.  A file that is there is scanned as a child of the pickle, so
the wrappers are judged by what their files hold; one that points elsewhere, or that cannot be
found, is a fact of its own."""

from __future__ import annotations

import os

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats.pickle.trace import Trace
from ckptguard.source import FileSource

SIDE_PREFIX = "<side file "


def _place(artifact: Artifact, name: str) -> tuple[str, str | None]:
    """Where the loader finds ``name``: beside (with its path), outside, link, missing,
    unresolved (the pickle is no whole file on disk) or unknown (no constant name)."""
    if not name:
        return "unknown", None
    if "\x00" in name or "/" in name or "\\" in name or name in (".", "..") or \
            os.path.isabs(name):
        return "outside", None
    source = artifact.source
    if not isinstance(source, FileSource) or source.start or source.length is not None:
        return "unresolved", None
    candidate = os.path.join(os.path.dirname(source.path), name)
    if os.path.islink(candidate):
        return "link", None
    if os.path.isfile(candidate):
        return "beside", candidate
    return "missing", None


def side_file_facts(trace: Trace, artifact: Artifact, output: ParseOutput) -> None:
    scanned: set[str] = set()
    for note in trace.side_files:
        name = note.detail
        place, path = _place(artifact, name)
        output.add("pickle.side_file", artifact.location.within(offset=note.offset),
                   offset=note.offset, file=name or "<not a constant>",
                   wrapper=dict(note.extra).get("wrapper", ""), place=place)
        if path is not None and name not in scanned:
            scanned.add(name)
            output.children.append(artifact.child(f"{SIDE_PREFIX}{name}>", FileSource(path)))
