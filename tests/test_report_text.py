"""The text report: grouped per file, precise about where, compact evidence, one hint per rule,
a one-line verdict, colour only when asked, and safe against hostile names."""

from __future__ import annotations

from typing import Any

import pytest
from click.testing import CliRunner

from ckptguard.cli import main
from ckptguard.engine.ruleset import RuleSet
from ckptguard.model import (
    ArtifactSummary,
    Category,
    Confidence,
    Location,
    ScanResult,
    Severity,
    finding,
)
from ckptguard.report.text_report import (
    MAX_EVIDENCE_ITEMS,
    MAX_MESSAGE_CHARS,
    MAX_VALUE_CHARS,
    compact,
    render,
    summary_line,
)


def make(rule_id: str, severity: Severity, location: Location, message: str = "",
         **evidence: str) -> Any:
    return finding(rule_id=rule_id, severity=severity, confidence=Confidence.HIGH,
                   category=Category.PAYLOAD, message=message or f"{rule_id} saw something",
                   location=location, evidence=evidence)


def result_of(*findings: Any, suppressed: tuple[Any, ...] = (), scanned: int = 3,
              fail_on: Severity = Severity.HIGH) -> ScanResult:
    artifacts = tuple(ArtifactSummary((f"f{i}",), "pickle", 1) for i in range(scanned))
    return ScanResult(findings=tuple(findings), artifacts=artifacts, fail_on=fail_on,
                      suppressed=suppressed)


def test_grouped_per_file_with_where_and_evidence() -> None:
    text = render(result_of(
        make("PKL001", Severity.CRITICAL, Location(("m.zip", "archive/data.pkl"), offset=57),
             "Calls os.system when loaded", call="os.system('touch /tmp/canary')"),
        make("FMT001", Severity.HIGH, Location(("m.zip",))),
        make("WGT001", Severity.MEDIUM, Location(("w.safetensors",), tensor="lm_head.weight")),
    ))
    lines = text.splitlines()
    assert lines[0] == "m.zip"
    assert lines[1].split() == ["CRITICAL", "PKL001", "Calls", "os.system", "when", "loaded"]
    assert lines[2].strip() == "at archive/data.pkl, byte 57"
    assert lines[3].strip() == "call: os.system('touch /tmp/canary')"
    assert lines[4].split()[:2] == ["HIGH", "FMT001"]
    assert "w.safetensors" in lines
    assert "at tensor 'lm_head.weight'" in text
    assert text.count("→ ckptguard rules show PKL001") == 1
    assert "→ ckptguard rules show WGT001" in text


def test_summary_line_counts_and_gate() -> None:
    failing = result_of(make("AAA001", Severity.HIGH, Location(("x",))),
                        make("BBB002", Severity.LOW, Location(("y",))),
                        suppressed=(make("CCC003", Severity.CRITICAL, Location(("z",))),))
    line = summary_line(failing)
    assert line.startswith("FAIL")
    assert "2 findings in 2 artifacts (3 scanned): 1 high, 1 low" in line
    assert "1 suppressed" in line
    assert "gate: high and above, 1 at or above" in line
    clean = summary_line(result_of(scanned=1))
    assert clean == "PASS  no findings in 1 artifact  (gate: high and above)"
    below = summary_line(result_of(make("BBB002", Severity.MEDIUM, Location(("y",)))))
    assert below.startswith("PASS") and "0 at or above" in below


def test_colour_only_when_asked() -> None:
    result = result_of(make("FMT001", Severity.HIGH, Location(("m.bin",))))
    assert "\033[" not in render(result)
    coloured = render(result, colour=True)
    assert "\033[31mHIGH" in coloured and "\033[0m" in coloured


def test_long_and_many_evidence_items_are_cut() -> None:
    many = {f"k{i}": f"value {i}" for i in range(MAX_EVIDENCE_ITEMS + 4)}
    long_value = "x" * (MAX_VALUE_CHARS * 3)
    text = render(result_of(make("FMT001", Severity.HIGH, Location(("m",)), big=long_value,
                                 **many)))
    evidence_lines = [line for line in text.splitlines() if line.startswith(" " * 10)]
    assert len(evidence_lines) == MAX_EVIDENCE_ITEMS
    assert f"({len(long_value)} characters)" in text
    assert "more evidence item(s) in --format json" in text
    assert max(len(line) for line in text.splitlines()) < MAX_VALUE_CHARS + 60
    assert compact("a\n  b") == "a b"


def test_evidence_the_message_or_location_already_says_is_not_repeated() -> None:
    text = render(result_of(make("FMT002", Severity.MEDIUM, Location(("m.pt",), offset=12),
                                 "Named as pytorch but the content is unknown",
                                 expected="pytorch", actual="unknown", size="4096",
                                 offset="12", owner="None")))
    assert "expected:" not in text and "actual:" not in text
    assert "offset:" not in text and "owner:" not in text
    assert "size: 4096" in text


def test_long_messages_are_cut() -> None:
    message = "template " + "{{ x }}" * 200
    text = render(result_of(make("TPL001", Severity.HIGH, Location(("m.gguf",)), message)))
    first = text.splitlines()[1]
    assert len(first) < MAX_MESSAGE_CHARS + 40
    assert f"({len(message)} characters)" in first


@pytest.mark.parametrize("hostile", ["\x1b]0;owned\x07", "\x1b[2J", "bad\udc80name", "a\rb"])
def test_hostile_names_cannot_drive_the_terminal(hostile: str) -> None:
    text = render(result_of(make("FMT001", Severity.HIGH, Location((f"m{hostile}.pkl",),
                                                                    key=hostile),
                                 f"global {hostile}", note=hostile)))
    assert "\x1b" not in text and "\r" not in text and "\x07" not in text
    text.encode("utf-8")


def test_rule_names_in_hints_when_a_table_is_given() -> None:
    rules = RuleSet.load().rules
    text = render(result_of(make("FMT003", Severity.HIGH, Location(("m",)))), rules=rules)
    assert f"FMT003  {rules['FMT003'].name}  → ckptguard rules show FMT003" in text


def test_cli_text_report(make_fixture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_fixture("sevenzip_wrapped")
    monkeypatch.chdir(path.parent)
    outcome = CliRunner().invoke(main, ["scan", path.name, "--no-progress"])
    assert outcome.exit_code == 1, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0] == "model.7z"
    assert lines[1].split()[:2] == ["HIGH", "FMT004"]
    assert "→ ckptguard rules show FMT004" in outcome.stdout
    assert lines[-1].startswith("FAIL  1 finding in 1 artifact")
    assert "\033[" not in outcome.stdout


def test_one_group_per_file_whatever_the_order() -> None:
    text = render(result_of(make("FMT001", Severity.HIGH, Location(("a.zip",))),
                            make("FMT002", Severity.HIGH, Location(("a.zip x",))),
                            make("FMT003", Severity.HIGH, Location(("a.zip", "m.pkl")))))
    headers = [line for line in text.splitlines() if line and not line.startswith(" ")
               and "→" not in line and not line.startswith(("FAIL", "PASS"))]
    assert headers == ["a.zip", "a.zip x"]


def test_low_confidence_is_said() -> None:
    doubtful = finding(rule_id="FMT005", severity=Severity.MEDIUM, confidence=Confidence.LOW,
                       category=Category.SCANNER, message="unrecognised content",
                       location=Location(("m.pt",)))
    sure = make("FMT001", Severity.HIGH, Location(("n.pt",)))
    text = render(result_of(doubtful, sure))
    assert "unrecognised content  (low confidence)" in text
    assert text.count("(low confidence)") == 1
