"""The readable report: findings grouped per artifact, then a one-line summary."""

from __future__ import annotations

from itertools import groupby

from ckptguard.model import ScanResult, Severity

COLOURS = {Severity.CRITICAL: "\033[1;31m", Severity.HIGH: "\033[31m",
           Severity.MEDIUM: "\033[33m", Severity.LOW: "\033[36m", Severity.INFO: "\033[2m"}
RESET = "\033[0m"


def render(result: ScanResult, *, colour: bool = False) -> str:
    lines: list[str] = []

    def paint(level: Severity, text: str) -> str:
        return f"{COLOURS[level]}{text}{RESET}" if colour else text

    for artifact, items in groupby(result.findings, key=lambda f: f.location.artifact):
        lines.append(artifact)
        for item in items:
            where = item.location.describe().removeprefix(artifact).lstrip(", ")
            tag = paint(item.severity, f"{item.severity.label.upper():8}")
            lines.append(f"  {tag} {item.rule_id} {item.message}" + (f" [{where}]" if where else ""))
        lines.append("")
    lines.append(summary_line(result))
    return "\n".join(lines) + "\n"


def summary_line(result: ScanResult) -> str:
    counts = {level: 0 for level in Severity}
    for item in result.findings:
        counts[item.severity] += 1
    parts = [f"{counts[level]} {level.label}" for level in reversed(Severity) if counts[level]]
    verdict = "FAIL" if result.failed else "PASS"
    found = ", ".join(parts) if parts else "no findings"
    extra = f", {len(result.suppressed)} suppressed" if result.suppressed else ""
    return (f"{verdict}: {len(result.artifacts)} artifact(s) scanned, {found}{extra} "
            f"(gate: {result.fail_on.label} and above)")
