"""Baselines: a versioned, deterministic file; identity that survives re-saves and renames but
does not hide the same finding in another file; clear errors for unusable baseline files."""

from __future__ import annotations

import importlib.util
import json
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptguard import Config, scan
from ckptguard.baseline import (
    BASELINE_VERSION,
    BaselineError,
    create_baseline,
    load_baseline,
    parse_baseline,
    sha256_file,
)
from ckptguard.cli import main
from ckptguard.report import renderer
from fixtures.workflow import sevenzip, system_pickle, system_pickle_resaved

needs_pickle_parser = pytest.mark.skipif(
    importlib.util.find_spec("ckptguard.formats.pickle") is None
    or importlib.util.find_spec("ckptguard.formats.pickle.parser") is None,
    reason="the pickle parser (ckptguard.formats.pickle.parser) is not present in this checkout")


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()  # keeps configuration discovery inside the project
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.7z").write_bytes(sevenzip())
    (tmp_path / "models" / "notes.txt").write_text("plain text\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _create(paths: list[str], output: str = "base.json") -> dict[str, object]:
    result = CliRunner().invoke(main, ["baseline", "create", *paths, "--output", output])
    assert result.exit_code == 0, result.output
    document: dict[str, object] = json.loads(Path(output).read_text())
    return document


def _scan(args: list[str]) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(main, ["scan", *args, "--format", "json"])
    return result.exit_code, json.loads(result.stdout)


def test_baseline_file_is_versioned_sorted_and_deterministic(project: Path) -> None:
    (project / "models" / "b.7z").write_bytes(sevenzip(3))
    first = _create(["models"], "one.json")
    second = _create(["models"], "two.json")
    assert first["version"] == BASELINE_VERSION
    assert first["tool"] == "ckptguard" and first["tool_version"]
    assert isinstance(first["created"], str) and first["created"]
    entries = first["entries"]
    assert isinstance(entries, list) and len(entries) == 2
    assert [e["artifact"] for e in entries] == ["models/b.7z", "models/model.7z"]
    assert set(entries[0]) == {"fingerprint", "rule_id", "artifact", "message", "sha256"}
    first.pop("created")
    second.pop("created")
    assert first == second
    stamp = datetime(2024, 1, 2, tzinfo=timezone.utc)
    result = scan(["models"])
    assert create_baseline(result.findings, sha256_file, now=stamp).to_json() == \
        create_baseline(result.findings, sha256_file, now=stamp).to_json()


def test_baselined_findings_are_suppressed_not_failed(project: Path) -> None:
    _create(["models"])
    code, report = _scan(["models"])
    assert code == 1 and report["summary"]["findings"] >= 1  # type: ignore[index]
    code, report = _scan(["models", "--baseline", "base.json"])
    assert code == 0, report
    assert report["findings"] == []
    assert report["summary"]["suppressed"] >= 1  # type: ignore[index]


def test_renamed_file_with_identical_content_stays_baselined(project: Path) -> None:
    _create(["models"])
    (project / "moved").mkdir()
    shutil.move("models/model.7z", "moved/renamed.7z")
    code, report = _scan(["moved", "--baseline", "base.json"])
    assert code == 0 and report["findings"] == []


def test_resaved_file_at_the_same_path_stays_baselined(project: Path) -> None:
    _create(["models"])
    (project / "models" / "model.7z").write_bytes(sevenzip(padding=40))
    code, report = _scan(["models", "--baseline", "base.json"])
    assert code == 0 and report["findings"] == []


def test_same_finding_in_another_file_is_new(project: Path) -> None:
    _create(["models"])
    (project / "models" / "other.7z").write_bytes(sevenzip(padding=7))
    code, report = _scan(["models", "--baseline", "base.json"])
    assert code == 1
    assert {f["location"]["path"] for f in report["findings"]} == {  # type: ignore[attr-defined]
        "models/other.7z"}


@needs_pickle_parser
def test_hostile_pickle_resaved_and_renamed(project: Path, canary: Path) -> None:
    target = project / "models" / "model.pkl"
    target.write_bytes(system_pickle(canary))
    before = scan(["models/model.pkl"])
    assert before.failed
    baseline = create_baseline(before.findings, sha256_file)
    target.write_bytes(system_pickle_resaved(canary))
    after = scan(["models/model.pkl"])
    offsets_before = {f.location.offset for f in before.findings}
    offsets_after = {f.location.offset for f in after.findings}
    assert offsets_before != offsets_after or offsets_before == {None}
    assert {f.fingerprint for f in after.findings} <= baseline.fingerprints
    assert not scan(["models/model.pkl"], baseline=baseline).failed
    target.write_bytes(system_pickle(canary))
    shutil.move(target, project / "renamed.bin")
    assert not scan(["renamed.bin"], baseline=baseline).failed
    assert not canary.exists()


def test_api_and_cli_agree_with_a_baseline(project: Path) -> None:
    _create(["models/model.7z"])
    (project / "models" / "other.7z").write_bytes(sevenzip(padding=9))
    cli = CliRunner().invoke(main, ["scan", "models", "--baseline", "base.json",
                                    "--format", "json"])
    api = scan(["models"], Config(baseline="base.json"))
    assert cli.exit_code == (1 if api.failed else 0)
    assert cli.stdout == renderer("json")(api)
    assert len(api.suppressed) == 1 and len(api.findings) == 1


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not a valid baseline file"),
    ('{"version": 1}', "no 'entries' list"),
    ('{"version": 99, "entries": []}', "written by a newer ckptguard"),
    ('{"version": "1", "entries": []}', "no integer 'version'"),
    ('{"version": 1, "entries": [{"rule_id": "FMT004"}]}', "entry 0 has no valid 'fingerprint'"),
])
def test_unusable_baseline_is_a_clear_error(project: Path, content: str, message: str) -> None:
    Path("bad.json").write_text(content)
    with pytest.raises(BaselineError, match=message):
        load_baseline("bad.json")
    result = CliRunner().invoke(main, ["scan", "models", "--baseline", "bad.json"])
    assert result.exit_code == 2
    assert message in result.stderr and "bad.json" in result.stderr


