"""Reading a package's Python source without importing it: an installed package, a folder, a
wheel or an sdist.  Archives are read member by member in memory (nothing is extracted), with
bounded sizes; only ``.py`` files are kept."""

from __future__ import annotations

import hashlib
import os
import sys
import tarfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_FILES = 100_000
SKIPPED_DIRS = frozenset({"tests", "test", "testing", "__pycache__", "benchmarks", "examples"})


class SourceError(ValueError):
    """A source that cannot be read (missing, not a package, too large)."""


@dataclass(frozen=True)
class SourceSet:
    """The Python modules of one or more top-level packages, by dotted module name."""

    packages: tuple[str, ...]  # top-level package names
    version: str  # distribution version, "unknown" when no metadata was found
    modules: Mapping[str, str]  # dotted module name -> source text
    origin: str  # what was read (a path or "installed NAME")
    inits: frozenset[str] = frozenset()  # modules read from an __init__.py (packages)

    @property
    def sha256(self) -> str:
        """A hash of every module's name and text: the same sources give the same hash."""
        digest = hashlib.sha256()
        for name in sorted(self.modules):
            digest.update(name.encode() + b"\0")
            digest.update(hashlib.sha256(self.modules[name].encode()).digest())
        return digest.hexdigest()


def _module_name(relative: PurePosixPath) -> str | None:
    """``pkg/sub/mod.py`` -> ``pkg.sub.mod``; ``pkg/__init__.py`` -> ``pkg``; None for files that
    are not importable modules (test folders, names that are not identifiers)."""
    parts = list(relative.parts)
    if not parts or not parts[-1].endswith(".py"):
        return None
    parts[-1] = parts[-1][:-3]
    if parts[-1] == "__init__":
        parts.pop()
    if not parts or any(not p.isidentifier() for p in parts):
        return None
    if any(p in SKIPPED_DIRS or p.startswith("test_") for p in parts[1:]):
        return None
    return ".".join(parts)


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _add(modules: dict[str, str], relative: PurePosixPath, data: bytes) -> None:
    """Add one file; a package's ``__init__`` is recorded under the key ``NAME/`` too."""
    name = _module_name(relative)
    if name is not None and len(modules) < MAX_FILES:
        modules.setdefault(name, _decode(data))
        if relative.name == "__init__.py":
            modules.setdefault(name + "/", "")


def _split(modules: dict[str, str]) -> tuple[dict[str, str], frozenset[str]]:
    inits = frozenset(name[:-1] for name in modules if name.endswith("/"))
    return {k: v for k, v in modules.items() if not k.endswith("/")}, inits


def _source_set(packages: tuple[str, ...], version: str, modules: dict[str, str],
                origin: str) -> SourceSet:
    texts, inits = _split(modules)
    return SourceSet(packages, version, texts, origin, inits)


def _from_folder(root: Path, packages: list[str]) -> dict[str, str]:
    modules: dict[str, str] = {}
    for package in packages:
        top = root / package
        if top.is_file():
            _add(modules, PurePosixPath(top.name), top.read_bytes())
            continue
        for directory, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS)
            for filename in sorted(filenames):
                path = Path(directory) / filename
                if filename.endswith(".py") and path.stat().st_size <= MAX_FILE_BYTES:
                    _add(modules, PurePosixPath(path.relative_to(root).as_posix()),
                         path.read_bytes())
    return modules


def _packages_in(root: Path) -> list[str]:
    """Top-level packages (folders with ``__init__.py``) and modules directly in ``root``."""
    found = [p.name for p in sorted(root.iterdir())
             if p.is_dir() and (p / "__init__.py").is_file() and p.name.isidentifier()]
    return found


def _archive_members(path: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.filename.endswith((".py", "/METADATA", "/PKG-INFO")) and \
                        not info.is_dir() and info.file_size <= MAX_FILE_BYTES:
                    yield PurePosixPath(info.filename), archive.read(info)
        return
    try:
        with tarfile.open(path) as archive:
            for member in archive:
                if member.isfile() and member.size <= MAX_FILE_BYTES and \
                        member.name.endswith((".py", "/PKG-INFO")):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield PurePosixPath(member.name), handle.read(MAX_FILE_BYTES + 1)
    except tarfile.TarError as exc:
        raise SourceError(f"{path}: not a wheel, zip or tar archive ({exc})") from None


def _version_from(metadata: bytes) -> str:
    headers = HeaderParser().parsestr(_decode(metadata))
    return str(headers.get("Version") or "unknown")


def _from_archive(path: Path) -> SourceSet:
    files: dict[PurePosixPath, bytes] = {}
    version = "unknown"
    for name, data in _archive_members(path):
        if ".." in name.parts or name.is_absolute():
            continue
        if name.name in ("METADATA", "PKG-INFO"):
            if version == "unknown" and len(name.parts) <= 2:
                version = _version_from(data)
            continue
        files[name] = data
    strip = 0 if path.suffix == ".whl" else 1  # an sdist holds NAME-VERSION/...
    modules: dict[str, str] = {}
    tops: set[str] = set()
    for name, data in sorted(files.items()):
        parts = name.parts[strip:]
        if parts and parts[0] == "src":
            parts = parts[1:]
        if parts:
            _add(modules, PurePosixPath(*parts), data)
            if parts[-1] == "__init__.py" and len(parts) in (2, 3):
                tops.add(parts[0])  # a package, or a namespace package (pyannote/audio/)
    # Only packages (a folder with __init__.py): not setup.py, docs/conf.py or loose scripts.
    modules = {m: text for m, text in modules.items() if m.rstrip("/").split(".")[0] in tops}
    packages = sorted({m.rstrip("/").split(".")[0] for m in modules})
    if not modules:
        raise SourceError(f"{path}: holds no Python package")
    return _source_set(tuple(packages), version, modules, str(path))


def _installed(name: str, search: list[str]) -> SourceSet:
    from importlib import metadata

    for entry in search:
        root = Path(entry)
        if (root / name / "__init__.py").is_file() or (root / f"{name}.py").is_file():
            target = name if (root / name).is_dir() else f"{name}.py"
            version = "unknown"
            for dist in metadata.distributions(path=[entry]):
                top = (dist.read_text("top_level.txt") or "").split()
                files = [str(f).split("/")[0] for f in (dist.files or [])]
                if name in top or name in files:
                    version = dist.version
                    break
            return _source_set((name,), version, _from_folder(root, [target]),
                             f"installed {name} ({root})")
    raise SourceError(f"{name}: no installed package of that name (and no such path)")


def read_sources(spec: str, *, search: list[str] | None = None) -> SourceSet:
    """Sources from a path (package folder, folder of packages, wheel, sdist) or the name of an
    installed top-level package (looked up on ``search``, default ``sys.path``; never
    imported)."""
    path = Path(spec)
    if path.is_file():
        if path.suffix == ".py":
            return _source_set((path.stem,), "unknown", _from_folder(path.parent, [path.name]),
                             str(path))
        return _from_archive(path)
    if path.is_dir():
        if (path / "__init__.py").is_file():
            return _source_set((path.name,), "unknown", _from_folder(path.parent, [path.name]),
                             str(path))
        packages = _packages_in(path)
        if not packages:
            raise SourceError(f"{path}: no Python package (a folder with __init__.py) in it")
        return _source_set(tuple(packages), "unknown", _from_folder(path, packages), str(path))
    if spec.isidentifier():
        return _installed(spec, search if search is not None else [p for p in sys.path if p])
    raise SourceError(f"{spec}: no such file, folder or installed package")
