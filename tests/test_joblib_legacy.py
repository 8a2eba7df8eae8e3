"""joblib < 0.10 side files, judged the way joblib.load reads them: the real loader opens the
file the wrapper names beside the pickle (proved here in a subprocess), so ckptguard scans that
file as a child of the pickle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from tests.conftest import FixtureFactory

LOAD = ("import sys, joblib\n"
        "try:\n    print(repr(joblib.load(sys.argv[1]).tolist()))\n"
        "except Exception as exc:\n    print('error', type(exc).__name__)\n")


def _joblib_load(path: Path) -> str:
    pytest.importorskip("joblib")
    done = subprocess.run([sys.executable, "-c", LOAD, str(path)], cwd=path.parent, check=True,
                          capture_output=True, text=True, timeout=120)
    return done.stdout.strip()


def test_the_real_loader_reads_the_side_file(make_fixture: FixtureFactory) -> None:
    path = make_fixture("joblib_old_side_file_benign")
    assert _joblib_load(path) == "[0.25, 0.5, 0.75]"
    result = ckptguard.scan([path])
    assert result.findings == () and not result.failed


def test_a_payload_in_the_side_file_runs_under_joblib_and_blocks(
        make_fixture: FixtureFactory, canary: Path) -> None:
    path = make_fixture("joblib_old_side_file_payload")
    result = ckptguard.scan([path])
    assert result.failed
    (critical,) = [f for f in result.findings if f.rule_id == "PKL001"]
    assert critical.location.chain[1:] == ("<side file model.pkl_01.npy>", "object-array.pkl")
    assert not canary.exists()
    _joblib_load(path)
    assert canary.exists(), "the side file's pickle should run under joblib.load"
    canary.unlink()


def test_side_files_outside_the_folder_or_missing(make_fixture: FixtureFactory) -> None:
    outside = ckptguard.scan([make_fixture("joblib_old_side_file_outside")])
    assert outside.failed and {f.rule_id for f in outside.findings} == {"PKL012"}
    missing = ckptguard.scan([make_fixture("joblib_old_side_file_missing")])
    assert {f.rule_id for f in missing.findings} == {"PKL013"} and not missing.failed
