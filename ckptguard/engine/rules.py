"""Rule definitions, loaded from ``rules/<family>/<ID>.yaml`` and validated on load."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptguard.model import Category, Confidence, Severity
from ckptguard.yamlio import load_yaml

RULE_ID = re.compile(r"^[A-Z]{2,5}[0-9]{3}$")
REQUIRED = ("id", "name", "severity", "confidence", "category", "cwe", "summary", "description",
            "remediation", "formats", "cases")
KNOWN_KEYS = set(REQUIRED) | {"references", "example", "match", "message", "subject", "check",
                              "evidence", "why", "tags"}


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class RuleCases:
    """Fixture names (from ``fixtures``) on which the rule must fire / must stay silent."""

    fires: tuple[str, ...]
    passes: tuple[str, ...]


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    family: str
    severity: Severity
    confidence: Confidence
    category: Category
    cwe: tuple[str, ...]
    summary: str
    description: str  # what it detects
    why: str  # why it matters
    example: str
    remediation: str
    references: tuple[str, ...]
    formats: tuple[str, ...]  # parser formats whose facts it reads; "*" for all
    match: Mapping[str, Any] | None  # declarative matcher over facts; None when check-only
    message: str  # format string over the matched fact's attributes
    subject: str  # format string: what the fingerprint identifies
    check: str | None  # name of a registered Python check, when logic is needed
    evidence: tuple[str, ...]  # fact attributes to show as evidence (all when empty)
    cases: RuleCases
    source: str = field(default="", compare=False)

    def applies_to(self, fmt: str) -> bool:
        return "*" in self.formats or fmt in self.formats

    @property
    def security_severity(self) -> str:
        """GitHub code scanning's 0-10 score for this rule's severity."""
        return {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5",
                Severity.LOW: "3.0", Severity.INFO: "0.0"}[self.severity]


def _text(data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = data.get(key, default)
    if not isinstance(value, str) or (default is None and not value.strip()):
        raise RuleError(f"{where}: '{key}' must be a non-empty string")
    return value.strip()


def _strings(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) for v in value):
        raise RuleError(f"{where}: '{key}' must be a list of strings")
    return tuple(str(v) for v in value)


def parse_rule(data: Any, path: Path) -> Rule:
    where = str(path)
    if not isinstance(data, Mapping):
        raise RuleError(f"{where}: a rule file holds one mapping")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise RuleError(f"{where}: missing {', '.join(missing)}")
    unknown = set(data) - KNOWN_KEYS
    if unknown:
        raise RuleError(f"{where}: unknown keys {', '.join(sorted(unknown))}")
    rule_id = _text(data, "id", where)
    if not RULE_ID.match(rule_id) or path.stem != rule_id:
        raise RuleError(f"{where}: id {rule_id!r} must look like ABC123 and match the file name")
    match = data.get("match")
    check = data.get("check")
    if match is None and check is None:
        raise RuleError(f"{where}: a rule needs 'match', 'check' or both")
    if match is not None and (not isinstance(match, Mapping) or "fact" not in match):
        raise RuleError(f"{where}: 'match' must be a mapping with a 'fact' kind")
    if match is not None and "message" not in data:
        raise RuleError(f"{where}: a 'match' rule needs a 'message' template")
    cases = data["cases"]
    if not isinstance(cases, Mapping):
        raise RuleError(f"{where}: 'cases' must map 'fires' and 'passes' to fixture names")
    rule_cases = RuleCases(_strings(cases, "fires", where), _strings(cases, "passes", where))
    if not rule_cases.fires or not rule_cases.passes:
        raise RuleError(f"{where}: every rule needs at least one 'fires' and one 'passes' case")
    try:
        severity = Severity.parse(str(data["severity"]))
        confidence = Confidence.parse(str(data["confidence"]))
        category = Category(str(data["category"]))
    except ValueError as exc:
        raise RuleError(f"{where}: {exc}") from None
    cwe = _strings(data, "cwe", where)
    if not cwe or not all(re.fullmatch(r"CWE-\d+", c) for c in cwe):
        raise RuleError(f"{where}: 'cwe' must list ids like CWE-502")
    return Rule(
        id=rule_id,
        name=_text(data, "name", where),
        family=path.parent.name,
        severity=severity,
        confidence=confidence,
        category=category,
        cwe=cwe,
        summary=_text(data, "summary", where),
        description=_text(data, "description", where),
        why=_text(data, "why", where, ""),
        example=_text(data, "example", where, ""),
        remediation=_text(data, "remediation", where),
        references=_strings(data, "references", where),
        formats=_strings(data, "formats", where),
        match=match,
        message=_text(data, "message", where, "") or _text(data, "summary", where),
        subject=_text(data, "subject", where, ""),
        check=str(check) if check is not None else None,
        evidence=_strings(data, "evidence", where),
        cases=rule_cases,
        source=where,
    )


def load_rules(directory: Path, documents: Mapping[str, Any] | None = None) -> dict[str, Rule]:
    """Every rule under ``directory`` (``lists/`` holds name lists and ``data/`` reference
    tables, not rules).  ``documents`` maps paths relative to ``directory`` to already parsed
    content (see ``engine.documents``); files not in it are read."""
    rules: dict[str, Rule] = {}
    for path in sorted(directory.glob("*/*.yaml")):
        if path.parent.name in ("lists", "data") or path.parent.name.startswith("_"):
            continue
        data = (documents or {}).get(path.relative_to(directory).as_posix())
        if data is None:
            data = load_yaml(path.read_text(encoding="utf-8"))
        rule = parse_rule(data, path)
        if rule.id in rules:
            raise RuleError(f"{path}: duplicate rule id {rule.id}")
        rules[rule.id] = rule
    return rules
