"""JSON report, schema version 2 (documented in docs/json-schema.json).

Field names are a contract: add fields, never rename or remove them without raising
``SCHEMA_VERSION``.  Version 2 (from version 1): an evidence value that means "none" is JSON
``null`` instead of the string ``"None"``; ``artifacts[].sha256`` holds the content digest.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ckptguard.engine.rules import Rule
from ckptguard.model import Finding, ScanResult
from ckptguard.report.safe_text import scrub

SCHEMA_VERSION = 2
SCHEMA_ID = "https://ckptguard.invalid/schemas/report-v2.json"


def finding_dict(item: Finding) -> dict[str, Any]:
    loc = item.location
    return {
        "rule_id": item.rule_id,
        "severity": item.severity.label,
        "confidence": item.confidence.label,
        "category": item.category.value,
        "message": item.message,
        "location": {
            "artifact": loc.artifact,
            "path": loc.path,
            "members": list(loc.members),
            "offset": loc.offset,
            "tensor": loc.tensor,
            "key": loc.key,
            "line": loc.line,
        },
        "evidence": {key: None if value == "None" else value for key, value in item.evidence},
        "fingerprint": item.fingerprint,
        "identity": item.identity or None,
    }


def rule_dict(rule: Rule) -> dict[str, Any]:
    """What a consumer needs to explain a finding without ckptguard at hand."""
    return {
        "name": rule.name,
        "summary": rule.summary,
        "severity": rule.severity.label,
        "confidence": rule.confidence.label,
        "category": rule.category.value,
        "cwe": list(rule.cwe),
        "docs": f"ckptguard rules show {rule.id}",
    }


def document(result: ScanResult, rules: Mapping[str, Rule] | None = None) -> dict[str, Any]:
    """The report as a JSON-ready mapping; ``rules`` adds a ``rules`` table for the rule ids
    the findings use (rules missing from the table are left out of it)."""
    out: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "ckptguard", "version": result.tool_version},
        "verdict": "fail" if result.failed else "pass",
        "fail_on": result.fail_on.label,
        "summary": {
            "artifacts": len(result.artifacts),
            "findings": len(result.findings),
            "suppressed": len(result.suppressed),
            "max_severity": result.max_severity.label if result.max_severity is not None
            else None,
            "by_severity": _by_severity(result.findings),
            "blocking": len(result.at_or_above(result.fail_on)),
            "judged_nothing": result.judged_nothing,
        },
        "skipped_folders": list(result.skipped_folders),
        "artifacts": [{"name": a.name, "chain": list(a.chain), "format": a.format,
                       "size": a.size, "sha256": a.sha256} for a in result.artifacts],
        "findings": [finding_dict(f) for f in result.findings],
        "suppressed": [finding_dict(f) for f in result.suppressed],
    }
    if rules is not None:
        used = sorted({f.rule_id for f in (*result.findings, *result.suppressed)})
        out["rules"] = {rule_id: rule_dict(rules[rule_id]) for rule_id in used
                        if rule_id in rules}
    return out


def _by_severity(findings: tuple[Finding, ...]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in findings:
        counts[item.severity.label] = counts.get(item.severity.label, 0) + 1
    return counts


def render(result: ScanResult, *, rules: Mapping[str, Rule] | None = None) -> str:
    return json.dumps(scrub(document(result, rules)), indent=2) + "\n"
