"""The license catalogue: Hub license ids, their SPDX / LicenseRef ids and their terms, loaded
from ``rules/data/licenses/``.  ``normalize`` turns any license statement (Hub id, SPDX id,
expression, free text) into a catalogue entry, never raising on odd input."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ckptguard.engine.ruleset import rules_directory
from ckptguard.license.families import BaseRef, Family, FamilyMatch, match_family, parse_families
from ckptguard.yamlio import load_yaml


@dataclass(frozen=True)
class Terms:
    hf_id: str
    name: str
    spdx: str | None  # SPDX id, or None when SPDX has none
    license_ref: str  # the id used in SPDX documents (SPDX id or LicenseRef-…)
    kind: str
    commercial: bool
    derivatives: bool
    pass_on: bool
    restrictions: bool
    license_copy: bool
    ambiguous: bool
    notice: str | None
    name_prefix: str | None
    url: str

    @property
    def known(self) -> bool:
        return self.kind != "unknown"

    @property
    def rail_like(self) -> bool:
        return self.kind in ("rail", "community", "research-only")


@dataclass(frozen=True)
class Normalized:
    """One license statement after normalisation."""

    raw: str
    terms: Terms | None  # None: not recognised
    expression: str | None = None  # the SPDX expression when the statement was one

    @property
    def id(self) -> str:
        return self.terms.hf_id if self.terms else "unrecognised"


@dataclass(frozen=True)
class Catalog:
    by_hf: Mapping[str, Terms]
    by_spdx: Mapping[str, Terms]
    aliases: Mapping[str, str]  # folded free-text name -> hf id
    families: tuple[Family, ...]  # base-model families (base_models.yaml), first match wins
    texts: Mapping[str, Mapping[str, tuple[str, ...]]]

    def base_family(self, ref: BaseRef) -> FamilyMatch | None:
        """The family of a base model however it is named (repo id, URL, organisation and
        display name), or None."""
        return match_family(self.families, ref)

    def base_license(self, repo_id: str) -> Terms | None:
        """The terms of the base model a card's ``base_model`` names, when the table knows
        them."""
        found = self.base_family(BaseRef(name=repo_id))
        return self.by_hf.get(found.family.license) if found else None

    def normalize(self, raw: object) -> Normalized:
        text = str(raw).strip() if raw is not None else ""
        folded = _fold(text)
        if not folded:
            return Normalized(text, None)
        hit = self.by_hf.get(folded) or self.by_spdx.get(folded) or \
            self.by_hf.get(self.aliases.get(folded, ""))
        if hit is not None:
            return Normalized(text, hit)
        expression = _parse_expression(text)
        if expression is not None:
            keys = [k for k in re.split(r"\s+(?:and|or|with)\s+|[()]", expression.lower()) if k]
            terms = [self.by_spdx.get(_fold(k)) for k in keys]
            if len(terms) == 1 and terms[0] is not None:
                return Normalized(text, terms[0], expression)
            return Normalized(text, None, expression)
        return Normalized(text, None)


def hub_license_ref(hf_id: str) -> str:
    """The SPDX ``LicenseRef-`` id for a Hub license id that has neither an SPDX id nor a
    ScanCode LicenseDB id (the order every id is named in: SPDX, then ScanCode, then this).
    An idstring allows letters, digits, ``.`` and ``-`` only: ``openrail++`` becomes
    ``LicenseRef-hf-openrail-plus-plus`` (not ``openrail``, which is another license)."""
    text = hf_id.replace("+", "-plus")
    return "LicenseRef-hf-" + (re.sub(r"[^A-Za-z0-9.-]+", "-", text).strip("-") or "unnamed")


def _fold(text: str) -> str:
    text = text.strip().lower().replace(",", " ")
    text = re.sub(r"\s+license$|^the\s+|\s+licence$", "", text)
    return re.sub(r"[\s_]+", "-", text)


def _parse_expression(text: str) -> str | None:
    """The SPDX expression in ``text``, or None; never raises (the parser does on real strings)."""
    if len(text) > 500:
        return None
    try:
        parsed = _licensing().parse(text, validate=True, strict=True)
    except Exception:  # noqa: BLE001 - any parse failure means "not an SPDX expression"
        return None
    return str(parsed) if parsed is not None else None


@lru_cache(maxsize=1)
def _licensing() -> Any:
    from license_expression import get_spdx_licensing

    return get_spdx_licensing()


ALIASES = {
    "apache-2": "apache-2.0", "apache2": "apache-2.0", "apache-2.0-license": "apache-2.0",
    "apache-license-2.0": "apache-2.0", "apache-license-version-2.0": "apache-2.0",
    "asl-2.0": "apache-2.0", "mit-license": "mit", "bsd-3": "bsd-3-clause",
    "bsd-2": "bsd-2-clause", "cc-by": "cc-by-4.0", "cc-by-nc": "cc-by-nc-4.0",
    "cc-by-sa": "cc-by-sa-4.0", "cc0": "cc0-1.0", "public-domain": "cc0-1.0",
    "llama-2": "llama2", "llama-3": "llama3", "llama-3.1": "llama3.1", "llama-3.2": "llama3.2",
    "llama-3.3": "llama3.3", "llama-4": "llama4", "gemma-terms-of-use": "gemma",
    "gplv3": "gpl-3.0", "gplv2": "gpl-2.0", "agplv3": "agpl-3.0",
}


def load_catalog(directory: Path | None = None) -> Catalog:
    """The shipped catalogue is read once per process; another directory is read each time."""
    return _shipped_catalog() if directory is None else _read_catalog(directory)


@lru_cache(maxsize=1)
def _shipped_catalog() -> Catalog:
    return _read_catalog(rules_directory())


def _read_catalog(directory: Path) -> Catalog:
    from ckptguard.engine.documents import read_documents

    documents = read_documents(directory)  # parsed YAML, from the rules cache when fresh

    def document(name: str) -> Any:
        key = f"data/licenses/{name}"
        return documents[key] if key in documents else \
            load_yaml((base / name).read_text(encoding="utf-8"))

    base = directory / "data" / "licenses"
    spdx_ids: dict[str, tuple[str, str | None, str]] = {}
    with (base / "hf_to_spdx.tsv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            spdx = row["spdx_id"] or None
            ref = spdx or row["scancode_licenseref"] or hub_license_ref(row["hf_id"])
            spdx_ids[row["hf_id"]] = (row["full_name"], spdx, ref)
    raw_terms = document("terms.yaml")
    defaults: Mapping[str, Mapping[str, Any]] = raw_terms["defaults"]
    by_hf: dict[str, Terms] = {}
    for hf_id, entry in raw_terms["licenses"].items():
        name, spdx, ref = spdx_ids.get(hf_id, (hf_id, None, hub_license_ref(hf_id)))
        merged = {**defaults[entry["kind"]], **entry}
        by_hf[hf_id] = Terms(
            hf_id=hf_id, name=name, spdx=spdx, license_ref=ref, kind=entry["kind"],
            commercial=bool(merged["commercial"]), derivatives=bool(merged["derivatives"]),
            pass_on=bool(merged["pass_on"]), restrictions=bool(merged["restrictions"]),
            license_copy=bool(merged["license_copy"]), ambiguous=bool(merged.get("ambiguous")),
            notice=merged.get("notice"), name_prefix=merged.get("name_prefix"),
            url=str(merged["url"]))
    by_spdx: dict[str, Terms] = {}
    for terms in by_hf.values():
        for key in (terms.spdx, terms.license_ref):
            if key:
                by_spdx.setdefault(_fold(key), terms)
    # SPDX ids with -only / -or-later suffixes point at the same family terms, unambiguously.
    for hf_id in ("gpl-2.0", "gpl-3.0", "lgpl-2.1", "lgpl-3.0", "agpl-3.0"):
        terms = by_hf[hf_id]
        if terms.spdx:
            stem = terms.spdx.removesuffix("-only")
            for suffix in ("-only", "-or-later"):
                by_spdx[_fold(stem + suffix)] = _unambiguous(terms, stem + suffix)
    aliases = dict(ALIASES)
    for terms in by_hf.values():
        # Full names as publishers write them: with or without "Agreement", with "Meta" before
        # Meta's ("META LLAMA 3 COMMUNITY LICENSE AGREEMENT", "Llama 3 Community License").
        short = re.sub(r"\s+agreement$", "", terms.name.strip(), flags=re.IGNORECASE)
        for name in (terms.name, short, f"Meta {terms.name}", f"Meta {short}"):
            aliases.setdefault(_fold(name), terms.hf_id)
    families = document("base_models.yaml")
    texts = document("texts.yaml")["texts"]
    return Catalog(
        by_hf=by_hf, by_spdx=by_spdx, aliases=aliases,
        families=parse_families(families),
        texts={k: {part: tuple(v.get(part, ())) for part in ("all", "any", "not")}
               for k, v in texts.items()})


def _unambiguous(terms: Terms, spdx: str) -> Terms:
    from dataclasses import replace

    return replace(terms, spdx=spdx, license_ref=spdx, ambiguous=False)
