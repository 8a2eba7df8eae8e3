"""Collect every license statement a model repository carries, as facts with their source:
the model card's front matter, LICENSE/NOTICE/COPYING files, embedded metadata of the weight
files (through ckptguard's own header parsers) and Python package metadata."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ckptguard.facts import Artifact, Fact, ParseOutput
from ckptguard.formats import ParseContext, parser_for
from ckptguard.fsguard import containment_root, inside
from ckptguard.license.catalog import Catalog, load_catalog
from ckptguard.license.families import BaseRef
from ckptguard.license.lineage import BaseModel, base_attributes, embedded_bases, embedded_name
from ckptguard.license.naming import card_names, model_name
from ckptguard.license.textid import identify
from ckptguard.model import Location
from ckptguard.sniff import sniff
from ckptguard.source import FileSource
from ckptguard.yamlio import YamlError, load_yaml

LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|notice|use_policy|responsible_ai_license)"
                          r"([._-].*)?$", re.IGNORECASE)
HEADER_FORMATS = ("safetensors", "gguf", "onnx", "tflite")
MAX_EMBEDDED_FILES = 64
MAX_EMBEDDED_BYTES = 256 * 1024**2  # ONNX protos are read whole: bound what we re-read
YAML_ALIAS = re.compile(r"(^|[\s\[{,:-])[&*][A-Za-z0-9_-]+")


def front_matter(text: str) -> tuple[Mapping[str, Any] | None, str | None]:
    """(front matter, problem) of a model card; aliases are refused (YAML bombs)."""
    if not text.startswith("---"):
        return None, None
    end = re.search(r"^---\s*$", text[3:], re.MULTILINE)
    if end is None:
        return None, "front matter is not closed by a '---' line"
    block = text[3:3 + end.start()]
    if YAML_ALIAS.search(block):
        return None, "front matter uses YAML anchors or aliases, which ckptguard does not expand"
    try:
        data = load_yaml(block)
    except YamlError as exc:
        return None, f"front matter is not valid YAML: {str(exc)[:200]}"
    if data is None:
        return {}, None
    if not isinstance(data, Mapping):
        return None, "front matter is not a mapping"
    return data, None


def _read_text(path: Path, limit: int, root: Path) -> str | None:
    """The start of a text file, or None when it cannot be read or leads out of ``root`` (a
    ``LICENSE`` linked to a secret file must never be quoted in a report)."""
    if not inside(path, root):
        return None
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError:
        return None
    if len(data) > limit:
        data = data[:limit]
    return data.decode("utf-8", "replace")


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _statement(output: ParseOutput, catalog: Catalog, where: Location, raw: object,
               source: str, confidence: float = 1.0) -> None:
    normalized = catalog.normalize(raw)
    terms = normalized.terms
    output.add("license.statement", where, source=source, raw=normalized.raw,
               license=normalized.id, spdx=terms.license_ref if terms else normalized.expression,
               expression=normalized.expression, ambiguous=bool(terms and terms.ambiguous),
               known=bool(terms and terms.known) or normalized.expression is not None,
               confidence=confidence)


def _card(directory: Path, chain: tuple[str, ...], catalog: Catalog, output: ParseOutput,
          limit: int) -> tuple[Mapping[str, Any], str]:
    readme = directory / "README.md"
    text = _read_text(readme, limit, containment_root(directory)) if readme.is_file() else None
    if text is None:
        return {}, ""
    where = Location((*chain, "README.md"))
    data, problem = front_matter(text)
    if problem is not None:
        output.add("license.card_problem", where, problem=problem)
    card = data or {}
    for raw in _as_list(card.get("license")):
        if raw.lower() == "other" and card.get("license_name"):
            _statement(output, catalog, where.within(key="license_name"),
                       card["license_name"], "card:license_name")
        else:
            _statement(output, catalog, where.within(key="license"), raw, "card:license")
    relation = str(card.get("base_model_relation") or "finetune")
    for base in _as_list(card.get("base_model")):
        stated = BaseModel(BaseRef(name=base), "card:base_model", where.within(key="base_model"),
                           relation)
        output.add("license.base_model", stated.location, **base_attributes(stated, catalog))
    return card, text


def _license_files(directory: Path, chain: tuple[str, ...], catalog: Catalog,
                   output: ParseOutput, limit: int) -> tuple[list[str], str]:
    names: list[str] = []
    texts: list[str] = []
    root = containment_root(directory)
    for path in sorted(directory.iterdir()):
        if not path.is_file() or not LICENSE_FILE.match(path.name) or not inside(path, root):
            continue  # a link out of the folder is reported by the walk (FSY002), never read
        names.append(path.name)
        text = _read_text(path, limit, root) or ""
        texts.append(text)
        match = identify(text, catalog)
        where = Location((*chain, path.name))
        if match is not None:
            _statement(output, catalog, where, match.hf_id, f"file:{path.name}", match.confidence)
        elif path.name.lower().startswith(("licen", "copying")):
            output.add("license.statement", where, source=f"file:{path.name}",
                       raw=text[:80].strip(), license="unrecognised", spdx=None,
                       expression=None, ambiguous=False, known=False, confidence=0.0)
    return names, "\n".join(texts)


def _package_metadata(directory: Path, chain: tuple[str, ...], catalog: Catalog,
                      output: ParseOutput, limit: int) -> None:
    candidates = [*directory.glob("*.dist-info/METADATA"), *directory.glob("PKG-INFO"),
                  *directory.glob("*.egg-info/PKG-INFO")]
    root = containment_root(directory)
    for path in sorted(candidates)[:8]:
        text = _read_text(path, limit, root) or ""
        where = Location((*chain, path.relative_to(directory).as_posix()))
        headers = text.split("\n\n", 1)[0]
        for line in headers.splitlines():
            key, _, value = line.partition(":")
            value = value.strip()
            if key in ("License-Expression", "License") and value and value != "UNKNOWN" \
                    and len(value) < 200:
                _statement(output, catalog, where.within(key=key), value, f"package:{key}")
            elif key == "Classifier" and value.startswith("License ::"):
                _statement(output, catalog, where.within(key="Classifier"),
                           value.rsplit("::", 1)[-1].strip(), "package:classifier", 0.8)


def _embedded(directory: Path, chain: tuple[str, ...], output: ParseOutput) -> list[Fact]:
    """``metadata.license`` facts from the weight files' own headers (added to ``output``);
    returns their lineage facts (``metadata.base_model``, ``metadata.name``)."""
    lineage: list[Fact] = []
    seen = 0
    for path in sorted(directory.rglob("*")):
        if seen >= MAX_EMBEDDED_FILES or not path.is_file() or path.is_symlink():
            continue
        if path.stat().st_size > MAX_EMBEDDED_BYTES:
            continue
        member = path.relative_to(directory).as_posix()
        artifact = Artifact((*chain, member), FileSource(str(path)))
        sniffed = sniff(artifact)
        parser = parser_for(sniffed.format) if sniffed.format in HEADER_FORMATS else None
        if parser is None:
            continue
        seen += 1
        try:
            parsed = parser(artifact, ParseContext())
        except Exception:  # noqa: BLE001 - the file's own scan reports its parse problems
            continue
        for fact in parsed.facts:
            if fact.kind == "metadata.license":
                output.facts.append(fact)
            elif fact.kind in ("metadata.base_model", "metadata.name"):
                lineage.append(fact)
    return lineage


def collect(artifact: Artifact, context: ParseContext) -> ParseOutput:
    """License facts for a repository folder artifact (``hf-repo``)."""
    output = ParseOutput()
    if artifact.directory is None:
        return output
    directory = Path(artifact.directory)
    chain = artifact.chain
    catalog = load_catalog()
    limit = context.limits.max_text_file_bytes
    card, card_text = _card(directory, chain, catalog, output, limit)
    files, file_text = _license_files(directory, chain, catalog, output, limit)
    _package_metadata(directory, chain, catalog, output, limit)
    lineage = _embedded(directory, chain, output)
    if not any(True for _ in output.of_kind("license.base_model")):
        # No base in the card: the weight files' own declarations stand for the repository.
        for base in embedded_bases(f for f in lineage if f.kind == "metadata.base_model"):
            output.add("license.base_model", base.location, **base_attributes(base, catalog))
    everything = f"{card_text}\n{file_text}".lower()
    notices = sorted({t.notice for t in catalog.by_hf.values()
                      if t.notice and t.notice.lower() in everything})
    readme = Location((*chain, "README.md"))
    name = model_name(card_names(card, card_text, readme),
                      embedded_name(f for f in lineage if f.kind == "metadata.name"),
                      directory.resolve().name, artifact.location)
    output.add("license.repo", artifact.location, name=name.value, name_source=name.source,
               name_where=name.location.describe(),
               license_files=tuple(files), notices=tuple(notices), has_card=bool(card_text))
    return output
