"""Rule documentation: ``ckptguard rules`` (list, show, docs) and the committed docs/rules pages,
which must match what the rules in rules/ generate."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from ckptguard.cli import main
from ckptguard.cli_rules import write_docs
from ckptguard.engine.rules import RULE_ID
from ckptguard.engine.ruleset import RuleSet
from ckptguard.rule_docs import INDEX_NAME, REGENERATE, help_markdown, pages, to_markdown, to_text

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "rules"
RULES = RuleSet.load().rules


def test_committed_rule_docs_are_current() -> None:
    expected = pages(RULES)
    present = {p.name: p.read_text(encoding="utf-8") for p in DOCS.glob("*.md")} \
        if DOCS.is_dir() else {}
    missing = sorted(name for name in expected if name not in present)
    stale = sorted(name for name in expected if name in present and present[name] != expected[name])
    orphaned = sorted(name for name in present
                      if name not in expected and RULE_ID.match(Path(name).stem))
    problems = [f"{label}: {', '.join(names)}" for label, names in
                (("missing", missing), ("out of date", stale),
                 ("for rules that no longer exist", orphaned)) if names]
    assert not problems, ("docs/rules does not match rules/ (" + "; ".join(problems) +
                          f").  Regenerate the pages with `{REGENERATE}` and commit them.")


def test_text_page_has_every_section_and_the_metadata() -> None:
    rule = RULES["FMT001"]
    text = to_text(rule)
    for heading in ("What it detects", "Why it matters", "Example", "Remediation", "References"):
        assert f"\n{heading}\n" in text
    assert text.startswith(f"{rule.id} {rule.name}\n")
    for label in ("Severity:", "Confidence:", "Category:", "CWE:", "Formats:"):
        assert label in text
    assert "https://cwe.mitre.org/data/definitions/502.html" in text
    assert max(len(line) for line in text.splitlines() if not line.startswith("  - ")) <= 90


def test_markdown_pages_and_index() -> None:
    rule = RULES["FMT003"]
    page = to_markdown(rule)
    assert page.startswith(f"# {rule.id}: {rule.name}\n")
    assert "## What it detects" in page and "## Remediation" in page
    assert f"| Severity | {rule.severity.label} |" in page
    assert REGENERATE in page
    index = pages(RULES)[INDEX_NAME]
    for rule_id in RULES:
        assert f"[{rule_id}]({rule_id}.md)" in index
    assert "### Remediation" in help_markdown(rule)


def test_rules_list_text_and_json() -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["rules"])
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    assert len(lines) == len(RULES)
    first = RULES[sorted(RULES)[0]]
    assert lines[0].split()[:4] == [first.id, first.severity.label, first.category.value,
                                    first.name]
    as_json = runner.invoke(main, ["rules", "--format", "json"])
    rows = json.loads(as_json.stdout)
    assert [row["id"] for row in rows] == sorted(RULES)
    assert set(rows[0]) >= {"id", "severity", "category", "name", "summary", "cwe"}


def test_rules_show() -> None:
    runner = CliRunner()
    shown = runner.invoke(main, ["rules", "show", "fmt004"])
    assert shown.exit_code == 0
    assert shown.stdout == to_text(RULES["FMT004"])
    unknown = runner.invoke(main, ["rules", "show", "FMT999"])
    assert unknown.exit_code == 2
    assert "no rule 'FMT999'" in unknown.stderr and "FMT001" in unknown.stderr


def test_rules_docs_writes_pages_and_prunes_only_rule_pages(tmp_path: Path) -> None:
    (tmp_path / "XYZ123.md").write_text("a page for a rule that is gone", encoding="utf-8")
    (tmp_path / "notes.md").write_text("hand-written", encoding="utf-8")
    outcome = CliRunner().invoke(main, ["rules", "docs", "--output", str(tmp_path)])
    assert outcome.exit_code == 0, outcome.output
    assert not (tmp_path / "XYZ123.md").exists()
    assert (tmp_path / "notes.md").read_text(encoding="utf-8") == "hand-written"
    for name, text in pages(RULES).items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
    assert write_docs(RULES, tmp_path) == len(RULES) + 1


def test_code_examples_are_fenced_in_markdown() -> None:
    from dataclasses import replace

    from ckptguard.rule_docs import looks_like_code

    assert looks_like_code("{{ cycler.__init__.__globals__.os.popen('id').read() }}")
    assert not looks_like_code("`model.safetensors` whose first bytes are `\\x80`.")
    assert not looks_like_code("A tensor at offset 4096 in a 66-byte data section.")
    rule = replace(RULES["FMT001"], example="{{ x.__class__ }}")
    assert "## Example\n\n```\n{{ x.__class__ }}\n```\n" in to_markdown(rule)
