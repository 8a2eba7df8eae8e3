"""The readable report: findings grouped per file, each with where and the evidence that matters,
then one hint per distinct rule and a one-line summary with the verdict.

    models/bundle.zip
      CRITICAL  PKL001  The pickle calls os.system when loaded
                at archive/data.pkl, byte 57
                call: os.system('touch /tmp/x')

    PKL001  dangerous-callable  → ckptguard rules show PKL001

    FAIL  1 finding in 1 artifact (3 scanned): 1 critical  (gate: high and above, 1 at or above)
"""

from __future__ import annotations

from collections.abc import Mapping

from ckptguard.engine.rules import Rule
from ckptguard.model import Confidence, Finding, Location, ScanResult, Severity
from ckptguard.report.safe_text import printable

COLOURS = {Severity.CRITICAL: "\033[1;31m", Severity.HIGH: "\033[31m",
           Severity.MEDIUM: "\033[33m", Severity.LOW: "\033[36m", Severity.INFO: "\033[2m"}
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[1;32m", "\033[1;31m", "\033[0m"
TAG_WIDTH = len("CRITICAL")
MAX_EVIDENCE_ITEMS = 6
MAX_VALUE_CHARS = 160
MAX_MESSAGE_CHARS = 300  # the full text is in --format json


class _Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, style: str, text: str) -> str:
        return f"{style}{text}{RESET}" if self.colour and text else text


def clean(text: str) -> str:
    """Text from a scanned file made safe to print (no terminal escapes, always encodable)."""
    return printable(text)


def render(result: ScanResult, *, colour: bool = False,
           rules: Mapping[str, Rule] | None = None) -> str:
    """The report as text; ``colour`` adds ANSI colours, ``rules`` adds rule names to hints."""
    paint = _Painter(colour)
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = {}
    for item in result.findings:
        by_file.setdefault(item.location.path, []).append(item)
    for path, items in by_file.items():
        lines.append(paint(BOLD, clean(path) or "<unnamed>"))
        for item in items:
            lines += finding_lines(item, paint)
        lines.append("")
    lines += hint_lines(result, paint, rules or {})
    lines += scope_lines(result)
    lines.append(summary_line(result, colour=colour))
    return "\n".join(lines) + "\n"


def scope_lines(result: ScanResult) -> list[str]:
    """What the scan did not look at: folders skipped by name, or nothing judged at all."""
    out = []
    if result.skipped_folders:
        shown = ", ".join(clean(p) for p in result.skipped_folders[:5])
        more = f" and {len(result.skipped_folders) - 5} more" \
            if len(result.skipped_folders) > 5 else ""
        out.append(f"Skipped by name (--include-skipped scans them): {shown}{more}")
    if result.judged_nothing:
        out.append("NOTHING JUDGED: no model, archive or repo folder was found in the paths given")
    return out


def finding_lines(item: Finding, paint: _Painter) -> list[str]:
    """One finding: severity, rule id and message, then where and the evidence, indented."""
    tag = paint(COLOURS[item.severity], f"{item.severity.label.upper():<{TAG_WIDTH}}")
    indent = " " * (2 + TAG_WIDTH + 2 + len(item.rule_id) + 2)
    message = compact(item.message, MAX_MESSAGE_CHARS)
    doubt = paint(DIM, "  (low confidence)") if item.confidence is Confidence.LOW else ""
    out = [f"  {tag}  {paint(BOLD, clean(item.rule_id))}  {message}{doubt}"]
    where = where_inside(item.location)
    if where:
        out.append(f"{indent}{paint(DIM, 'at')} {where}")
    out += [f"{indent}{paint(DIM, clean(key) + ':')} {value}"
            for key, value in evidence_items(item)]
    return out


def where_inside(loc: Location) -> str:
    """Where in the file, beyond its name: archive members, tensor, key, line, byte offset."""
    parts = ["!".join(loc.members)] if loc.members else []
    return clean(", ".join([*parts, *loc.details()]))


def evidence_items(item: Finding) -> list[tuple[str, str]]:
    """The evidence, compact: one line per item, long values cut, at most a few items, and
    nothing the message or the location already says (nor empty values)."""
    said = " ".join(item.message.split())
    loc = item.location
    placed = {"offset": loc.offset, "tensor": loc.tensor, "key": loc.key, "line": loc.line}
    pairs = [(key, compact(value)) for key, value in item.evidence
             if value.strip() and value != "None"
             and not (len(value) >= 3 and value in said)
             and str(placed.get(key, "\0")) != value]
    if len(pairs) > MAX_EVIDENCE_ITEMS:
        hidden = len(pairs) - MAX_EVIDENCE_ITEMS + 1
        pairs = [*pairs[:MAX_EVIDENCE_ITEMS - 1],
                 ("…", f"{hidden} more evidence item(s) in --format json")]
    return pairs


def compact(value: str, limit: int = MAX_VALUE_CHARS) -> str:
    """One line, at most ``limit`` characters, saying how long the original was when cut."""
    flat = clean(" ".join(value.split()))
    if len(flat) <= limit:
        return flat
    return f"{flat[:limit - 1]}… ({len(flat)} characters)"


def hint_lines(result: ScanResult, paint: _Painter, rules: Mapping[str, Rule]) -> list[str]:
    """One line per distinct rule, pointing at its documentation."""
    seen = sorted({f.rule_id for f in result.findings})
    if not seen:
        return []
    width = max(len(rule_id) for rule_id in seen)
    name_width = max((len(rules[r].name) for r in seen if r in rules), default=0)
    out = []
    for rule_id in seen:
        name = rules[rule_id].name if rule_id in rules else ""
        label = f"{rule_id:<{width}}  {name:<{name_width}}" if name_width else f"{rule_id:<{width}}"
        out.append(f"{label}  {paint(DIM, '→')} ckptguard rules show {rule_id}")
    out.append("")
    return out


def summary_line(result: ScanResult, *, colour: bool = False) -> str:
    """Verdict, counts per severity, artifacts, suppressed findings and the gate, on one line."""
    paint = _Painter(colour)
    counts = {level: 0 for level in Severity}
    for item in result.findings:
        counts[item.severity] += 1
    parts = [paint(COLOURS[level], f"{counts[level]} {level.label}")
             for level in reversed(Severity) if counts[level]]
    verdict = paint(RED, "FAIL") if result.failed else paint(GREEN, "PASS")
    total = len(result.findings)
    scanned = len(result.artifacts)
    if total:
        files = len({f.location.artifact for f in result.findings})
        found = (f"{total} finding{'s' if total != 1 else ''} in {files} "
                 f"artifact{'s' if files != 1 else ''} ({scanned} scanned): {', '.join(parts)}")
    else:
        found = f"no findings in {scanned} artifact{'s' if scanned != 1 else ''}"
    blocking = len(result.at_or_above(result.fail_on))
    gate = f"gate: {result.fail_on.label} and above"
    if total:
        gate += f", {blocking} at or above"
    extra = f", {len(result.suppressed)} suppressed" if result.suppressed else ""
    return f"{verdict}  {found}{extra}  ({gate})"
