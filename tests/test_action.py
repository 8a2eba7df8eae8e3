"""The composite GitHub Action (action.yml): its inputs, that no input is pasted into shell code,
and its script run locally against fixtures, as the runner would run it (without the install
step, which needs the network: ``CKPTGUARD_BIN`` points the script at this checkout)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
SCRIPT = ROOT / "action" / "ckptguard-action.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="the action runs in bash")


def test_action_is_composite_with_the_documented_inputs() -> None:
    assert ACTION["runs"]["using"] == "composite"
    assert {"paths", "fail-on", "config", "sarif-output", "category", "baseline",
            "ckptguard-version"} <= set(ACTION["inputs"])
    assert {"sarif-file", "exit-code"} <= set(ACTION["outputs"])
    for step in ACTION["runs"]["steps"]:
        assert step["shell"] == "bash"
        # Inputs reach the script through env only: never ${{ ... }} inside shell code.
        assert "${{" not in step["run"], step["name"]
    documented = (ROOT / "docs" / "ci.md").read_text(encoding="utf-8")
    for name in ("paths", "fail-on", "sarif-output", "category", "security-events: write",
                 "actions: read", "upload-sarif@v4"):
        assert name in documented


def _run(tmp_path: Path, paths: str, **env: str) -> tuple[subprocess.CompletedProcess[str],
                                                          dict[str, str]]:
    output = tmp_path / "github_output"
    output.write_text("")
    # This checkout's ckptguard as one executable path (the runner's would be in its venv);
    # both paths may hold spaces, as CI's unusual folder names do.
    binary = tmp_path / "ckptguard"
    binary.write_text(f"#!/bin/sh\nexec {shlex.quote(sys.executable)} -m ckptguard.cli \"$@\"\n")
    binary.chmod(0o755)
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "CKPTGUARD_BIN": str(binary),
                   "CKPTGUARD_PATHS": paths, "GITHUB_OUTPUT": str(output), **env}
    done = subprocess.run(["bash", str(SCRIPT), "scan"], cwd=tmp_path, env=environment,
                          capture_output=True, text=True, timeout=300, check=False)
    values = dict(line.split("=", 1) for line in output.read_text().splitlines() if "=" in line)
    return done, values


def _sarif(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_hostile_fixture_fails_the_step_and_writes_sarif(tmp_path: Path, make_fixture: Any) -> None:
    hostile = make_fixture("pkl_os_system")
    target = tmp_path / "models"
    target.mkdir()
    shutil.copy(hostile, target / "model.pkl")
    done, outputs = _run(tmp_path, "models\n", CKPTGUARD_CATEGORY="models")
    assert done.returncode == 1, done.stderr
    assert outputs == {"sarif-file": "ckptguard.sarif", "exit-code": "1"}
    assert "PKL001" in done.stdout and "::error title=ckptguard::" in done.stdout
    log = _sarif(tmp_path / "ckptguard.sarif")
    run = log["runs"][0]
    assert run["automationDetails"]["id"] == "models/"
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in run["results"]}
    assert uris == {"models/model.pkl"}


def test_clean_scan_passes_and_inputs_are_not_shell_code(tmp_path: Path,
                                                         make_fixture: Any) -> None:
    clean = make_fixture("pickle_plain_data")
    shutil.copy(clean, tmp_path / "data.pkl")
    odd = tmp_path / "$(id>pwned);`id>pwned`"
    odd.mkdir()
    (tmp_path / "out").mkdir()
    done, outputs = _run(tmp_path, "data.pkl  $(id>pwned);`id>pwned`", CKPTGUARD_FAIL_ON="critical",
                         CKPTGUARD_SARIF="out/report.sarif")
    assert not (tmp_path / "pwned").exists()
    assert done.returncode == 0, done.stderr
    assert outputs == {"sarif-file": "out/report.sarif", "exit-code": "0"}
    assert done.stdout.splitlines()[-1].startswith("PASS")
    assert _sarif(tmp_path / "out" / "report.sarif")["runs"][0]["results"] == []


def test_configuration_error_is_exit_2_with_an_annotation(tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text('fail-on = "severe"\n')
    (tmp_path / "x.txt").write_text("hello\n")
    done, outputs = _run(tmp_path, "x.txt", CKPTGUARD_CONFIG="bad.toml")
    assert done.returncode == 2 and outputs["exit-code"] == "2"
    assert "unknown severity 'severe'" in done.stderr
    assert "::error title=ckptguard::ckptguard could not complete the scan" in done.stdout


def test_paths_from_a_pull_request_are_paths_never_options(tmp_path: Path,
                                                           make_fixture: Any) -> None:
    """A workflow may pass the pull request's changed files as ``paths``: one named
    ``--exclude=*.pkl`` is scanned like any other file, and the payload beside it still fails."""
    shutil.copy(make_fixture("pkl_os_system"), tmp_path / "model.pkl")
    shutil.copy(make_fixture("pickle_plain_data"), tmp_path / "--exclude=*.pkl")
    done, outputs = _run(tmp_path, "--exclude=*.pkl model.pkl")
    assert done.returncode == 1, done.stderr
    assert outputs["exit-code"] == "1" and "PKL001" in done.stdout
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in _sarif(tmp_path / "ckptguard.sarif")["runs"][0]["results"]}
    assert "model.pkl" in uris
