"""The JSON report: versioned, and valid against docs/json-schema.json for real scans."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from ckptguard.api import scan
from ckptguard.cli import main
from ckptguard.config import Config
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
from ckptguard.report import renderer
from ckptguard.report.json_report import SCHEMA_ID, SCHEMA_VERSION, render
from fixtures.registry import all_fixtures

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = json.loads((ROOT / "docs" / "json-schema.json").read_text(encoding="utf-8"))
RULES = RuleSet.load()
FIXTURE_NAMES = sorted(all_fixtures())


def errors(document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in Draft202012Validator(SCHEMA).iter_errors(document)]


def test_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"] == SCHEMA_ID
    assert SCHEMA["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_every_finding_field_is_documented() -> None:
    finding_props = SCHEMA["$defs"]["finding"]["properties"]
    location_props = SCHEMA["$defs"]["location"]["properties"]
    assert set(SCHEMA["$defs"]["finding"]["required"]) >= {
        "rule_id", "severity", "confidence", "category", "message", "location", "evidence",
        "fingerprint"}
    assert set(location_props) == {"artifact", "path", "members", "offset", "tensor", "key",
                                   "line"}
    document = json.loads(render(_synthetic()))
    for item in (*document["findings"], *document["suppressed"]):
        assert set(item) <= set(finding_props)
        assert set(item["location"]) == set(location_props)
    assert set(document) <= set(SCHEMA["properties"])


def _synthetic() -> ScanResult:
    def make(rule_id: str, severity: Severity, location: Location) -> Any:
        return finding(rule_id=rule_id, severity=severity, confidence=Confidence.MEDIUM,
                       category=Category.PAYLOAD, message=f"{rule_id} saw something",
                       location=location, evidence={"call": "os.system('touch x')"})

    return ScanResult(
        findings=(make("FMT001", Severity.HIGH, Location(("a.zip", "data.pkl"), offset=3)),
                  make("ZZZ999", Severity.LOW, Location(("b.safetensors",), tensor="w"))),
        artifacts=(ArtifactSummary(("a.zip",), "zip", 10, "ab" * 32),),
        suppressed=(make("FMT004", Severity.CRITICAL, Location(("c.7z",))),),
        fail_on=Severity.HIGH, tool_version="0.1.0")


def test_synthetic_report_round_trip() -> None:
    document = json.loads(render(_synthetic(), rules=RULES.rules))
    assert errors(document) == []
    assert document["verdict"] == "fail"
    assert document["summary"] == {"artifacts": 1, "findings": 2, "suppressed": 1,
                                   "max_severity": "high", "by_severity": {"high": 1, "low": 1},
                                   "blocking": 1, "judged_nothing": False}
    first = document["findings"][0]
    assert first["location"] == {"artifact": "a.zip!data.pkl", "path": "a.zip",
                                 "members": ["data.pkl"], "offset": 3, "tensor": None,
                                 "key": None, "line": None}
    assert first["evidence"] == {"call": "os.system('touch x')"}
    assert document["suppressed"][0]["rule_id"] == "FMT004"
    # Rules the table knows are described; unknown ones are simply absent from it.
    assert set(document["rules"]) == {"FMT001", "FMT004"}
    assert document["rules"]["FMT001"]["docs"] == "ckptguard rules show FMT001"


def test_hostile_text_stays_valid_json() -> None:
    odd = finding(rule_id="FMT001", severity=Severity.HIGH, confidence=Confidence.HIGH,
                  category=Category.PAYLOAD, message="name \udc80\x1b[31m",
                  location=Location(("x\udcff.pkl",)), evidence={"k": "\x00"})
    text = render(ScanResult(findings=(odd,), artifacts=()))
    document = json.loads(text)
    assert errors(document) == []
    item = document["findings"][0]
    # Lone surrogates (undecodable names) become visible escapes, so any JSON parser accepts them.
    # Control characters (ESC, NUL) are written as visible escapes too: raw ESC never reaches
    # a consumer that prints the JSON's strings.
    assert item["message"] == "name \\udc80\\x1b[31m"
    assert item["location"]["path"] == "x\\udcff.pkl"
    assert item["evidence"] == {"k": "\\x00"}
    json.dumps(document, ensure_ascii=False).encode("utf-8")


@pytest.mark.parametrize("name", FIXTURE_NAMES)
def test_real_scan_matches_schema(name: str, make_fixture: Any) -> None:
    path: Path = make_fixture(name)
    config = Config(**make_fixture.fixtures[name].config)
    result = scan([path], config, rules=RULES, root=path.parent)
    document = json.loads(renderer("json")(result))
    assert errors(document) == []
    assert document["summary"]["findings"] == len(result.findings)


def test_cli_json_output(make_fixture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_fixture("sevenzip_wrapped")
    monkeypatch.chdir(path.parent)
    outcome = CliRunner().invoke(main, ["scan", path.name, "--format", "json"])
    assert outcome.exit_code == 1, outcome.output
    document = json.loads(outcome.stdout)
    assert errors(document) == []
    assert document["verdict"] == "fail"
    assert [f["rule_id"] for f in document["findings"]] == ["FMT004"]
    assert document["findings"][0]["location"]["path"] == "model.7z"


def test_none_is_null_and_artifacts_carry_their_digest(make_fixture: Any) -> None:
    import hashlib

    path: Path = make_fixture("pkl_os_system")
    result = scan([path], Config(), rules=RULES, root=path.parent)
    document = json.loads(renderer("json")(result))
    assert errors(document) == []
    outer = next(a for a in document["artifacts"] if a["chain"] == [path.name])
    assert outer["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    values = [v for f in document["findings"] for v in f["evidence"].values()]
    assert "None" not in values
    odd = finding(rule_id="FMT001", severity=Severity.HIGH, confidence=Confidence.HIGH,
                  category=Category.PAYLOAD, message="m", location=Location(("x",)),
                  evidence={"owner": None, "name": "y"})
    item = json.loads(render(ScanResult(findings=(odd,), artifacts=())))["findings"][0]
    assert item["evidence"] == {"owner": None, "name": "y"}


def test_large_artifacts_get_a_digest_only_when_asked(tmp_path: Path) -> None:
    import hashlib

    from ckptguard.config import DIGEST_AUTO_BYTES

    big = tmp_path / "big.bin"
    with big.open("wb") as handle:
        handle.truncate(DIGEST_AUTO_BYTES + 1)
    by_default = scan([big], Config(), rules=RULES, root=tmp_path)
    assert by_default.artifacts[0].sha256 is None
    asked = scan([big], Config(digests=True), rules=RULES, root=tmp_path)
    assert asked.artifacts[0].sha256 == hashlib.sha256(big.read_bytes()).hexdigest()
