"""Pickle weights shipped beside an equivalent safetensors file in a repository folder.

Pairs: ``pytorch_model.bin`` / ``model.safetensors``, ``adapter_model.bin`` /
``adapter_model.safetensors``, shards ``pytorch_model-00001-of-00002.bin`` /
``model-00001-of-00002.safetensors``, and the shard indexes ``pytorch_model.bin.index.json`` /
``model.safetensors.index.json``.  Loaders prefer safetensors, but anyone loading the pickle by
name (or a tool falling back to it) runs whatever code it carries.
"""

from __future__ import annotations

import posixpath

PICKLE_EXTENSIONS = (".bin", ".pt", ".pth", ".ckpt")
INDEX_SUFFIX = ".index.json"


def _safetensors_stems(stem: str) -> list[str]:
    stems = [stem]
    if "pytorch_model" in stem:
        stems.append(stem.replace("pytorch_model", "model"))
    return stems


def pickle_beside_safetensors(files: list[str]) -> list[tuple[str, str]]:
    """``(pickle file, its safetensors counterpart)`` pairs among repo-relative paths."""
    present = set(files)
    pairs: list[tuple[str, str]] = []
    for name in files:
        folder, base = posixpath.split(name)
        index = base.endswith(INDEX_SUFFIX)
        core = base[: -len(INDEX_SUFFIX)] if index else base
        stem, ext = posixpath.splitext(core)
        if ext not in PICKLE_EXTENSIONS:
            continue
        for candidate in _safetensors_stems(stem):
            other = posixpath.join(folder, candidate + ".safetensors" +
                                   (INDEX_SUFFIX if index else ""))
            if other in present:
                pairs.append((name, other))
                break
    return pairs