def test_missing_baseline_is_a_clear_error(project: Path) -> None:
    result = CliRunner().invoke(main, ["scan", "models", "--baseline", "absent.json"])
    assert result.exit_code == 2
    assert "baseline file not found" in result.stderr


def test_round_trip(project: Path) -> None:
    made = create_baseline(scan(["models"]).findings, sha256_file)
    assert parse_baseline(made.to_json(), "memory") == made


def test_byte_identical_copy_stays_baselined_as_the_docs_say(project: Path) -> None:
    _create(["models"])
    shutil.copy(project / "models" / "model.7z", project / "models" / "copy.7z")
    code, report = _scan(["models", "--baseline", "base.json"])
    assert code == 0 and report["findings"] == []
    assert len(report["suppressed"]) == 2  # type: ignore[arg-type]
    for doc in (Path(__file__).resolve().parent.parent / "README.md",
                Path(__file__).resolve().parent.parent / "docs" / "configuration.md"):
        assert "byte-identical" in " ".join(doc.read_text(encoding="utf-8").split()), doc


def test_baseline_create_warns_when_it_records_critical_findings(project: Path,
                                                                  canary: Path) -> None:
    (project / "models" / "model.pkl").write_bytes(system_pickle(canary))
    result = CliRunner().invoke(main, ["baseline", "create", "models", "--output", "b.json"])
    assert result.exit_code == 0, result.output
    assert "warning: the baseline records 1 critical finding(s)" in result.stderr
    assert "PKL001  models/model.pkl" in result.stderr
    quiet = CliRunner().invoke(main, ["baseline", "create", "models/model.7z", "--output",
                                      "c.json"])
    assert "warning" not in quiet.stderr
    assert not canary.exists()
