"""Turn the paths a user named into artifacts: files, and Hugging Face style repo folders judged as
one unit.  Archive members are found later, by the archive parsers, as children of an artifact."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ckptguard.facts import Artifact
from ckptguard.fsguard import (
    classify_link,
    containment_root,
    file_problem,
    problem,
    special_kind,
)
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.source import FileSource, MemorySource

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
             "node_modules", ".venv", "venv", ".tox"}
REPO_MARKERS = ("config.json", "tokenizer_config.json", "model_index.json", "adapter_config.json")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


@dataclass(frozen=True)
class FolderSkipped:
    """A folder not scanned because of its name (``.git``, ``venv`` …), shown with a slash."""

    path: str


def is_repo_folder(directory: Path) -> bool:
    """A folder a model hub would serve as one repository: it has a model config or card."""
    try:
        return _is_repo_folder(directory)
    except OSError:  # listed but not searchable: its files are reported one by one
        return False


def _is_repo_folder(directory: Path) -> bool:
    if any((directory / marker).is_file() for marker in REPO_MARKERS):
        return True
    readme = directory / "README.md"
    if readme.is_file() and not readme.is_symlink():
        try:
            with readme.open("rb") as handle:
                return handle.read(4) in (b"---\n", b"---\r")
        except OSError:
            return False
    return False


def display_path(path: Path, root: Path | None) -> str:
    """Paths are reported relative to the working directory when they are below it."""
    try:
        return path.relative_to(root).as_posix() if root else path.as_posix()
    except ValueError:
        return path.as_posix()


def discover(paths: Iterable[str | os.PathLike[str]], *, excludes: Iterable[str] = (),
             root: Path | None = None, include_skipped: bool = False,
             max_depth: int = DEFAULT_LIMITS.max_tree_depth
             ) -> Iterator[Artifact | Skipped | FolderSkipped]:
    """Artifacts for the named paths, in a deterministic (sorted) order.  A path that cannot be
    judged becomes a ``filesystem`` artifact saying why (see ckptguard.fsguard); folders skipped
    by name are yielded as ``FolderSkipped`` unless ``include_skipped``."""
    exclude_patterns = tuple(excludes)
    cwd = root or Path.cwd()
    walk = _Walk(cwd, exclude_patterns, include_skipped, max_depth)
    for raw in paths:
        path = Path(raw)
        if str(raw) == "-":
            import sys

            yield Artifact(("<stdin>",), MemorySource(sys.stdin.buffer.read()))
            continue
        try:
            os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            yield Skipped(str(raw), "no such file or directory")
            continue
        except OSError as exc:  # e.g. below a folder that may not be entered
            yield problem(display_path(path, cwd), "unreadable", f"cannot stat: {exc.strerror}")
            continue
        try:
            folder = path.is_dir()  # a folder named through a link is scanned where it leads
        except OSError as exc:
            yield problem(display_path(path, cwd), "unreadable", f"cannot stat: {exc.strerror}")
            continue
        if folder:
            yield from walk.tree(path)
        elif _excluded(display_path(path, cwd), exclude_patterns):
            continue
        else:
            yield from walk.entry(path, _file_root(path, cwd), depth=0)


def _file_root(path: Path, cwd: Path) -> Path:
    """What a named file may lead to: the working folder when the file is below it, else the
    folder that holds it."""
    absolute = Path(os.path.abspath(path))
    real_cwd = Path(os.path.realpath(cwd))
    if absolute.is_relative_to(Path(os.path.abspath(cwd))) or absolute.is_relative_to(real_cwd):
        return real_cwd
    return Path(os.path.realpath(absolute.parent))


def _file_artifact(path: Path, cwd: Path, in_repo: str | None = None) -> Artifact:
    return Artifact((display_path(path, cwd),), FileSource(str(path)), in_repo=in_repo)


def _excluded(name: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, p) or fnmatch(Path(name).name, p) for p in patterns)


@dataclass(frozen=True)
class _Walk:
    cwd: Path
    excludes: tuple[str, ...]
    include_skipped: bool
    max_depth: int

    def tree(self, top: Path) -> Iterator[Artifact | Skipped | FolderSkipped]:
        """Pre-order, sorted: a folder's repo unit, its files, then its sub-folders."""
        root = containment_root(top)
        # Each folder with the innermost repository folder it is in (scanned as a unit too).
        stack: list[tuple[Path, int, str | None]] = [(top, 0, None)]
        while stack:
            directory, depth, in_repo = stack.pop()
            try:
                with os.scandir(directory) as found:
                    names = sorted(entry.name for entry in found)
            except OSError as exc:
                yield problem(display_path(directory, self.cwd) + "/", "unreadable",
                              f"folder cannot be listed: {exc.strerror}")
                continue
            if is_repo_folder(directory):
                in_repo = display_path(directory, self.cwd) + "/"
                yield Artifact((in_repo,), MemorySource(b""),
                               directory=str(directory), format_hint="hf-repo")
            folders: list[Path] = []
            for name in names:
                path = directory / name
                shown = display_path(path, self.cwd)
                if _excluded(shown, self.excludes):
                    continue
                try:
                    own = os.lstat(path).st_mode
                except OSError as exc:  # a folder that may be listed but not entered
                    yield problem(shown, "unreadable", f"cannot stat: {exc.strerror}")
                    continue
                if stat.S_ISDIR(own):
                    if name in SKIP_DIRS and not self.include_skipped:
                        yield FolderSkipped(shown + "/")
                    elif depth + 1 > self.max_depth:
                        yield problem(shown + "/", "too_deep",
                                      f"folder deeper than {self.max_depth} levels")
                    else:
                        folders.append(path)
                    continue
                yield from self.entry(path, root, depth, in_repo)
            stack.extend((folder, depth + 1, in_repo) for folder in reversed(folders))

    def entry(self, path: Path, root: Path, depth: int,
              in_repo: str | None = None) -> Iterator[Artifact]:
        """One non-folder entry (or a link): a file artifact, a problem, or nothing (a link to
        a folder inside the root, which is scanned where it lives)."""
        shown = display_path(path, self.cwd)
        if os.path.islink(path):
            bad = classify_link(path, root)
            if bad is not None:
                yield problem(shown, *bad)
                return
        try:
            status = os.stat(path)
        except OSError as exc:
            yield problem(shown, "unreadable", f"cannot stat: {exc.strerror}")
            return
        mode = status.st_mode
        if stat.S_ISDIR(mode):
            return  # a link to a folder inside the scanned tree: scanned at its own place
        special = special_kind(mode)
        if special is not None:
            yield problem(shown, "special", f"{special}: content is produced when read")
            return
        trouble = file_problem(path, status.st_size)
        if trouble is not None:
            yield problem(shown, *trouble)
            return
        yield _file_artifact(path, self.cwd, in_repo)
