"""Build, validate and serialise the SPDX 2.3 document for a set of model units."""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from ckptguard import __version__
from ckptguard.facts import Fact
from ckptguard.license.catalog import Catalog, Terms, hub_license_ref, load_catalog
from ckptguard.license.families import HUB_URL, REPO_ID
from ckptguard.license.lineage import lineage_problems
from ckptguard.sbom.inventory import ModelUnit, WeightFile

RELATION_TYPES = {"finetune": "DESCENDANT_OF", "merge": "DESCENDANT_OF",
                  "adapter": "DEPENDS_ON", "quantized": "VARIANT_OF"}


class SbomError(Exception):
    """The document failed SPDX validation (a bug in ckptguard, reported with the messages)."""


@lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


def _spdx_ref(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "x"


class _Licenses:
    """License expressions for the document, and the LicenseRef definitions they need."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.refs: dict[str, Terms] = {}

    def identifier(self, terms: Terms) -> str:
        ident = terms.license_ref
        if not ident.startswith("LicenseRef-"):
            try:
                _licensing().parse(ident, validate=True, strict=True)
            except Exception:  # noqa: BLE001 - id unknown to the installed SPDX list
                ident = hub_license_ref(terms.hf_id)
        if ident.startswith("LicenseRef-"):
            self.refs[ident] = terms
        return ident

    def expression(self, terms: Terms | None) -> Any:
        from spdx_tools.spdx.model import SpdxNoAssertion

        if terms is None or not terms.known:
            return SpdxNoAssertion()
        return _licensing().parse(self.identifier(terms))

    def definitions(self) -> list[Any]:
        from spdx_tools.spdx.model import ExtractedLicensingInfo

        return [ExtractedLicensingInfo(
            license_id=ident, license_name=terms.name,
            extracted_text=f"{terms.name}. The full terms are published at {terms.url}",
            cross_references=[terms.url])
            for ident, terms in sorted(self.refs.items())]


def _statement_terms(facts: Sequence[Fact], catalog: Catalog, prefix: str) -> Terms | None:
    for fact in facts:
        if fact.kind == "license.statement" and str(fact.get("source")).startswith(prefix):
            terms = catalog.by_hf.get(str(fact.get("license")))
            if terms is not None:
                return terms
    return None


def _embedded_terms(unit: ModelUnit, catalog: Catalog) -> Terms | None:
    """A lone file's declared license: the first recognised one in its own metadata."""
    for weight in unit.files:
        for fact in weight.facts:
            terms = catalog.normalize(fact.get("value")).terms
            if terms is not None:
                return terms
    return None


def _base_location(base: Fact) -> Any:
    """Where the base model is published: its stated repository URL, or the Hub page of its
    repository id; NOASSERTION for a display name."""
    from spdx_tools.spdx.model import SpdxNoAssertion

    url = str(base.get("repo_url") or "")
    name = str(base.get("name") or "")
    if HUB_URL.match(url):
        return url
    if REPO_ID.match(name):
        return f"https://huggingface.co/{name}"
    return SpdxNoAssertion()


def _concluded(unit: ModelUnit, catalog: Catalog) -> tuple[Terms | None, str | None]:
    """The license ckptguard concludes — the one every source agrees on, provided the base
    model's terms allow it — or none, with the reason."""
    found = {catalog.by_hf[str(f.get("license"))].hf_id for f in unit.facts
             if f.kind == "license.statement" and str(f.get("license")) in catalog.by_hf}
    for weight in unit.files:
        for fact in weight.facts:
            terms = catalog.normalize(fact.get("value")).terms
            if terms is not None:
                found.add(terms.hf_id)
    if len(found) != 1:
        reason = f"sources disagree: {', '.join(sorted(found))}" if found else \
            "no recognised license statement"
        return None, reason
    terms = catalog.by_hf[found.pop()]
    for base in (f for f in unit.facts if f.kind == "license.base_model"):
        base_terms = catalog.by_hf.get(str(base.get("license")))
        problems = list(lineage_problems(base_terms, terms)) if base_terms else []
        if problems:
            return None, f"declared {terms.hf_id} conflicts with base {base.get('name')}: " \
                + "; ".join(problems)
    return terms, None


def _checksum(weight: WeightFile) -> Any:
    from spdx_tools.spdx.model import Checksum, ChecksumAlgorithm

    return Checksum(ChecksumAlgorithm.SHA256, weight.sha256)


def build_document(units: Sequence[ModelUnit], *, name: str = "ckptguard-model-sbom",
                   created: datetime | None = None) -> Any:
    from spdx_tools.spdx.model import (
        Actor,
        ActorType,
        CreationInfo,
        Document,
        Package,
        PackagePurpose,
        Relationship,
        RelationshipType,
        SpdxNoAssertion,
    )

    catalog = load_catalog()
    licenses = _Licenses(catalog)
    identity = hashlib.sha256("\n".join(sorted(
        w.sha256 for u in units for w in u.files)).encode()).hexdigest()[:16]
    info = CreationInfo(
        spdx_version="SPDX-2.3", spdx_id="SPDXRef-DOCUMENT", name=name,
        document_namespace=f"https://spdx.org/spdxdocs/ckptguard-{identity}",
        creators=[Actor(ActorType.TOOL, f"ckptguard-{__version__}")],
        created=created or datetime.now(timezone.utc).replace(microsecond=0))
    packages: list[Any] = []
    relationships: list[Any] = []
    used_ids: set[str] = set()

    def new_id(label: str) -> str:
        base = f"SPDXRef-{_spdx_ref(label)}"
        ident, n = base, 1
        while ident in used_ids:
            n += 1
            ident = f"{base}-{n}"
        used_ids.add(ident)
        return ident

    for unit in units:
        declared = _statement_terms(unit.facts, catalog, "card:") or \
            _statement_terms(unit.facts, catalog, "") or \
            (None if unit.is_repo else _embedded_terms(unit, catalog))
        concluded, why_not = _concluded(unit, catalog)
        unit_id = new_id(f"Model-{unit.name}")
        packages.append(Package(
            spdx_id=unit_id, name=unit.name, download_location=SpdxNoAssertion(),
            files_analyzed=False, primary_package_purpose=PackagePurpose.OTHER,
            license_declared=licenses.expression(declared),
            license_concluded=licenses.expression(concluded), license_comment=why_not,
            checksums=[_checksum(unit.files[0])] if not unit.is_repo and unit.files else [],
            copyright_text=SpdxNoAssertion(),
            comment=f"machine-learning model ({'repository' if unit.is_repo else 'file'} "
                    f"{unit.path}), described by ckptguard without loading it"))
        relationships.append(Relationship("SPDXRef-DOCUMENT", RelationshipType.DESCRIBES, unit_id))
        if unit.is_repo:
            for weight in unit.files:
                embedded = next((catalog.normalize(f.get("value")).terms for f in weight.facts),
                                None)
                file_id = new_id(f"Weights-{weight.path}")
                packages.append(Package(
                    spdx_id=file_id, name=weight.path, file_name=weight.path,
                    download_location=SpdxNoAssertion(), files_analyzed=False,
                    primary_package_purpose=PackagePurpose.FILE, checksums=[_checksum(weight)],
                    license_declared=licenses.expression(embedded),
                    license_concluded=licenses.expression(concluded),
                    copyright_text=SpdxNoAssertion(),
                    comment=f"{weight.format} weights, {weight.size} bytes"))
                relationships.append(Relationship(unit_id, RelationshipType.CONTAINS, file_id))
        for base in (f for f in unit.facts if f.kind == "license.base_model"):
            base_name = str(base.get("name"))
            base_terms = catalog.by_hf.get(str(base.get("license")))
            base_id = new_id(f"Base-{base_name}")
            packages.append(Package(
                spdx_id=base_id, name=base_name, download_location=_base_location(base),
                files_analyzed=False, primary_package_purpose=PackagePurpose.OTHER,
                license_declared=licenses.expression(base_terms),
                license_concluded=SpdxNoAssertion(), copyright_text=SpdxNoAssertion(),
                comment=f"base model stated in {base.get('stated_in') or 'the model card'} "
                        "(license from ckptguard's base-model family table)"))
            relation = RELATION_TYPES.get(str(base.get("relation")), "DESCENDANT_OF")
            relationships.append(Relationship(unit_id, RelationshipType[relation], base_id))
    return Document(info, packages=packages, relationships=relationships,
                    extracted_licensing_info=licenses.definitions())


def validate(document: Any) -> list[str]:
    from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document

    return [m.validation_message for m in validate_full_spdx_document(document)]


def render_json(document: Any) -> str:
    """The validated document as SPDX JSON (raises SbomError if validation fails)."""
    from spdx_tools.spdx.writer.json.json_writer import write_document_to_stream

    problems = validate(document)
    if problems:
        raise SbomError("; ".join(problems[:10]))
    stream = io.StringIO()
    write_document_to_stream(document, stream, validate=False)
    return json.dumps(json.loads(stream.getvalue()), indent=2) + "\n"
