"""The text report: grouped per file, precise about where, compact evidence, one hint per rule,
a one-line verdict, colour only when asked, and safe against hostile names."""

from __future__ import annotations

from dataclasses import replace
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
    assert lines[2].split(None, 1) == ["where", "m.zip › archive/data.pkl › byte 57"]
    assert lines[3].strip() == "call: os.system('touch /tmp/canary')"
    assert lines[4].split()[:2] == ["HIGH", "FMT001"]
    assert "w.safetensors" in lines
    assert "w.safetensors › tensor 'lm_head.weight'" in text
    assert text.count("→ ckptguard rules show PKL001") == 1
    assert "→ ckptguard rules show WGT001" in text


def test_code_is_shown_as_code_and_internal_keys_get_labels() -> None:
    decompiled = "from os import system\n_var0 = system('x')\nresult = _var0"
    text = render(result_of(make(
        "PKL001", Severity.CRITICAL, Location(("m.pkl",), offset=0),
        "Pickle reaches os.system (process), called at load time: os.system('x')",
        decompiled=decompiled, raw="os system", qualname_why="runs a shell command",
        resolved_via="operator.methodcaller", trailing_offset="-1", owner="None")))
    lines = text.splitlines()
    code = [line.split("│ ", 1)[1] for line in lines if "│ " in line]
    assert code == decompiled.splitlines()
    assert any(line.split(None, 1) == ["why", "runs a shell command"] for line in lines)
    assert "reached through: operator.methodcaller" in text
    for leaked in ("raw:", "qualname_why", "resolved_via", "trailing_offset", "-1", "None"):
        assert leaked not in text, leaked


def test_code_at_the_end_of_the_message_is_not_said_twice() -> None:
    text = render(result_of(make("TPL003", Severity.CRITICAL, Location(("t.jinja",), line=1),
                                 "Template names 'os': {{ os.system('x') }}",
                                 snippet="{{ os.system('x') }}")))
    assert text.count("os.system('x')") == 1
    assert "Template names 'os'" in text


def test_identical_findings_are_one_entry_that_says_how_many() -> None:
    place = Location(("m.gguf",), key="tokenizer.chat_template", line=1)
    text = render(result_of(make("TPL001", Severity.CRITICAL, place, "reaches internals",
                                 name="__init__"),
                            make("TPL001", Severity.CRITICAL, place, "reaches internals",
                                 name="__globals__")))
    assert text.count("TPL001  reaches internals") == 1
    assert "(2 findings)" in text
    assert "name: __init__, __globals__" in text
    assert "2 findings in 1 of 4 files" in text


def test_summary_line_counts_and_gate() -> None:
    failing = result_of(make("AAA001", Severity.HIGH, Location(("x",))),
                        make("BBB002", Severity.LOW, Location(("y",))),
                        suppressed=(make("CCC003", Severity.CRITICAL, Location(("z",))),))
    line = summary_line(failing)
    assert line.startswith("FAIL")
    # x and y have findings but are not among the scanned artifacts f0..f2: counted with them.
    assert "2 findings in 2 of 5 files: 1 high, 1 low" in line
    assert "1 suppressed" in line
    assert "gate: high and above, 1 at or above" in line
    clean = summary_line(result_of(scanned=1))
    assert clean == "PASS  no findings in 1 file  (gate: high and above)"
    below = summary_line(result_of(make("BBB002", Severity.MEDIUM, Location(("y",)))))
    assert below.startswith("PASS") and "0 at or above" in below
    nothing = summary_line(replace(result_of(scanned=0), judged_nothing=True))
    assert nothing == "NOTHING JUDGED  no findings in 0 files  (gate: high and above)"


def test_members_of_one_file_count_as_that_file() -> None:
    result = ScanResult(
        findings=(make("PKL001", Severity.CRITICAL, Location(("a.zip", "x.pkl"))),),
        artifacts=(ArtifactSummary(("a.zip",), "zip", 1), ArtifactSummary(("a.zip", "x.pkl"),
                                                                           "pickle", 1),
                   ArtifactSummary(("b.pt",), "zip", 1)))
    assert "1 finding in 1 of 2 files" in summary_line(result)


def test_quiet_shows_what_fails_and_counts_everything() -> None:
    result = result_of(make("AAA001", Severity.HIGH, Location(("x",)), "blocking one"),
                       make("BBB002", Severity.MEDIUM, Location(("y",)), "medium one"))
    text = render(result, quiet=True)
    assert "blocking one" in text and "medium one" not in text
    assert text.splitlines()[-1].startswith("FAIL  2 findings")
    assert "1 below the gate not shown" in text
    only_medium = render(result_of(make("BBB002", Severity.MEDIUM, Location(("y",)))),
                         quiet=True)
    assert only_medium.splitlines()[-1].startswith("PASS  1 finding in 1 of 4 files: 1 medium")
    assert "1 below the gate not shown" in only_medium


