"""A loaded, validated set of rules, name lists and checks, and its evaluation over facts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ckptguard.engine.checks import Check, CheckContext, Hit
from ckptguard.engine.documents import read_documents
from ckptguard.engine.matcher import matches, render_template, validate
from ckptguard.engine.namelists import ENUM_CLASSES, ListEntry, NameList, enum_classes, load_lists
from ckptguard.engine.rules import Rule, RuleError, load_rules
from ckptguard.facts import Artifact, Fact, ParseOutput
from ckptguard.model import Finding, finding


def rules_directory() -> Path:
    """The shipped rules: inside the installed package, or the checkout's top-level folder."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "rules", here.parent / "rules"):
        if (candidate / "lists").is_dir():
            return candidate
    raise RuleError("the ckptguard rules folder was not found next to the package")


@dataclass(frozen=True)
class RuleSet:
    rules: Mapping[str, Rule]
    lists: Mapping[str, NameList]
    checks: Mapping[str, Check]

    @staticmethod
    def load(directory: Path | None = None, *, checks: Mapping[str, Check] | None = None,
             extra_list_entries: Mapping[str, Iterable[ListEntry]] | None = None) -> RuleSet:
        """Load and validate rules, lists and checks.  The shipped set is read once per process
        (rule files do not change while it runs); extensions are applied on top."""
        if directory is None and checks is None:
            loaded = _shipped_rules()
        else:
            loaded = _load(directory or rules_directory(), checks)
        if not extra_list_entries:
            return loaded
        lists = dict(loaded.lists)
        for list_name, extra in extra_list_entries.items():
            if list_name not in lists:
                raise RuleError(f"cannot extend unknown list {list_name!r}")
            lists[list_name] = lists[list_name].extended(extra)
        if "safe_globals" in extra_list_entries:  # a user's enum categories count too
            lists[ENUM_CLASSES] = enum_classes(lists["safe_globals"])
        return RuleSet(loaded.rules, lists, loaded.checks)

    def only(self, enabled: Iterable[str] | None, disabled: Iterable[str] = ()) -> RuleSet:
        keep = set(self.rules) if enabled is None else set(enabled)
        keep -= set(disabled)
        return RuleSet({k: v for k, v in self.rules.items() if k in keep}, self.lists, self.checks)

    def evaluate(self, fmt: str, artifact: Artifact, output: ParseOutput,
                 options: Mapping[str, Any] | None = None) -> list[Finding]:
        """Findings for one parsed artifact, one per (rule, fingerprint), first place first."""
        found: dict[tuple[str, str], Finding] = {}
        counts: dict[tuple[str, str], int] = {}
        index = index_facts(output.facts)
        shared: dict[str, Any] = {}
        for rule in self.rules.values():
            if not rule.applies_to(fmt):
                continue
            for new in self._rule_findings(rule, fmt, artifact, output, index, options or {},
                                           shared):
                key = (new.rule_id, new.fingerprint)
                counts[key] = counts.get(key, 0) + 1
                found.setdefault(key, new)
        results = []
        for key, first in found.items():
            if counts[key] > 1:
                first = finding_with_count(first, counts[key])
            results.append(first)
        return results

    def _rule_findings(self, rule: Rule, fmt: str, artifact: Artifact, output: ParseOutput,
                       index: Mapping[str, tuple[Fact, ...]],
                       options: Mapping[str, Any],
                       shared: dict[str, Any] | None = None) -> Iterator[Finding]:
        candidates = _candidates(rule, output, index)
        if rule.match is not None and rule.check is None:
            for fact in candidates:
                captures: dict[str, Any] = {}
                if matches(fact, rule.match, self.lists, captures):
                    evidence = {k: fact.attrs[k] for k in rule.evidence if k in fact.attrs} \
                        if rule.evidence else dict(fact.attrs)
                    evidence.update({k: v for k, v in captures.items() if k.endswith("_why")})
                    subject = render_template(rule.subject, fact, captures) if rule.subject \
                        else render_template(rule.message, fact, captures)
                    yield finding(rule_id=rule.id, severity=rule.severity,
                                  confidence=rule.confidence, category=rule.category,
                                  message=render_template(rule.message, fact, captures),
                                  location=fact.location, evidence=_flatten(evidence),
                                  subject=subject)
        if rule.check is not None:
            if rule.match is not None:
                facts = tuple(f for f in candidates if matches(f, rule.match, self.lists))
                facts_index: Mapping[str, tuple[Fact, ...]] = index_facts(facts)
            else:
                facts, facts_index = tuple(output.facts), index
            context = CheckContext(rule_id=rule.id, format=fmt, artifact=artifact, facts=facts,
                                   tensors=tuple(output.tensors), lists=self.lists,
                                   options=options, index=facts_index,
                                   shared=shared if shared is not None else {})
            for hit in self.checks[rule.check](context):
                yield from_hit(rule, hit)


def index_facts(facts: Iterable[Fact]) -> dict[str, tuple[Fact, ...]]:
    """Facts by kind, in their original order (rules and checks read only the kinds they need)."""
    grouped: dict[str, list[Fact]] = {}
    for fact in facts:
        grouped.setdefault(fact.kind, []).append(fact)
    return {kind: tuple(items) for kind, items in grouped.items()}


def _candidates(rule: Rule, output: ParseOutput,
                index: Mapping[str, tuple[Fact, ...]]) -> Iterable[Fact]:
    """The facts a rule's matcher can possibly accept: those of its kinds, when it names any."""
    kinds = rule.match.get("fact") if rule.match is not None else None
    if kinds is None:
        return output.facts
    if isinstance(kinds, str):
        return index.get(kinds, ())
    if len(kinds) == 1:
        return index.get(kinds[0], ())
    wanted = set(kinds)
    return [f for f in output.facts if f.kind in wanted]


@lru_cache(maxsize=1)
def _shipped_rules() -> RuleSet:
    return _load(rules_directory(), None)


def _load(base: Path, checks: Mapping[str, Check] | None) -> RuleSet:
    from ckptguard.checks import builtin_checks

    documents = read_documents(base)
    lists = load_lists(base / "lists", documents)
    rules = load_rules(base, documents)
    registry = builtin_checks() if checks is None else checks
    for rule in rules.values():
        if rule.match is not None:
            validate(rule.match, lists, rule.source)
        if rule.check is not None and rule.check not in registry:
            raise RuleError(f"{rule.source}: no Python check registered as {rule.check!r}")
    return RuleSet(MappingProxyType(rules), MappingProxyType(lists),
                   MappingProxyType(dict(registry)))


def from_hit(rule: Rule, hit: Hit) -> Finding:
    return finding(rule_id=rule.id, severity=hit.severity or rule.severity,
                   confidence=hit.confidence or rule.confidence, category=rule.category,
                   message=hit.message, location=hit.location,
                   evidence=_flatten(dict(hit.evidence)), subject=hit.subject)


def finding_with_count(first: Finding, count: int) -> Finding:
    from dataclasses import replace

    return replace(first, evidence=(*first.evidence, ("occurrences", str(count))))


def _flatten(evidence: Mapping[str, Any]) -> list[tuple[str, str]]:
    out = []
    for key, value in evidence.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(v) for v in value)
        text = str(value)
        if len(text) > 2000:
            text = text[:2000] + f"… ({len(text)} characters)"
        out.append((key, text))
    return out
