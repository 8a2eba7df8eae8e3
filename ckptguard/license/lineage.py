"""Lineage: which base models a model declares, the name it goes by, and whether its declared
terms are ones its base model's license allows.

A repository folder declares lineage in its card; a weight file declares it in its own metadata
(GGUF ``general.base_model.N.*`` / ``general.name``, safetensors ``__metadata__``, ONNX
``metadata_props``), seen here as ``metadata.base_model`` / ``metadata.name`` facts.  Both end up
as the same ``license.base_model`` attributes, so repositories and lone files are judged alike."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from ckptguard.facts import Fact
from ckptguard.license.catalog import Catalog, Terms
from ckptguard.license.families import BaseRef
from ckptguard.model import Location

# Which embedded name wins when a file states several: GGUF's, then the others in this order.
NAME_PRIORITY = ("general.name", "model_name", "name", "modelspec.title", "title")


@dataclass(frozen=True)
class BaseModel:
    """A base model as the derivative states it."""

    ref: BaseRef
    stated_in: str  # "card:base_model", "gguf:general.base_model.0", ...
    location: Location
    relation: str = "derivative"

    @property
    def name(self) -> str:
        if self.ref.name and self.ref.organization and "/" not in self.ref.name:
            return f"{self.ref.organization} / {self.ref.name}"
        return self.ref.name or self.ref.repo_url


@dataclass(frozen=True)
class ModelName:
    value: str
    source: str  # "card:title", "card:model_name", "card:model-index", "gguf:general.name", ...
    location: Location


def embedded_bases(facts: Iterable[Fact]) -> list[BaseModel]:
    """Base models from ``metadata.base_model`` facts, one per (file, key, index): GGUF spreads
    one base over ``general.base_model.N.name`` / ``.organization`` / ``.repo_url``."""
    groups: dict[tuple[tuple[str, ...], str, int], dict[str, str]] = {}
    places: dict[tuple[tuple[str, ...], str, int], tuple[str, Location]] = {}
    for fact in facts:
        field, key = str(fact.get("field") or "name"), str(fact.get("key") or "")
        stem = key[: -len(field) - 1] if key.endswith(f".{field}") else key
        index = fact.get("index")
        group = (fact.location.chain, stem, index if isinstance(index, int) else 0)
        groups.setdefault(group, {})[field] = str(fact.get("value") or "")
        source = str(fact.get("source") or "")
        stated = source[: -len(field) - 1] if source.endswith(f".{field}") else source
        places.setdefault(group, (stated, fact.location.within(key=stem or None)))
    bases = []
    for group, fields in groups.items():
        ref = BaseRef(name=fields.get("name", ""), organization=fields.get("organization", ""),
                      repo_url=fields.get("repo_url", ""))
        if ref.name or ref.repo_url:
            stated, where = places[group]
            bases.append(BaseModel(ref, stated, where))
    return bases


def embedded_name(facts: Iterable[Fact]) -> ModelName | None:
    """The name a weight file gives itself (``metadata.name`` facts), GGUF's first."""
    found = {str(f.get("key")).lower(): f for f in facts if str(f.get("value") or "").strip()}
    for key in NAME_PRIORITY:
        if key in found:
            fact = found[key]
            return ModelName(str(fact.get("value")).strip(), str(fact.get("source")),
                             fact.location)
    return None


def base_attributes(base: BaseModel, catalog: Catalog) -> Mapping[str, object]:
    """The attributes of a ``license.base_model`` fact: the base as stated, the family it was
    matched to (and how), and the family's license (None when unknown or not in the table)."""
    found = catalog.base_family(base.ref)
    terms = catalog.by_hf.get(found.family.license) if found else None
    return {"name": base.name, "relation": base.relation, "stated_in": base.stated_in,
            "organization": base.ref.organization, "repo_url": base.ref.repo_url,
            "license": terms.hf_id if terms else None,
            "family": found.family.family if found else None,
            "family_license": found.family.license if found else None,
            "matched_by": found.how if found else None,
            "family_source": found.family.source if found else None}


def name_begins_with(name: str, prefix: str) -> bool:
    """Whether ``name`` begins with ``prefix``, ignoring case, the separators publishers vary
    between ("Llama 3", "Llama-3", "llama_3", "Llama3") and leading decoration ("🦙 Llama 3")."""
    def fold(text: str) -> str:
        return re.sub(r"[\s_-]+", "", re.sub(r"^[\W_]+", "", text.lower()))
    return bool(prefix) and fold(name).startswith(fold(prefix))


def lineage_problems(base: Terms, mine: Terms) -> Iterator[str]:
    """Each way ``mine`` (the derivative's license) breaks ``base`` (the base model's)."""
    if not base.derivatives:
        yield f"the base's {base.hf_id} terms allow no derivative works"
    if not base.commercial and mine.commercial:
        yield (f"the base is under non-commercial terms ({base.hf_id}) but this model declares "
               f"{mine.hf_id}, which allows commercial use")
    if base.pass_on and mine.hf_id != base.hf_id:
        same_rail = base.kind == "rail" and mine.kind == "rail"
        same_family = base.hf_id.startswith("llama") and mine.hf_id.startswith("llama")
        if not (same_rail or same_family):
            yield (f"the base's {base.hf_id} terms must be passed on to derivatives, but this "
                   f"model declares {mine.hf_id}")
    if base.restrictions and not mine.restrictions:
        yield (f"the use restrictions of the base's {base.hf_id} terms are not carried "
               f"forward by {mine.hf_id}")
