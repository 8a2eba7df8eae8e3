"""Reading the rule folder's YAML documents, with a parsed copy cached as JSON.

Parsing every rule and list file is most of what a pre-commit run on one small file costs, and
the files do not change between runs.  The cache key is a hash of every file's path and bytes
(and ckptguard's version), so an edited rule is never served stale; the cache lives in the
user's cache folder (``$CKPTGUARD_CACHE_DIR``, ``$XDG_CACHE_HOME/ckptguard`` or
``~/.cache/ckptguard``), ``CKPTGUARD_NO_CACHE=1`` turns it off, and any problem with it (no
home, read-only disk, a corrupt file) falls back to parsing.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ckptguard import __version__
from ckptguard.yamlio import load_yaml


def cache_directory() -> Path | None:
    if os.environ.get("CKPTGUARD_NO_CACHE"):
        return None
    explicit = os.environ.get("CKPTGUARD_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "ckptguard"
    home = os.environ.get("HOME")
    return Path(home) / ".cache" / "ckptguard" if home else None


def read_documents(base: Path) -> dict[str, Any]:
    """Every ``*.yaml`` under ``base``, parsed, by path relative to ``base`` (POSIX form)."""
    files = sorted(base.rglob("*.yaml"))
    contents = {path.relative_to(base).as_posix(): path.read_bytes() for path in files}
    digest = hashlib.sha256(__version__.encode())
    for name, data in contents.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    directory = cache_directory()
    cached = directory / f"rules-{digest.hexdigest()[:32]}.json" if directory else None
    if cached is not None:
        try:
            documents: dict[str, Any] = json.loads(cached.read_text(encoding="utf-8"))
            if set(documents) == set(contents):
                return documents
        except (OSError, ValueError):
            pass
    documents = {name: load_yaml(data.decode("utf-8")) for name, data in contents.items()}
    if cached is not None:
        _store(cached, documents)
    return documents


def _store(target: Path, documents: dict[str, Any]) -> None:
    try:
        text = json.dumps(documents)
        if json.loads(text) != documents:  # YAML that JSON cannot hold exactly: no cache
            return
        import tempfile

        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target.parent,
                                         delete=False, suffix=".tmp") as handle:
            handle.write(text)
        os.replace(handle.name, target)
    except (OSError, TypeError, ValueError):
        return
