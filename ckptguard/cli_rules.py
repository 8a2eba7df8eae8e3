"""``ckptguard rules``: list the rules, show one rule's documentation, write the Markdown pages."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path

import click

from ckptguard.engine.rules import RULE_ID, Rule
from ckptguard.rule_docs import formats_label, pages, to_text


def _load() -> Mapping[str, Rule]:
    """The shipped rules; a broken rule or list file is a usage error (exit 2), not a trace."""
    import yaml

    from ckptguard.engine.ruleset import RuleSet

    try:
        return RuleSet.load().rules
    except (yaml.YAMLError, ValueError, OSError) as exc:
        click.echo(f"ckptguard: cannot load the rules: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)


def rule_row(rule: Rule) -> dict[str, object]:
    return {"id": rule.id, "name": rule.name, "severity": rule.severity.label,
            "confidence": rule.confidence.label, "category": rule.category.value,
            "cwe": list(rule.cwe), "formats": formats_label(rule), "summary": rule.summary}


def table(rules: Mapping[str, Rule]) -> str:
    """One line per rule: id, severity, category, name, summary."""
    ordered = [rules[key] for key in sorted(rules)]
    if not ordered:
        return "no rules\n"
    widths = [max(len(r.id) for r in ordered), len("critical"),
              max(len(r.category.value) for r in ordered), max(len(r.name) for r in ordered)]
    lines = []
    for rule in ordered:
        cells = (rule.id, rule.severity.label, rule.category.value, rule.name)
        head = "  ".join(f"{cell:<{width}}" for cell, width in zip(cells, widths, strict=True))
        lines.append(f"{head}  {rule.summary}")
    return "\n".join(lines) + "\n"


@click.group("rules", invoke_without_command=True, short_help="List and explain the rules.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="How to list the rules.")
@click.pass_context
def rules_group(ctx: click.Context, output_format: str) -> None:
    """List the rules: id, severity, category, name and summary.

    `ckptguard rules show ID` prints one rule's documentation; `ckptguard rules docs --output
    DIR` writes them all as Markdown."""
    if ctx.invoked_subcommand is not None:
        return
    rules = _load()
    if output_format == "json":
        rows = [rule_row(rules[key]) for key in sorted(rules)]
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(table(rules), nl=False)


@rules_group.command("show", short_help="Print one rule's documentation.")
@click.argument("rule_id")
def show_command(rule_id: str) -> None:
    """Print a rule's documentation: what it detects, why it matters, an example, the fix."""
    rules = _load()
    rule = rules.get(rule_id.strip().upper())
    if rule is None:
        close = sorted(key for key in rules if key[:3] == rule_id.strip().upper()[:3])
        hint = f"; rules in that family: {', '.join(close)}" if close else \
            "; list them with `ckptguard rules`"
        click.echo(f"ckptguard: no rule {rule_id!r}{hint}", err=True)
        sys.exit(2)
    click.echo(to_text(rule), nl=False)


@rules_group.command("docs", short_help="Write the rule pages as Markdown.")
@click.option("--output", "-o", "output", required=True,
              type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the Markdown pages (one per rule, plus README.md).")
def docs_command(output: Path) -> None:
    """Write one Markdown page per rule and an index; remove pages of rules that are gone."""
    written = write_docs(_load(), output)
    click.echo(f"wrote {written} page(s) to {output}")


def write_docs(rules: Mapping[str, Rule], output: Path) -> int:
    """Write the pages; rule pages for ids no longer defined are deleted (nothing else is)."""
    output.mkdir(parents=True, exist_ok=True)
    wanted = pages(rules)
    for stale in output.glob("*.md"):
        if stale.name not in wanted and RULE_ID.match(stale.stem):
            stale.unlink()
    for name, text in wanted.items():
        target = output / name
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
    return len(wanted)
