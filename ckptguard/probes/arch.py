"""Where an ``--arch package.module:factory`` comes from, decided before any of it runs.

The architecture must be code the user trusts, never code shipped beside the scanned weights
(a model repository can carry a ``modeling.py`` that runs on import).  Every module of the
dotted name (``package``, ``package.module``) is located through the import system's finders,
which read no module code, and refused when its file or package folder resolves (symlinks
followed) inside the scanned model's folder.  Only then is it imported, with every ``sys.path``
entry that points into that folder (the working directory included, when it is that folder)
taken out for the duration of the import, so nothing imported on the way can come from there.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from ckptguard.probes.network import ProbeError


def scanned_folders(scanned: Path) -> tuple[Path, ...]:
    """The folders an architecture must not come from: the scanned file's folder, both as named
    and with symlinks followed (a file may be a link into another model's folder)."""
    folders: list[Path] = []
    for candidate in (Path(os.path.abspath(scanned)), scanned.resolve()):
        folder = candidate if candidate.is_dir() else candidate.parent
        for form in (folder, folder.resolve()):
            if form not in folders:
                folders.append(form)
    return tuple(folders)


def inside(path: str | os.PathLike[str], folders: Sequence[Path]) -> bool:
    """Whether ``path`` (resolved, symlinks followed) lies in one of ``folders``."""
    try:
        resolved = Path(os.path.abspath(path)).resolve()
    except (OSError, RuntimeError):
        return True  # a path that cannot be resolved is not trusted
    return any(resolved == folder or resolved.is_relative_to(folder) for folder in folders)


def _path_entry_inside(entry: str, folders: Sequence[Path]) -> bool:
    return inside(entry or os.getcwd(), folders)


@contextmanager
def trusted_sys_path(folders: Sequence[Path]) -> Iterator[None]:
    """``sys.path`` without entries inside ``folders`` for the duration of the block."""
    saved = list(sys.path)
    sys.path[:] = [entry for entry in saved if not _path_entry_inside(entry, folders)]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved


def _find(name: str, search: list[str] | None) -> importlib.machinery.ModuleSpec | None:
    """The spec of ``name`` from the meta path finders, without executing any module."""
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        spec = find_spec(name, search)
        if spec is not None:
            return spec  # type: ignore[no-any-return]
    return None


def _places(spec: importlib.machinery.ModuleSpec | None,
            module: ModuleType | None) -> list[str]:
    places: list[str] = []
    origin = getattr(module, "__file__", None) if module is not None else None
    if spec is not None:
        if spec.has_location and spec.origin:
            places.append(spec.origin)
        places.extend(spec.submodule_search_locations or ())
    if origin:
        places.append(origin)
    if module is not None:
        places.extend(list(getattr(module, "__path__", None) or ()))
    return places


def check_origin(module_name: str, folders: Sequence[Path]) -> None:
    """Refuse ``module_name`` when it or a parent package lives inside ``folders``; nothing is
    imported (finders read directory listings, never module code)."""
    parts = module_name.split(".")
    search: list[str] | None = None
    for depth in range(1, len(parts) + 1):
        name = ".".join(parts[:depth])
        module = sys.modules.get(name)
        spec = module.__spec__ if module is not None else _find(name, search)
        if spec is None and module is None:
            raise ProbeError(f"--arch: no module named {name!r}")
        for place in _places(spec, module):
            if inside(place, folders):
                raise ProbeError(f"--arch module {name!r} resolves to {place}, inside the "
                                 "scanned model's folder; it was not imported. Name an "
                                 "architecture from code you trust")
        locations = (spec.submodule_search_locations if spec is not None else None) or \
            getattr(module, "__path__", None)
        if depth < len(parts) and not locations:
            raise ProbeError(f"--arch: {name!r} is not a package, so it has no module "
                             f"{parts[depth]!r}")
        search = list(locations or ())


def import_trusted(module_name: str, scanned: Path) -> ModuleType:
    """Import ``module_name`` after checking that no part of it comes from the scanned folder."""
    folders = scanned_folders(scanned)
    check_origin(module_name, folders)  # as the user's sys.path would find it: a clear refusal
    with trusted_sys_path(folders):
        check_origin(module_name, folders)
        module = importlib.import_module(module_name)
    origin = getattr(module, "__file__", None)
    if origin and inside(origin, folders):  # a finder that changed its mind: still refuse
        raise ProbeError(f"--arch module {module_name!r} resolves to {origin}, inside the "
                         "scanned model's folder")
    return module
