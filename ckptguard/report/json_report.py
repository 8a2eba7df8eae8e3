"""JSON report, schema version 1 (documented in docs/json-schema.json)."""

from __future__ import annotations

import json
from typing import Any

from ckptguard.model import Finding, ScanResult

SCHEMA_VERSION = 1


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
        "evidence": dict(item.evidence),
        "fingerprint": item.fingerprint,
    }


def render(result: ScanResult) -> str:
    document = {
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
        },
        "artifacts": [{"name": a.name, "chain": list(a.chain), "format": a.format,
                       "size": a.size} for a in result.artifacts],
        "findings": [finding_dict(f) for f in result.findings],
        "suppressed": [finding_dict(f) for f in result.suppressed],
    }
    return json.dumps(document, indent=2, sort_keys=False) + "\n"