def test_colour_only_when_asked() -> None:
    result = result_of(make("FMT001", Severity.HIGH, Location(("m.bin",))))
    assert "\033[" not in render(result)
    coloured = render(result, colour=True)
    assert "\033[31mHIGH" in coloured and "\033[0m" in coloured


def test_long_and_many_evidence_items_are_cut() -> None:
    many = {f"k{i}": f"value {i}" for i in range(MAX_EVIDENCE_ITEMS + 4)}
    long_value = "x" * (MAX_VALUE_CHARS * 3) + "THE-END"
    text = render(result_of(make("FMT001", Severity.HIGH, Location(("m",)), big=long_value,
                                 **many)))
    evidence_lines = [line for line in text.splitlines() if ": " in line
                      and line.startswith(" " * 12)]
    assert len(evidence_lines) == MAX_EVIDENCE_ITEMS
    # Shortened in the middle: the end of the value survives, and the cut is counted.
    assert "THE-END" in text and " more] … " in text
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


def test_long_messages_are_cut_in_the_middle_and_advice_never() -> None:
    message = "template " + "{{ x }}" * 200 + " do not use it"
    rules = RuleSet.load().rules
    text = render(result_of(make("TPL001", Severity.HIGH, Location(("m.gguf",)), message)),
                  rules=rules)
    first = text.splitlines()[1]
    assert len(first) < MAX_MESSAGE_CHARS + 40
    assert first.endswith("do not use it") and " more] … " in first
    advice = " ".join(" ".join(text.split("What to do", 1)[1].split()).split())
    assert " ".join(rules["TPL001"].remediation.split()) in advice


@pytest.mark.parametrize("hostile", ["\x1b]0;owned\x07", "\x1b[2J", "bad\udc80name", "a\rb",
                                     "txt.\u202efdp.exe", "zero\u200bwidth", "iso\u2066late"])
def test_hostile_names_cannot_drive_the_terminal(hostile: str) -> None:
    text = render(result_of(make("FMT001", Severity.HIGH, Location((f"m{hostile}.pkl",),
                                                                    key=hostile),
                                 f"global {hostile}", note=hostile,
                                 decompiled=f"x = '{hostile}'\ny = 1")))
    for bad in ("\x1b", "\r", "\x07", "\u202e", "\u200b", "\u2066"):
        assert bad not in text
    text.encode("utf-8")
    if "\u202e" in hostile:
        assert "txt.\\u202efdp.exe" in text


def test_rule_names_in_hints_when_a_table_is_given() -> None:
    rules = RuleSet.load().rules
    text = render(result_of(make("FMT003", Severity.HIGH, Location(("m",)))), rules=rules)
    assert f"FMT003  {rules['FMT003'].name}" in text
    assert "→ ckptguard rules show FMT003" in text


def test_cli_text_report(make_fixture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_fixture("sevenzip_wrapped")
    monkeypatch.chdir(path.parent)
    outcome = CliRunner().invoke(main, ["scan", path.name, "--no-progress"])
    assert outcome.exit_code == 1, outcome.output
    lines = outcome.stdout.splitlines()
    assert lines[0] == "model.7z"
    assert lines[1].split()[:2] == ["HIGH", "FMT004"]
    assert "→ ckptguard rules show FMT004" in outcome.stdout
    assert lines[-1].startswith("FAIL  1 finding in 1 of 1 file")
    assert "\033[" not in outcome.stdout


def test_one_group_per_file_whatever_the_order() -> None:
    text = render(result_of(make("FMT001", Severity.HIGH, Location(("a.zip",))),
                            make("FMT002", Severity.HIGH, Location(("a.zip x",))),
                            make("FMT003", Severity.HIGH, Location(("a.zip", "m.pkl")))))
    headers = [line for line in text.splitlines() if line and not line.startswith(" ")
               and line != "What to do" and not line.startswith(("FAIL", "PASS"))]
    assert headers == ["a.zip", "a.zip x"]


def test_low_confidence_is_said() -> None:
    doubtful = finding(rule_id="FMT005", severity=Severity.MEDIUM, confidence=Confidence.LOW,
                       category=Category.SCANNER, message="unrecognised content",
                       location=Location(("m.pt",)))
    sure = make("FMT001", Severity.HIGH, Location(("n.pt",)))
    text = render(result_of(doubtful, sure))
    assert "unrecognised content  (low confidence)" in text
    assert text.count("(low confidence)") == 1


def test_a_long_one_line_template_is_wrapped_so_its_middle_shows() -> None:
    template = "{% for m in messages %}{{ m.content }}{% endfor %}" * 2 + \
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}" + "{{ x }}" * 10
    text = render(result_of(make("TPL001", Severity.CRITICAL, Location(("t.gguf",), line=1),
                                 f"reaches internals: {template}", snippet=template)))
    code = "".join(line.split("│ ", 1)[1] for line in text.splitlines() if "│ " in line)
    assert code == template
