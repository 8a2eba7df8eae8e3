"""The readable report, laid out the way a security finding is read: what was found, where
(file › member › tensor/key/line/byte), the code it would run, why it matters, the evidence under
human labels; then what to do, once per rule; then a summary whose numbers add up.

    models/bundle.zip
      CRITICAL  PKL001  Pickle reaches os.system (process), called at load time
                where   models/bundle.zip › archive/data.pkl › byte 57
                code    │ from os import system
                        │ _var0 = system('touch /tmp/x')
                why     runs a shell command or a program

    What to do
      PKL001  dangerous-callable-in-pickle
              Do not load this file. ...
              → ckptguard rules show PKL001

    FAIL  1 finding in 1 of 3 files: 1 critical  (gate: high and above, 1 at or above)

Identical findings (same rule, place and message, differing only in evidence) are shown once,
with their evidence merged and their number.  Long values are shortened in the middle; advice is
never shortened.  ``quiet`` shows only findings at or above the gate; the summary still counts
every finding and says how many were not shown.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ckptguard.engine.rules import Rule
from ckptguard.model import Confidence, Finding, Location, ScanResult, Severity
from ckptguard.report.evidence_labels import (
    CODE_KEYS,
    HIDDEN_KEYS,
    WHY_KEYS,
    label,
    says_nothing,
    shown_value,
)
from ckptguard.report.safe_text import printable

COLOURS = {Severity.CRITICAL: "\033[1;31m", Severity.HIGH: "\033[31m",
           Severity.MEDIUM: "\033[33m", Severity.LOW: "\033[36m", Severity.INFO: "\033[2m"}
BOLD, DIM, GREEN, RED, RESET = "\033[1m", "\033[2m", "\033[1;32m", "\033[1;31m", "\033[0m"
YELLOW = "\033[1;33m"
TAG_WIDTH = len("CRITICAL")
LABEL_WIDTH = 7
MAX_EVIDENCE_ITEMS = 8
MAX_VALUE_CHARS = 160
MAX_MESSAGE_CHARS = 300  # the full text is in --format json
MAX_CODE_LINES = 12
MAX_CODE_LINE_CHARS = 120
WRAP = 96
SEPARATOR = " › "
ELLIPSIS = " … "


class _Painter:
    def __init__(self, colour: bool) -> None:
        self.colour = colour

    def __call__(self, style: str, text: str) -> str:
        return f"{style}{text}{RESET}" if self.colour and text else text


def clean(text: str) -> str:
    """Text from a scanned file made safe to print (no terminal escapes, no bidi overrides,
    always encodable)."""
    return printable(text)


@dataclass(frozen=True)
class Entry:
    """One line of the report: a finding, or several identical ones merged."""

    first: Finding
    count: int
    evidence: tuple[tuple[str, str], ...]


def merge(findings: Sequence[Finding]) -> list[Entry]:
    """Findings with the same rule, severity, place and message as one entry, in first-seen
    order; evidence values that differ between them are listed together."""
    groups: dict[tuple[object, ...], list[Finding]] = {}
    for item in findings:
        key = (item.rule_id, item.severity, item.location, item.message)
        groups.setdefault(key, []).append(item)
    entries = []
    for items in groups.values():
        values: dict[str, list[str]] = {}
        for item in items:
            for name, value in item.evidence:
                bucket = values.setdefault(name, [])
                if value not in bucket:
                    bucket.append(value)
        evidence = tuple((name, ", ".join(vals)) for name, vals in values.items())
        entries.append(Entry(items[0], len(items), evidence))
    return entries


def render(result: ScanResult, *, colour: bool = False,
           rules: Mapping[str, Rule] | None = None, quiet: bool = False) -> str:
    """The report as text; ``colour`` adds ANSI colours, ``rules`` adds why and what to do,
    ``quiet`` shows only the findings at or above the gate (the summary counts them all)."""
    paint = _Painter(colour)
    table = rules or {}
    shown = result.at_or_above(result.fail_on) if quiet else result.findings
    lines: list[str] = []
    by_file: dict[str, list[Finding]] = {}
    for item in shown:
        by_file.setdefault(item.location.path, []).append(item)
    for path, items in by_file.items():
        lines.append(paint(BOLD, clean(path) or "<unnamed>"))
        for entry in merge(items):
            lines += entry_lines(entry, paint, table.get(entry.first.rule_id))
        lines.append("")
    lines += advice_lines(shown, paint, table)
    lines += scope_lines(result)
    lines.append(summary_line(result, colour=colour, quiet=quiet))
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


def entry_lines(entry: Entry, paint: _Painter, rule: Rule | None) -> list[str]:
    """One finding: severity, rule id and what was found; then where, code, why, evidence."""
    item = entry.first
    tag = paint(COLOURS[item.severity], f"{item.severity.label.upper():<{TAG_WIDTH}}")
    indent = " " * (2 + TAG_WIDTH + 2)
    evidence = dict(entry.evidence)
    code_key = next((k for k in CODE_KEYS if not says_nothing(k, evidence.get(k, ""))), None)
    message = item.message
    if code_key is not None:
        message = _without(message, evidence[code_key])
    notes = []
    if entry.count > 1:
        notes.append(f"{entry.count} findings")
    if item.confidence is Confidence.LOW:
        notes.append("low confidence")
    suffix = paint(DIM, f"  ({', '.join(notes)})") if notes else ""
    out = [f"  {tag}  {paint(BOLD, clean(item.rule_id))}  "
           f"{elide(message, MAX_MESSAGE_CHARS)}{suffix}"]

    def row(name: str, value: str) -> str:
        return f"{indent}{paint(DIM, f'{name:<{LABEL_WIDTH}}')} {value}"

    out.append(row("where", where(item.location)))
    if code_key is not None:
        code = code_lines(evidence[code_key])
        out.append(row("code", paint(DIM, "│ ") + code[0]))
        out += [f"{indent}{' ' * LABEL_WIDTH} {paint(DIM, '│ ')}{line}" for line in code[1:]]
    why = next((evidence[k] for k in WHY_KEYS if not says_nothing(k, evidence.get(k, ""))),
               None)
    if why is None and rule is not None and rule.why.strip():
        why = first_sentence(rule.why)
    if why:
        hang = indent + " " * (LABEL_WIDTH + 1)
        out += _wrapped(row("why", ""), elide(why, MAX_MESSAGE_CHARS), hang)
    for key, value in evidence_items(item, entry.evidence):
        out.append(f"{indent}{paint(DIM, clean(key) + ':')} {value}")
    return out


def _without(message: str, code: str) -> str:
    """The message without the code shown below it (``...: <code>`` becomes ``...``)."""
    flat_code = " ".join(code.split())
    flat = " ".join(message.split())
    if len(flat_code) >= 3 and flat.endswith(flat_code):
        flat = flat[:-len(flat_code)].rstrip().rstrip(":").rstrip()
    return flat or " ".join(message.split())


def _wrapped(head: str, text: str, hang: str) -> list[str]:
    width = max(WRAP - len(hang), 40)
    chunks = textwrap.wrap(text, width=width, break_long_words=True) or [""]
    return [head + chunks[0], *(hang + chunk for chunk in chunks[1:])]


def where(loc: Location) -> str:
    """The full place: file › member › … › tensor/key/line/byte."""
    parts = [*loc.chain, *loc.details()]
    return SEPARATOR.join(elide(part, MAX_VALUE_CHARS) for part in parts if part) or "<unnamed>"


def where_inside(loc: Location) -> str:
    """Where in the file, beyond its name: archive members, tensor, key, line, byte offset."""
    return SEPARATOR.join(elide(part, MAX_VALUE_CHARS) for part in [*loc.members, *loc.details()])


def code_lines(code: str) -> list[str]:
    """Code as lines, each made printable; long lines wrapped (and very long ones shortened in
    the middle); a long listing keeps its first and last lines with a marker saying how many
    were left out."""
    lines = []
    for line in code.strip("\n").splitlines():
        if not line.strip():
            continue
        # A long line (a one-line template) is wrapped, so that the middle, often the payload,
        # stays visible; only a very long one is also shortened in its middle.
        text = elide(clean(line.rstrip()), MAX_CODE_LINE_CHARS * 4, flatten=False)
        lines += [text[i:i + MAX_CODE_LINE_CHARS]
                  for i in range(0, len(text), MAX_CODE_LINE_CHARS)]
    lines = lines or [""]
    if len(lines) > MAX_CODE_LINES:
        head = MAX_CODE_LINES // 2
        tail = MAX_CODE_LINES - head - 1
        hidden = len(lines) - head - tail
        lines = [*lines[:head], f"… {hidden} more lines (--format json has all) …",
                 *lines[-tail:]]
    return lines


def evidence_items(item: Finding, evidence: tuple[tuple[str, str], ...] | None = None
                   ) -> list[tuple[str, str]]:
    """The evidence under human labels, one line each, long values shortened in the middle,
    without what the message, the place, the code or the why already say."""
    pairs_in = item.evidence if evidence is None else evidence
    said = " ".join(item.message.split())
    loc = item.location
    placed = {"offset": loc.offset, "tensor": loc.tensor, "key": loc.key, "line": loc.line,
              "path": loc.key}
    shown: list[tuple[str, str]] = []
    for key, value in pairs_in:
        if key in HIDDEN_KEYS or key in WHY_KEYS or key in CODE_KEYS or says_nothing(key, value):
            continue
        flat = " ".join(value.split())
        if (len(flat) >= 3 and flat in said) or str(placed.get(key, "\0")) == value:
            continue
        shown.append((label(key), elide(shown_value(key, value))))
    if len(shown) > MAX_EVIDENCE_ITEMS:
        hidden = len(shown) - MAX_EVIDENCE_ITEMS + 1
        shown = [*shown[:MAX_EVIDENCE_ITEMS - 1],
                 ("…", f"{hidden} more evidence item(s) in --format json")]
    return shown


def elide(value: str, limit: int = MAX_VALUE_CHARS, *, flatten: bool = True) -> str:
    """Printable, on one line (unless ``flatten`` is false), at most about ``limit`` characters:
    a long value keeps its start and its end, and says how many characters were left out."""
    flat = clean(" ".join(value.split()) if flatten else value)
    if len(flat) <= limit:
        return flat
    keep = max(limit - 24, 8)
    head, tail = keep * 2 // 3, keep - keep * 2 // 3
    return f"{flat[:head]}{ELLIPSIS}[{len(flat) - head - tail} more]{ELLIPSIS}{flat[-tail:]}"


compact = elide  # the name earlier callers used


def first_sentence(text: str, short: int = 80) -> str:
    """The first sentence of ``text``, and the second too when the first is short (a short
    opening sentence is usually context, and the reason follows)."""
    flat = " ".join(text.split())
    end = flat.find(". ")
    if end < 0:
        return flat
    if end < short:
        second = flat.find(". ", end + 2)
        return flat if second < 0 else flat[:second + 1]
    return flat[:end + 1]


def advice_lines(findings: Sequence[Finding], paint: _Painter,
                 rules: Mapping[str, Rule]) -> list[str]:
    """What to do, once per rule (worst first): the rule's remediation in full, and where to
    read more."""
    worst: dict[str, Severity] = {}
    for item in findings:
        worst[item.rule_id] = max(worst.get(item.rule_id, item.severity), item.severity)
    if not worst:
        return []
    order = sorted(worst, key=lambda r: (-worst[r], r))
    out = [paint(BOLD, "What to do")]
    width = max(len(rule_id) for rule_id in order)
    hang = " " * (2 + width + 2)
    for rule_id in order:
        rule = rules.get(rule_id)
        name = rule.name if rule is not None else ""
        out.append(f"  {paint(BOLD, f'{rule_id:<{width}}')}  {name}".rstrip())
        if rule is not None and rule.remediation.strip():
            for paragraph in rule.remediation.strip().split("\n\n"):
                out += textwrap.wrap(" ".join(paragraph.split()), width=WRAP,
                                     initial_indent=hang, subsequent_indent=hang)
        out.append(f"{hang}{paint(DIM, '→')} ckptguard rules show {rule_id}")
    out.append("")
    return out


hint_lines = advice_lines


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def summary_line(result: ScanResult, *, colour: bool = False, quiet: bool = False) -> str:
    """Verdict, findings per severity, files with findings out of files scanned, suppressed
    findings, findings not shown (``quiet``) and the gate, on one line.  Every finding counts,
    shown or not; files are the files (and folders) named on disk, archive members inside them
    counted with them."""
    paint = _Painter(colour)
    counts = {level: 0 for level in Severity}
    for item in result.findings:
        counts[item.severity] += 1
    parts = [paint(COLOURS[level], f"{counts[level]} {level.label}")
             for level in reversed(Severity) if counts[level]]
    if result.failed:
        verdict = paint(RED, "FAIL")
    elif result.judged_nothing:  # exit 3, not a pass: say so on the line CI logs show last
        verdict = paint(YELLOW, "NOTHING JUDGED")
    else:
        verdict = paint(GREEN, "PASS")
    total = len(result.findings)
    with_findings = {f.location.path for f in result.findings}
    scanned = {a.chain[0] for a in result.artifacts if a.chain} | with_findings
    if total:
        found = (f"{_plural(total, 'finding')} in {len(with_findings)} of "
                 f"{_plural(len(scanned), 'file')}: {', '.join(parts)}")
    else:
        found = f"no findings in {_plural(len(scanned), 'file')}"
    blocking = len(result.at_or_above(result.fail_on))
    gate = f"gate: {result.fail_on.label} and above"
    if total:
        gate += f", {blocking} at or above"
    extra = f", {len(result.suppressed)} suppressed" if result.suppressed else ""
    if quiet and total > blocking:
        extra += f", {total - blocking} below the gate not shown"
    return f"{verdict}  {found}{extra}  ({gate})"
