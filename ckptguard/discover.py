"""Turn the paths a user named into artifacts: files, and Hugging Face style repo folders judged as
one unit.  Archive members are found later, by the archive parsers, as children of an artifact."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ckptguard.facts import Artifact
from ckptguard.source import FileSource, MemorySource

SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".mypy_cache", ".ruff_cache", ".pytest_cache",
             "node_modules", ".venv", "venv", ".tox"}
REPO_MARKERS = ("config.json", "tokenizer_config.json", "model_index.json", "adapter_config.json")


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def is_repo_folder(directory: Path) -> bool:
    """A folder a model hub would serve as one repository: it has a model config or card."""
    if any((directory / marker).is_file() for marker in REPO_MARKERS):
        return True
    readme = directory / "README.md"
    if readme.is_file():
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
             root: Path | None = None) -> Iterator[Artifact | Skipped]:
    """Artifacts for the named paths, in a deterministic (sorted) order."""
    exclude_patterns = tuple(excludes)
    cwd = root or Path.cwd()
    for raw in paths:
        path = Path(raw)
        if str(raw) == "-":
            import sys

            yield Artifact(("<stdin>",), MemorySource(sys.stdin.buffer.read()))
            continue
        if not path.exists():
            yield Skipped(str(raw), "no such file or directory")
            continue
        if path.is_dir():
            yield from _walk(path, cwd, exclude_patterns)
        elif _excluded(display_path(path, cwd), exclude_patterns):
            continue
        else:
            yield _file_artifact(path, cwd)


def _file_artifact(path: Path, cwd: Path, in_repo: str | None = None) -> Artifact:
    return Artifact((display_path(path, cwd),), FileSource(str(path)), in_repo=in_repo)


def _excluded(name: str, patterns: tuple[str, ...]) -> bool:
    from fnmatch import fnmatch

    return any(fnmatch(name, p) or fnmatch(Path(name).name, p) for p in patterns)


def _walk(top: Path, cwd: Path, excludes: tuple[str, ...]) -> Iterator[Artifact | Skipped]:
    repos: list[tuple[Path, str]] = []
    for directory, dirnames, filenames in os.walk(top, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and
                             not _excluded(display_path(Path(directory) / d, cwd), excludes))
        here = Path(directory)
        if is_repo_folder(here):
            repos.append((here, display_path(here, cwd) + "/"))
            yield Artifact((repos[-1][1],), MemorySource(b""),
                           directory=str(here), format_hint="hf-repo")
        # The innermost repository folder this directory is in (scanned as a unit as well).
        in_repo = next((shown for root, shown in reversed(repos)
                        if here == root or root in here.parents), None)
        for name in sorted(filenames):
            path = here / name
            shown = display_path(path, cwd)
            if _excluded(shown, excludes):
                continue
            if path.is_symlink():
                target = path.resolve()
                if not target.is_file():
                    yield Skipped(shown, "broken or non-file symlink")
                    continue
            if not path.is_file():
                yield Skipped(shown, "not a regular file")
                continue
            yield _file_artifact(path, cwd, in_repo)
