"""A rule's documentation, rendered as plain text (``ckptguard rules show``) and as Markdown
(``docs/rules/<ID>.md`` and the SARIF ``help.markdown``), in the shape ruff uses: What it detects /
Why it matters / Example / Remediation / References, plus the rule's metadata.

Everything here is a pure function of ``Rule`` objects: the output never holds dates, versions or
paths, so the committed pages change only when a rule changes.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping

from ckptguard.engine.rules import Rule

CWE_URL = "https://cwe.mitre.org/data/definitions/{number}.html"
REGENERATE = "ckptguard rules docs --output docs/rules"
INDEX_NAME = "README.md"


def cwe_url(cwe: str) -> str:
    return CWE_URL.format(number=cwe.removeprefix("CWE-"))


def formats_label(rule: Rule) -> str:
    return "all formats" if "*" in rule.formats else ", ".join(rule.formats)


def metadata(rule: Rule) -> list[tuple[str, str]]:
    """The facts about a rule a reader wants before its prose, as (label, value) pairs."""
    implementation = "declarative match" if rule.check is None else (
        f"Python check {rule.check!r}" if rule.match is None
        else f"declarative match + Python check {rule.check!r}")
    return [
        ("Severity", rule.severity.label),
        ("Confidence", rule.confidence.label),
        ("Category", rule.category.value),
        ("CWE", ", ".join(rule.cwe)),
        ("Formats", formats_label(rule)),
        ("Family", rule.family),
        ("Implementation", implementation),
    ]


def sections(rule: Rule) -> list[tuple[str, str]]:
    """The prose sections that exist for this rule, in reading order."""
    out = [("What it detects", rule.description)]
    if rule.why:
        out.append(("Why it matters", rule.why))
    if rule.example:
        out.append(("Example", rule.example))
    out.append(("Remediation", rule.remediation))
    return out


def references(rule: Rule) -> list[str]:
    """The rule's references, then its CWE pages (no duplicates, order kept)."""
    seen: dict[str, None] = {}
    for url in (*rule.references, *(cwe_url(c) for c in rule.cwe)):
        seen.setdefault(url, None)
    return list(seen)


def _preformatted(paragraph: str) -> bool:
    """Code and layout (fences, indented lines, lists) keep their lines; prose is re-wrapped."""
    rows = paragraph.splitlines()
    return any(row.startswith(("```", "  ", "\t", "- ", "* ")) for row in rows)


def _wrap(text: str, indent: str, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.strip().split("\n\n"):
        if _preformatted(paragraph):
            lines.extend(f"{indent}{row}".rstrip() for row in paragraph.splitlines())
        else:
            flowing = " ".join(line.strip() for line in paragraph.splitlines())
            lines.extend(textwrap.wrap(flowing, width=width, initial_indent=indent,
                                       subsequent_indent=indent, break_on_hyphens=False))
        lines.append("")
    return lines


def to_text(rule: Rule, *, width: int = 88) -> str:
    """The terminal page shown by ``ckptguard rules show ID``."""
    lines = [f"{rule.id} {rule.name}", *_wrap(rule.summary, "  ", width)]
    label_width = max(len(label) for label, _ in metadata(rule))
    lines += [f"  {label + ':':<{label_width + 1}} {value}" for label, value in metadata(rule)]
    lines.append("")
    for title, body in sections(rule):
        lines.append(title)
        lines += _wrap(body, "  ", width)
    lines.append("References")
    lines += [f"  - {url}" for url in references(rule)]
    return "\n".join(lines).rstrip() + "\n"


def looks_like_code(text: str) -> bool:
    """An example written as bare code (a template, an expression) rather than as prose with
    `code spans`: Markdown would eat its underscores and braces unless it is fenced."""
    text = text.strip()
    return "`" not in text and (text.startswith(("{", "<", "$", "[")) or
                                any(mark in text for mark in ("__", "{{", "{%", "()")))


def _markdown_body(rule: Rule, heading: str) -> list[str]:
    lines: list[str] = []
    for title, body in sections(rule):
        text = body.strip()
        if title == "Example" and looks_like_code(text):
            text = f"```\n{text}\n```"
        lines += [f"{heading} {title}", "", text, ""]
    lines += [f"{heading} References", ""]
    lines += [f"- <{url}>" for url in references(rule)]
    return lines


def to_markdown(rule: Rule) -> str:
    """The page committed as ``docs/rules/<ID>.md``."""
    lines = [f"# {rule.id}: {rule.name}", "", f"*{rule.summary}*", "",
             "| Property | Value |", "|---|---|"]
    lines += [f"| {label} | {_cell(value)} |" for label, value in metadata(rule)]
    lines.append("")
    lines += _markdown_body(rule, "##")
    lines += ["", "---", "", f"Generated from `{_source_name(rule)}` by `{REGENERATE}`."]
    return "\n".join(lines).rstrip() + "\n"


def help_markdown(rule: Rule) -> str:
    """The documentation embedded in SARIF ``help.markdown`` (GitHub shows it beside an alert)."""
    head = [f"**{rule.id}: {rule.name}** ({rule.severity.label} severity, "
            f"{rule.confidence.label} confidence; {', '.join(rule.cwe)})", "", rule.summary, ""]
    return "\n".join(head + _markdown_body(rule, "###")).rstrip() + "\n"


def help_text(rule: Rule) -> str:
    """The documentation embedded in SARIF ``help.text``."""
    return to_text(rule)


def index_markdown(rules: Iterable[Rule]) -> str:
    """``docs/rules/README.md``: every rule, grouped by family, linking to its page."""
    by_family: dict[str, list[Rule]] = {}
    for rule in sorted(rules, key=lambda r: r.id):
        by_family.setdefault(rule.family, []).append(rule)
    lines = ["# ckptguard rules", "",
             "One page per rule, generated from `rules/<family>/<ID>.yaml`.  Show one in the "
             "terminal with `ckptguard rules show <ID>`; regenerate these pages with "
             f"`{REGENERATE}`.", ""]
    for family in sorted(by_family):
        lines += [f"## {family}", "", "| ID | Severity | Category | Name | Summary |",
                  "|---|---|---|---|---|"]
        lines += [f"| [{r.id}]({r.id}.md) | {r.severity.label} | {r.category.value} | "
                  f"{_cell(r.name)} | {_cell(r.summary)} |" for r in by_family[family]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def pages(rules: Mapping[str, Rule]) -> dict[str, str]:
    """Every generated file: ``{file name: content}`` (one page per rule, plus the index)."""
    out = {f"{rule_id}.md": to_markdown(rule) for rule_id, rule in sorted(rules.items())}
    out[INDEX_NAME] = index_markdown(rules.values())
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _source_name(rule: Rule) -> str:
    return f"rules/{rule.family}/{rule.id}.yaml"
