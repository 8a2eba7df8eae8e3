"""License checks: sources that disagree, lineage against the base model, obligations, policy.

By default license findings stay below the payload gate (conflicts medium, missing or
restrictive licenses low/info); a configured license policy raises them, with its own message,
so that a compliance gate fails on them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ckptguard.engine.checks import CheckContext, Hit
from ckptguard.facts import Fact
from ckptguard.license.catalog import Catalog, Terms, load_catalog
from ckptguard.license.lineage import (
    ModelName,
    base_attributes,
    embedded_bases,
    embedded_name,
    lineage_problems,
    name_begins_with,
)
from ckptguard.license.policy import LicensePolicy
from ckptguard.model import Severity


@dataclass(frozen=True)
class Declared:
    """A license statement the artifact makes, resolved against the catalogue."""

    fact: Fact
    source: str
    raw: str
    terms: Terms | None


def _policy(ctx: CheckContext) -> LicensePolicy:
    raw = ctx.options.get("license")
    return LicensePolicy.from_options(raw if isinstance(raw, dict) else None)


def _declared(ctx: CheckContext, catalog: Catalog, *, embedded: bool) -> list[Declared]:
    out = []
    for fact in ctx.of_kind("license.statement"):
        terms = catalog.by_hf.get(str(fact.get("license")))
        out.append(Declared(fact, str(fact.get("source")), str(fact.get("raw")), terms))
    if embedded:
        facts = list(ctx.of_kind("metadata.license"))
        # "other" beside a license name (GGUF general.license.name, license_name) is the Hub
        # convention for "the license named there", as in a card: the name is the statement.
        named = {f.location.chain for f in facts if _names_license(f)}
        for fact in facts:
            normalized = catalog.normalize(fact.get("value"))
            if normalized.id in ("other", "unknown") and fact.location.chain in named:
                continue
            out.append(Declared(fact, str(fact.get("source", "embedded")), normalized.raw,
                                normalized.terms))
    return out


def _names_license(fact: Fact) -> bool:
    key = str(fact.get("key") or "").lower()
    return key.endswith(("license.name", "license_name")) and bool(fact.get("value"))


def _primary(declared: list[Declared]) -> Declared | None:
    """The license the repository declares: its card first, then files, then anything."""
    for prefix in ("card:", "file:", "package:", ""):
        for item in declared:
            if item.source.startswith(prefix) and item.terms is not None:
                return item
    return None


def _conflict_severity(ctx: CheckContext) -> Severity | None:
    return Severity.HIGH if _policy(ctx).fail_on_conflict else None


def _policy_note(ctx: CheckContext) -> str:
    return " (license policy: fail-on-conflict)" if _policy(ctx).fail_on_conflict else ""


def sources_disagree(ctx: CheckContext) -> Iterable[Hit]:
    catalog = load_catalog()
    items = [d for d in _declared(ctx, catalog, embedded=True) if d.terms is not None]
    ids = sorted({d.terms.hf_id for d in items if d.terms is not None})
    if len(ids) < 2:
        return
    said = "; ".join(f"{d.source} says {d.raw!r}" for d in items)
    yield Hit(message=f"License statements disagree: {said}. Settle on one license and make "
                      f"the card, LICENSE file and embedded metadata say it{_policy_note(ctx)}",
              location=ctx.artifact.location, subject="+".join(ids),
              evidence={"licenses": ", ".join(ids), "sources": said},
              severity=_conflict_severity(ctx))


def _lone_file(ctx: CheckContext) -> bool:
    """A file scanned on its own, not as part of a repository folder that is judged as a unit
    (whose card, LICENSE files and name then speak for it)."""
    return ctx.format != "hf-repo" and ctx.artifact.in_repo is None


def _bases(ctx: CheckContext, catalog: Catalog) -> list[Fact]:
    """The base models the artifact declares, as ``license.base_model`` facts: a repository's
    from its card (or its weight files'), a weight file's from its own metadata."""
    if ctx.format == "hf-repo":
        return list(ctx.of_kind("license.base_model"))
    return [Fact.of("license.base_model", base.location, **base_attributes(base, catalog))
            for base in embedded_bases(ctx.of_kind("metadata.base_model"))]


def _base_evidence(base: Fact, terms: Terms) -> dict[str, object]:
    evidence: dict[str, object] = {"base_model": base.get("name"), "base_license": terms.hf_id,
                                   "base_stated_in": base.get("stated_in")}
    if base.get("family"):
        evidence.update(base_family=base.get("family"), matched_by=base.get("matched_by"),
                        family_source=base.get("family_source"))
    return evidence


def _base_phrase(base: Fact) -> str:
    """The base as stated, where, and how ckptguard recognised its family."""
    said = f"{base.get('name')} ({base.get('relation')}, stated in {base.get('stated_in')}"
    if base.get("family"):
        said += f"; {base.get('family')} family, matched by {base.get('matched_by')}"
    return said + ")"


def base_conflict(ctx: CheckContext) -> Iterable[Hit]:
    if not _has_license_facts(ctx):
        return
    catalog = load_catalog()
    mine = _primary(_declared(ctx, catalog, embedded=ctx.format != "hf-repo"))
    if mine is None or mine.terms is None:
        return
    for base in _bases(ctx, catalog):
        base_terms = catalog.by_hf.get(str(base.get("license")))
        if base_terms is None:
            continue
        problems = list(dict.fromkeys(lineage_problems(base_terms, mine.terms)))
        if problems:
            yield Hit(message=f"Derivative of {_base_phrase(base)}: " + "; ".join(problems)
                              + f". Distribute it under terms the base allows{_policy_note(ctx)}",
                      location=base.location, subject=f"{base.get('name')}:{mine.terms.hf_id}",
                      evidence={**_base_evidence(base, base_terms), "declared": mine.terms.hf_id,
                                "declared_in": mine.source},
                      severity=_conflict_severity(ctx))


def _judged_name(ctx: CheckContext) -> tuple[Fact | None, ModelName | None]:
    """(the repository fact, the name judged): a repository's from its card and files, a lone
    file's from its own metadata (None when it states no name)."""
    repo = next(iter(ctx.of_kind("license.repo")), None)
    if repo is not None:
        return repo, ModelName(str(repo.get("name") or ""), str(repo.get("name_source")),
                               repo.location)
    return None, embedded_name(ctx.of_kind("metadata.name"))


def _unmet(terms: Terms, repo: Fact | None, name: ModelName | None) -> list[str]:
    missing = []
    if repo is not None:  # a lone file cannot carry a LICENSE file or a card notice
        if terms.license_copy and not repo.get("license_files"):
            missing.append(f"a copy of the {terms.name} (no LICENSE file in the repository)")
        if terms.notice and terms.notice not in (repo.get("notices") or ()):
            missing.append(f"the notice {terms.notice!r} in the model card or NOTICE file")
    if terms.name_prefix and name is not None and \
            not name_begins_with(name.value, terms.name_prefix):
        missing.append(f"a model name beginning with {terms.name_prefix!r} "
                       f"(the name is {name.value!r}, from {name.source})")
    return missing


def obligations(ctx: CheckContext) -> Iterable[Hit]:
    if not _has_license_facts(ctx) or not (ctx.format == "hf-repo" or _lone_file(ctx)):
        return
    catalog = load_catalog()
    repo, name = _judged_name(ctx)
    if repo is None and ctx.format == "hf-repo":
        return
    for base in _bases(ctx, catalog):
        terms = catalog.by_hf.get(str(base.get("license")))
        if terms is None:
            continue
        missing = _unmet(terms, repo, name)
        if missing:
            evidence = {**_base_evidence(base, terms), "missing": " | ".join(missing)}
            if name is not None:
                evidence.update(name=name.value, name_source=name.source)
            yield Hit(message=f"The {terms.hf_id} terms of base {_base_phrase(base)} require "
                              + "; ".join(missing) + f"{_policy_note(ctx)}",
                      location=repo.location if repo is not None else base.location,
                      subject=f"{base.get('name')}:{terms.hf_id}", evidence=evidence,
                      severity=_conflict_severity(ctx))


def no_license(ctx: CheckContext) -> Iterable[Hit]:
    if any(True for _ in ctx.of_kind("license.statement", "metadata.license")):
        return
    for repo in ctx.of_kind("license.repo"):
        yield Hit(message="No license found in the model card, LICENSE files or embedded "
                          "metadata; without one nobody may lawfully use or ship the model. "
                          "Add a `license:` to the card's front matter and a LICENSE file",
                  location=repo.location, subject="no-license")


def ambiguous(ctx: CheckContext) -> Iterable[Hit]:
    for fact in ctx.of_kind("license.statement"):
        if fact.get("ambiguous"):
            yield Hit(message=f"{fact.get('raw')!r} ({fact.get('source')}) does not say whether "
                              f"later versions apply; ckptguard reads it as {fact.get('spdx')}. "
                              "Use an explicit -only or -or-later SPDX id",
                      location=fact.location, subject=str(fact.get("raw")),
                      evidence={"source": fact.get("source"), "read_as": fact.get("spdx")})


def unrecognised(ctx: CheckContext) -> Iterable[Hit]:
    for fact in ctx.of_kind("license.statement"):
        if not fact.get("known"):
            yield Hit(message=f"License {str(fact.get('raw'))[:80]!r} ({fact.get('source')}) is "
                              f"not a recognised license id or text; {_advice(fact)}",
                      location=fact.location, subject=f"{fact.get('source')}",
                      evidence={"source": fact.get("source"), "raw": fact.get("raw")})


def _advice(fact: Fact) -> str:
    """What to do, for where the statement was found: a card already saying ``license: other``
    with ``license_name`` follows the convention, and only needs its terms read."""
    source = str(fact.get("source") or "")
    if source == "card:license_name":
        return ("the card follows the `license: other` convention, so the terms are the "
                "publisher's own: have someone read them (`license_link`, LICENSE) before use")
    if source.startswith("file:"):
        return ("have someone read the file's terms; if it is a known license, name its SPDX id "
                "in the card's `license`")
    return "use an SPDX id, or `license: other` with `license_name` and `license_link`"


LICENSE_KINDS = ("license.statement", "metadata.license", "license.base_model",
                 "metadata.base_model")


def _has_license_facts(ctx: CheckContext) -> bool:
    """Whether there is anything to judge (most artifacts carry no license at all, and the
    catalogue need not even be loaded for them)."""
    return any(next(iter(ctx.of_kind(kind)), None) is not None for kind in LICENSE_KINDS)


def _judged(ctx: CheckContext, catalog: Catalog) -> list[Declared]:
    """Statements policy applies to: a repo's own; a file's embedded metadata; and, for a repo
    or a lone file, the license of each base model it declares."""
    in_repo = ctx.format == "hf-repo"
    declared = _declared(ctx, catalog, embedded=not in_repo)
    if in_repo or _lone_file(ctx):
        for base in _bases(ctx, catalog):
            terms = catalog.by_hf.get(str(base.get("license")))
            if terms is not None:
                declared.append(Declared(base, f"base model {base.get('name')}", terms.hf_id,
                                         terms))
    return declared


def policy_denied(ctx: CheckContext) -> Iterable[Hit]:
    policy = _policy(ctx)
    if not (policy.allowed or policy.denied) or not _has_license_facts(ctx):
        return
    for item in _judged(ctx, load_catalog()):
        ids = (item.raw, item.terms.hf_id if item.terms else None,
               item.terms.spdx if item.terms else None)
        if policy.matches(policy.denied, ids):
            why = "is on the denied list"
        elif policy.allowed and not policy.matches(policy.allowed, ids):
            why = "is not on the allowed list"
        else:
            continue
        yield Hit(message=f"License policy: {item.raw!r} ({item.source}) {why}",
                  location=item.fact.location, subject=f"{item.source}:{item.raw}",
                  evidence={"license": item.raw, "source": item.source})


def restrictive(ctx: CheckContext) -> Iterable[Hit]:
    if not _has_license_facts(ctx):
        return
    policy = _policy(ctx)
    for item in _judged(ctx, load_catalog()):
        terms = item.terms
        if terms is None:
            continue
        limits = []
        if not terms.commercial:
            limits.append("no commercial use")
        if not terms.derivatives:
            limits.append("no derivative works")
        if terms.restrictions:
            limits.append("use-based restrictions")
        if not limits:
            continue
        if policy.commercial_use and not terms.commercial:
            yield Hit(message=f"Commercial-use policy: {item.raw!r} ({item.source}) allows "
                              f"{', '.join(limits)}; this model may not be used commercially",
                      location=item.fact.location, subject=f"{item.source}:{terms.hf_id}",
                      evidence={"license": terms.hf_id, "terms": terms.url},
                      severity=Severity.HIGH)
        else:
            yield Hit(message=f"{item.raw!r} ({item.source}) is restrictive: "
                              f"{', '.join(limits)}; check the terms before use ({terms.url})",
                      location=item.fact.location, subject=f"{item.source}:{terms.hf_id}",
                      evidence={"license": terms.hf_id, "terms": terms.url})


CHECKS = {
    "LIC001": sources_disagree,
    "LIC002": base_conflict,
    "LIC003": obligations,
    "LIC004": no_license,
    "LIC005": ambiguous,
    "LIC006": unrecognised,
    "LIC007": policy_denied,
    "LIC008": restrictive,
}
