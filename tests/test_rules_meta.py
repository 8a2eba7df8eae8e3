"""Rules that lint rules: every rule file is complete, consistent and documented, its match is
valid, its checks exist, and its message can be filled from the facts it matches.  Also: every
report format is wired into the CLI and renders a real scan."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from click.testing import CliRunner

from ckptguard.api import scan
from ckptguard.checks import builtin_checks
from ckptguard.cli import main
from ckptguard.config import Config
from ckptguard.engine.matcher import matches, validate
from ckptguard.engine.rules import Rule, parse_rule
from ckptguard.engine.ruleset import RuleSet, rules_directory
from ckptguard.facts import Artifact, Fact, ParseOutput
from ckptguard.model import Finding
from ckptguard.report import RENDERERS, renderer

RULES_DIR = rules_directory()
RULE_FILES = sorted(p for p in RULES_DIR.glob("*/*.yaml")
                    if p.parent.name != "lists" and not p.parent.name.startswith("_"))
RULESET = RuleSet.load()
ALL_RULES = sorted(RULESET.rules.values(), key=lambda r: r.id)
IDS = [r.id for r in ALL_RULES]
MAX_SUMMARY = 160


def _load(path: Path) -> Rule:
    return parse_rule(yaml.safe_load(path.read_text(encoding="utf-8")), path)


@pytest.mark.parametrize("path", RULE_FILES, ids=[p.stem for p in RULE_FILES])
def test_rule_file_parses_and_is_named_after_its_id(path: Path) -> None:
    rule = _load(path)
    assert rule.id == path.stem, f"{path}: id {rule.id} must equal the file name"
    assert rule.family == path.parent.name


@pytest.mark.parametrize("rule", ALL_RULES, ids=IDS)
def test_metadata_is_complete(rule: Rule) -> None:
    where = rule.source
    assert "\n" not in rule.summary, f"{where}: summary must be one line"
    assert len(rule.summary) <= MAX_SUMMARY, f"{where}: summary longer than {MAX_SUMMARY}"
    assert rule.summary.endswith("."), f"{where}: summary should be a sentence ending in '.'"
    assert len(rule.description.split()) >= 5, f"{where}: description too thin"
    assert len(rule.remediation.split()) >= 2, f"{where}: remediation too thin"
    assert rule.name == rule.name.lower() and re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", rule.name), \
        f"{where}: name should be kebab-case, like 'polyglot-file'"
    for cwe in rule.cwe:
        assert 0 < int(cwe.removeprefix("CWE-")) < 2000, f"{where}: implausible {cwe}"
    assert rule.formats, f"{where}: 'formats' is empty (use ['*'] for every format)"


@pytest.mark.parametrize("rule", ALL_RULES, ids=IDS)
def test_references_are_https_urls(rule: Rule) -> None:
    for url in rule.references:
        parsed = urlparse(url)
        assert parsed.scheme == "https" and parsed.netloc and " " not in url, \
            f"{rule.source}: reference {url!r} is not an https URL"


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if r.match is not None],
                         ids=[r.id for r in ALL_RULES if r.match is not None])
def test_match_is_valid(rule: Rule) -> None:
    assert rule.match is not None
    validate(rule.match, RULESET.lists, rule.source)


def known_formats() -> set[str]:
    """Format names the code can produce: sniffing, parsers, the scanner's own sets, and the
    list documented in docs/ARCHITECTURE.md (formats parsers refine to, e.g. pytorch-zip)."""
    from ckptguard import scanner, sniff
    from ckptguard.formats import PARSERS

    doc = (Path(__file__).resolve().parent.parent / "docs" / "ARCHITECTURE.md").read_text(
        encoding="utf-8")
    section = doc.split("### Formats", 1)[1].split("###", 1)[0] if "### Formats" in doc else ""
    return (set(re.findall(r"`([a-z0-9-]+)`", section)) | set(sniff.EXTENSION_FORMATS.values())
            | set(sniff.TEXT_FORMATS.values()) | set(PARSERS) | scanner.UNSUPPORTED_FORMATS
            | scanner.PASSIVE_FORMATS)


def test_rule_formats_are_known_format_names() -> None:
    known = known_formats()
    unknown = sorted(f"{r.id}: {f}" for r in ALL_RULES for f in r.formats
                     if f != "*" and f not in known)
    assert not unknown, (f"rules name formats no parser or sniffer produces: {unknown}; fix the "
                         "name, or document a new format in docs/ARCHITECTURE.md (### Formats)")


def test_checks_and_rules_name_each_other() -> None:
    registry = builtin_checks()
    missing = sorted(f"{r.id} -> {r.check}" for r in ALL_RULES
                     if r.check is not None and r.check not in registry)
    assert not missing, f"rules name checks that are not registered: {missing}"
    claimed = {r.check for r in ALL_RULES if r.check is not None}
    orphans = sorted(set(registry) - claimed)
    assert not orphans, f"registered checks no rule uses (add 'check: ID' to a rule): {orphans}"


def test_rule_names_are_unique() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for rule in ALL_RULES:
        if rule.name in seen:
            clashes.append(f"{seen[rule.name]} and {rule.id} are both named {rule.name!r}")
        seen.setdefault(rule.name, rule.id)
    assert not clashes, clashes


def placeholders(template: str) -> set[str]:
    """Root names of ``{name}``/``{name.attr}``/``{name[0]}`` fields in a format template."""
    names = set()
    try:
        for _, field_name, _, _ in string.Formatter().parse(template):
            if field_name:
                names.add(re.split(r"[.\[]", field_name, maxsplit=1)[0])
    except ValueError:
        names.add("<malformed template>")
    return names


@dataclass(frozen=True)
class RecordingRuleSet(RuleSet):
    """A rule set that remembers every fact it evaluated (to lint templates against them)."""

    seen: list[Fact] = field(default_factory=list)

    def evaluate(self, fmt: str, artifact: Artifact, output: ParseOutput,
                 options: Mapping[str, Any] | None = None) -> list[Finding]:
        self.seen.extend(output.facts)
        return super().evaluate(fmt, artifact, output, options)


TEMPLATED = [r for r in ALL_RULES if r.match is not None and r.check is None]


@pytest.mark.parametrize("rule", TEMPLATED, ids=[r.id for r in TEMPLATED])
def test_message_placeholders_are_filled_by_matched_facts(rule: Rule, make_fixture: Any) -> None:
    """Best effort: on the rule's 'fires' cases, every fact the rule matches must provide each
    ``{placeholder}`` of its message and subject (else the user reads '?')."""
    assert rule.match is not None
    facts: list[Fact] = []
    # 'fact:<kind>' cases feed a synthetic fact whose attributes say nothing about what the real
    # emitter provides, so only fixtures count here.
    for case in rule.cases.fires:
        fixture = make_fixture.fixtures.get(case)
        if fixture is None or not fixture.available():
            continue
        path: Path = make_fixture(case)
        recorder = RecordingRuleSet(RULESET.rules, RULESET.lists, RULESET.checks)
        scan([path], Config(**fixture.config), rules=recorder, root=path.parent)
        facts.extend(recorder.seen)
    wanted = placeholders(rule.message) | placeholders(rule.subject)
    problems = set()
    matched = 0
    for fact in facts:
        captures: dict[str, Any] = {}
        if not matches(fact, rule.match, RULESET.lists, captures):
            continue
        matched += 1
        known = set(fact.attrs) | set(captures)
        problems |= {f"{{{name}}} (fact {fact.kind} has {sorted(known)})"
                     for name in wanted - known}
    if matched == 0:
        pytest.skip(f"{rule.id}: no fires case could be scanned here")
    assert not problems, f"{rule.source}: placeholders the matched facts cannot fill: " \
                         f"{sorted(problems)}"


def _scan_format_choices() -> set[str]:
    scan_command = main.commands["scan"]
    for param in scan_command.params:
        if "--format" in getattr(param, "opts", ()):
            return set(getattr(param.type, "choices", ()))
    raise AssertionError("'ckptguard scan' has no --format option")


def test_every_renderer_is_a_cli_format_choice() -> None:
    assert set(RENDERERS) <= _scan_format_choices()
    for name in RENDERERS:
        assert callable(renderer(name))


@pytest.mark.parametrize("name", RENDERERS)
def test_every_format_renders_a_real_scan(name: str, make_fixture: Any,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_fixture("sevenzip_wrapped")
    monkeypatch.chdir(path.parent)
    outcome = CliRunner().invoke(main, ["scan", path.name, "--format", name, "--no-progress"])
    assert outcome.exit_code == 1, outcome.output
    assert "FMT004" in outcome.stdout
    direct = renderer(name)(scan([path.name], Config(), rules=RULESET))
    assert "FMT004" in direct


def test_render_report_offers_each_renderer_only_its_options() -> None:
    from ckptguard.model import ScanResult
    from ckptguard.report import options_for, render_report

    assert {"colour", "rules"} <= options_for("text")
    assert {"rules", "category", "root"} <= options_for("sarif")
    empty = ScanResult(findings=(), artifacts=())
    for name in RENDERERS:
        text = render_report(name, empty, colour=True, rules=RULESET.rules, category="ckpt",
                             root="/srv/repo", unknown_option=1)
        assert text.strip()
    assert "ckpt/" in render_report("sarif", empty, category="ckpt")
