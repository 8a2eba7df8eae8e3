"""The Hugging Face hub cache, scanned by repo id and revision rather than by blob hash.

Layout (``huggingface_hub``)::

    <cache>/models--org--name/refs/main                  -> text: a commit hash
    <cache>/models--org--name/snapshots/<commit>/<file>  -> symlink to ../../blobs/<hash>
    <cache>/models--org--name/blobs/<hash>

Each file is reported as ``org/name@<commit>/<file>``; a blob linked from several snapshots is
scanned once and its findings are reported under every name that links to it.  Each snapshot
folder that looks like a model repo is also judged as a whole (an ``hf-repo`` artifact).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

from ckptguard.discover import SKIP_DIRS, is_repo_folder
from ckptguard.facts import Artifact
from ckptguard.parallel import ScanUnit
from ckptguard.source import FileSource, MemorySource

REPO_KINDS = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
REF_BYTES = 256  # a ref file holds one commit hash


class CacheError(ValueError):
    """The named folder is not a Hugging Face hub cache."""


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    env = os.environ if environ is None else environ
    if env.get("HF_HUB_CACHE"):
        return Path(env["HF_HUB_CACHE"]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    xdg = env.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


@dataclass(frozen=True)
class CachedFile:
    name: str  # org/name@<commit>/<path in repo>
    link: Path  # the path inside the snapshot
    blob: Path  # the file it resolves to


@dataclass(frozen=True)
class Snapshot:
    repo_id: str  # org/name (datasets/org/name for datasets)
    revision: str  # the commit hash (the snapshot folder's name)
    refs: tuple[str, ...]  # branch or tag names that point at it
    directory: Path
    files: tuple[CachedFile, ...]

    @property
    def label(self) -> str:
        return f"{self.repo_id}@{self.revision}"


def repo_id_of(folder_name: str) -> str | None:
    """``models--org--name`` -> ``org/name``; None for folders that are not cached repos."""
    kind, sep, rest = folder_name.partition("--")
    if not sep or kind not in REPO_KINDS or not rest:
        return None
    return REPO_KINDS[kind] + rest.replace("--", "/")


def _refs(repo_dir: Path) -> dict[str, list[str]]:
    """commit -> ref names, from ``refs/`` (text files holding a commit hash)."""
    found: dict[str, list[str]] = {}
    refs_dir = repo_dir / "refs"
    if not refs_dir.is_dir():
        return found
    for ref in sorted(p for p in refs_dir.rglob("*") if p.is_file()):
        try:
            with ref.open("rb") as handle:
                commit = handle.read(REF_BYTES).decode("ascii", "replace").strip()
        except OSError:
            continue
        found.setdefault(commit, []).append(ref.relative_to(refs_dir).as_posix())
    return found


def _files(snapshot_dir: Path, label: str, max_files: int) -> Iterator[CachedFile]:
    count = 0
    for directory, dirnames, filenames in os.walk(snapshot_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        for name in sorted(filenames):
            link = Path(directory) / name
            try:
                blob = link.resolve(strict=True)
            except (OSError, RuntimeError):  # a partial download or a link loop: nothing to read
                continue
            if not blob.is_file():
                continue
            count += 1
            if count > max_files:
                raise CacheError(f"{label}: more than {max_files} files in one snapshot "
                                 "(limits.max-repo-files); raise the limit to scan it")
            yield CachedFile(f"{label}/{link.relative_to(snapshot_dir).as_posix()}", link, blob)


def walk_cache(cache_dir: Path, *, max_files: int = 100_000) -> Iterator[Snapshot]:
    """Every snapshot of every cached repo, sorted by repo id and revision."""
    if not cache_dir.is_dir():
        raise CacheError(f"{cache_dir}: no Hugging Face cache here (set HF_HUB_CACHE or pass "
                         "the folder to --hf-cache)")
    for repo_dir in sorted(p for p in cache_dir.iterdir() if p.is_dir()):
        repo_id = repo_id_of(repo_dir.name)
        snapshots = repo_dir / "snapshots"
        if repo_id is None or not snapshots.is_dir():
            continue
        refs = _refs(repo_dir)
        for snapshot_dir in sorted(p for p in snapshots.iterdir() if p.is_dir()):
            label = f"{repo_id}@{snapshot_dir.name}"
            files = tuple(_files(snapshot_dir, label, max_files))
            yield Snapshot(repo_id, snapshot_dir.name, tuple(refs.get(snapshot_dir.name, ())),
                           snapshot_dir, files)


def cache_units(snapshots: Iterable[Snapshot], excludes: Iterable[str] = ()) -> list[ScanUnit]:
    """One unit per distinct blob (every snapshot path linking to it as a name), plus one
    ``hf-repo`` unit per snapshot folder that looks like a model repo."""
    patterns = tuple(excludes)
    by_blob: dict[Path, list[str]] = {}
    in_repo: dict[Path, str] = {}  # blob -> the first repo unit that also covers it
    repos: list[ScanUnit] = []
    for snapshot in snapshots:
        repo = is_repo_folder(snapshot.directory)
        if repo:
            repos.append(ScanUnit(Artifact((snapshot.label + "/",), MemorySource(b""),
                                           directory=str(snapshot.directory),
                                           format_hint="hf-repo")))
        for item in snapshot.files:
            if any(fnmatch(item.name, p) or fnmatch(item.link.name, p) for p in patterns):
                continue
            by_blob.setdefault(item.blob, []).append(item.name)
            if repo:
                in_repo.setdefault(item.blob, snapshot.label + "/")
    units = [ScanUnit(Artifact((names[0],), FileSource(str(blob)), in_repo=in_repo.get(blob)),
                      file=str(blob), aliases=tuple(names[1:]))
             for blob, names in by_blob.items()]
    return [*repos, *units]
