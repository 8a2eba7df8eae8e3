"""What the scanned tree may show ckptguard: paths that cannot be judged, and the edge of the tree.

A path the walk cannot judge (unreadable, special, a broken or looping link, beyond the depth
limit, a link out of the scanned folder) becomes an artifact of the ``filesystem`` format whose
source carries only what went wrong: the scan reports it as a finding on that path and goes on.
Nothing outside the scanned root is ever read, so no report can quote it.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from ckptguard.facts import Artifact, ParseOutput

# Hugging Face hub cache layout: <cache>/models--owner--name/snapshots/<rev>/file -> ../../blobs/…
HUB_REPO_PREFIXES = ("models--", "datasets--", "spaces--")
KINDS = ("unreadable", "outside_root", "special", "broken_link", "too_deep")


@dataclass(frozen=True)
class ProblemSource:
    """The (empty) content of a path that was not read, and why: ``kind`` is one of KINDS."""

    kind: str
    detail: str

    @property
    def size(self) -> int:
        return 0

    def read(self, offset: int, length: int) -> bytes:
        return b""

    def view(self) -> memoryview:
        return memoryview(b"")


def problem(shown: str, kind: str, detail: str) -> Artifact:
    if kind not in KINDS:
        raise ValueError(f"unknown filesystem problem {kind!r}")
    return Artifact((shown,), ProblemSource(kind, detail), format_hint="filesystem")


def containment_root(directory: Path) -> Path:
    """The folder nothing may be read outside of, for a scan of ``directory``: the folder itself
    (resolved), widened to the repository folder when it is a snapshot of a hub cache, whose files
    are links into ``../../blobs``."""
    real = Path(os.path.realpath(directory))
    if real.parent.name == "snapshots" and real.parent.parent.name.startswith(HUB_REPO_PREFIXES):
        return real.parent.parent
    return real


def inside(path: Path, root: Path) -> bool:
    """Whether ``path`` (every link followed) lies in ``root`` (already resolved)."""
    real = Path(os.path.realpath(path))
    return real == root or real.is_relative_to(root)


def classify_link(path: Path, root: Path) -> tuple[str, str] | None:
    """(kind, detail) for a symbolic link that must not be followed, or None when it leads to a
    place inside ``root``.  The target is named, never read."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "broken_link", "symbolic link loop"
        return "broken_link", f"dangling symbolic link ({exc.strerror})"
    if not inside(path, root):
        return "outside_root", f"symbolic link to {os.readlink(path)}, outside the scanned folder"
    return None


def special_kind(mode: int) -> str | None:
    """A name for a file type that has no content to judge, or None for files and folders."""
    for test, name in ((stat.S_ISFIFO, "named pipe (FIFO)"), (stat.S_ISSOCK, "socket"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device")):
        if test(mode):
            return name
    return None


def file_problem(path: Path, size: int) -> tuple[str, str] | None:
    """Why the regular file at ``path`` cannot be judged, as (kind, detail), or None when it
    can.  It is opened (O_NONBLOCK, so that a file swapped for a FIFO cannot block the walk),
    what was opened must still be a regular file, and one byte is read at ``size``, the length
    its metadata states: a file that reads past it
    has content produced when read (/proc and /sys report 0 or 4096 bytes, a FUSE file whatever
    its writer chooses) or is still being written, and the scan, which reads ``size`` bytes,
    would judge other bytes than a loader reading to the end."""
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        return "unreadable", f"cannot open: {exc.strerror}"
    try:
        swapped = special_kind(os.fstat(handle).st_mode)
        if swapped is not None:  # replaced between the walk's stat and this open
            return "special", f"{swapped}: content is produced when read"
        if hasattr(os, "pread"):
            beyond = os.pread(handle, 1, size)
        else:  # pragma: no cover - platforms without pread
            os.lseek(handle, size, os.SEEK_SET)
            beyond = os.read(handle, 1)
    except OSError:
        beyond = b""  # opened but not readable there: the parser reports what it cannot read
    finally:
        os.close(handle)
    if beyond:
        return "special", (f"a file stated as {size} bytes that reads past them: content is "
                           "produced when read (/proc, /sys, FUSE) or still being written")
    return None


def parse(artifact: Artifact, context: object) -> ParseOutput:
    """The ``filesystem`` format: one fact saying why this path was not judged."""
    output = ParseOutput()
    source = artifact.source
    if isinstance(source, ProblemSource):
        output.add(f"filesystem.{source.kind}", artifact.location, detail=source.detail)
    return output
