"""What an SBOM describes: model units (repository folders and lone model files) with their
weight files, checksums and license facts, collected without loading anything."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ckptguard.discover import FolderSkipped, Skipped, discover
from ckptguard.facts import Artifact, Fact
from ckptguard.formats import ParseContext, parser_for
from ckptguard.license import sources
from ckptguard.license.catalog import load_catalog
from ckptguard.license.lineage import base_attributes, embedded_bases, embedded_name
from ckptguard.sniff import sniff

MODEL_FORMATS = {"pickle", "torch-legacy", "pytorch-zip", "torchscript", "zip", "numpy", "npz",
                 "joblib", "safetensors", "gguf", "onnx", "keras", "hdf5", "keras-h5",
                 "savedmodel", "tflite", "tar", "gzip", "bz2", "xz", "zlib", "lzma"}


@dataclass(frozen=True)
class WeightFile:
    path: str  # as reported (relative to the working directory when below it)
    format: str
    size: int
    sha256: str
    facts: tuple[Fact, ...]  # embedded metadata.license facts


@dataclass(frozen=True)
class ModelUnit:
    name: str
    path: str
    is_repo: bool
    facts: tuple[Fact, ...]  # license.* facts (repos; a lone file's declared base models)
    files: tuple[WeightFile, ...]


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _weight_file(artifact: Artifact, real_path: str) -> tuple[WeightFile, list[Fact]] | None:
    """The weight file, and the lineage its own metadata declares (``metadata.base_model``,
    ``metadata.name``)."""
    sniffed = sniff(artifact)
    if sniffed.format not in MODEL_FORMATS:
        return None
    facts: tuple[Fact, ...] = ()
    lineage: list[Fact] = []
    if sniffed.format in sources.HEADER_FORMATS:
        parser = parser_for(sniffed.format)
        if parser is not None:
            try:
                parsed = parser(artifact, ParseContext())
                facts = tuple(parsed.of_kind("metadata.license"))
                lineage = [f for f in parsed.facts
                           if f.kind in ("metadata.base_model", "metadata.name")]
            except Exception:  # noqa: BLE001 - the scan reports parse problems; the BOM lists
                facts = ()
    return WeightFile(artifact.chain[0], sniffed.format, os.path.getsize(real_path),
                      sha256_of(real_path), facts), lineage


def _lone_unit(weight: WeightFile, lineage: list[Fact]) -> ModelUnit:
    """A model file outside a repository: its name and base models are what it declares."""
    catalog = load_catalog()
    bases = tuple(Fact.of("license.base_model", base.location, **base_attributes(base, catalog))
                  for base in embedded_bases(f for f in lineage
                                             if f.kind == "metadata.base_model"))
    named = embedded_name(f for f in lineage if f.kind == "metadata.name")
    return ModelUnit(named.value if named else Path(weight.path).name, weight.path, False, bases,
                     (weight,))


def inventory(paths: Iterable[str | os.PathLike[str]], *, root: Path | None = None,
              context: ParseContext | None = None) -> list[ModelUnit]:
    """Model units under ``paths``: each repository folder, and each model file outside one."""
    ctx = context or ParseContext()
    repos: dict[str, tuple[Artifact, list[WeightFile]]] = {}
    lone: list[ModelUnit] = []
    for item in discover(paths, root=root):
        if isinstance(item, (Skipped, FolderSkipped)):
            continue
        if item.directory is not None:
            repos[item.directory] = (item, [])
            continue
        source_path = getattr(item.source, "path", None)
        if source_path is None:
            continue
        found = _weight_file(item, source_path)
        if found is None:
            continue
        weight, lineage = found
        parent = str(Path(source_path).parent)
        if parent in repos:
            repos[parent][1].append(weight)
        else:
            lone.append(_lone_unit(weight, lineage))
    units = []
    for directory, (artifact, files) in repos.items():
        collected = sources.collect(artifact, ctx)
        repo_fact = next(collected.of_kind("license.repo"), None)
        name = str(repo_fact.get("name")) if repo_fact else Path(directory).name
        units.append(ModelUnit(name, artifact.chain[0], True, tuple(collected.facts),
                               tuple(files)))
    return units + lone
