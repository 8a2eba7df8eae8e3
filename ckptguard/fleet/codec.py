"""Outcomes to JSON and back, for the results file a fleet scan resumes from."""

from __future__ import annotations

from typing import Any

from ckptguard.model import ArtifactSummary, Category, Confidence, Finding, Location, Severity
from ckptguard.scanner import ArtifactOutcome

RESULTS_VERSION = 1


def finding_to_json(item: Finding) -> dict[str, Any]:
    loc = item.location
    return {"rule_id": item.rule_id, "severity": item.severity.name,
            "confidence": item.confidence.name, "category": item.category.value,
            "message": item.message,
            "location": {"chain": list(loc.chain), "offset": loc.offset, "tensor": loc.tensor,
                         "key": loc.key, "line": loc.line},
            "evidence": [list(pair) for pair in item.evidence], "fingerprint": item.fingerprint,
            "identity": item.identity}


def finding_from_json(data: dict[str, Any]) -> Finding:
    loc = data["location"]
    return Finding(rule_id=str(data["rule_id"]), severity=Severity[data["severity"]],
                   confidence=Confidence[data["confidence"]],
                   category=Category(data["category"]), message=str(data["message"]),
                   location=Location(tuple(loc["chain"]), offset=loc["offset"],
                                     tensor=loc["tensor"], key=loc["key"], line=loc["line"]),
                   evidence=tuple((str(k), str(v)) for k, v in data["evidence"]),
                   fingerprint=str(data["fingerprint"]), identity=str(data.get("identity", "")))


def outcomes_to_json(outcomes: tuple[ArtifactOutcome, ...]) -> list[dict[str, Any]]:
    return [{"chain": list(o.summary.chain), "format": o.summary.format, "size": o.summary.size,
             "sha256": o.summary.sha256,
             "findings": [finding_to_json(f) for f in o.findings]} for o in outcomes]


def outcomes_from_json(data: list[dict[str, Any]]) -> tuple[ArtifactOutcome, ...]:
    return tuple(ArtifactOutcome(ArtifactSummary(tuple(o["chain"]), str(o["format"]),
                                                 int(o["size"]), o.get("sha256")),
                                 tuple(finding_from_json(f) for f in o["findings"]))
                 for o in data)
