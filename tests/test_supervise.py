"""A per-file wall-clock budget enforced in a worker that can be stopped; a worker that dies
(SIGBUS from a file truncated under a memory map, the OOM killer) costs one file, not the scan."""

from __future__ import annotations

import faulthandler
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ckptguard import Config, scan
from ckptguard.facts import Artifact
from ckptguard.scanner import ArtifactOutcome, Scanner
from ckptguard.source import SNAPSHOT_BYTES, FileSource
from ckptguard.supervise import can_supervise

pytestmark = pytest.mark.skipif(not can_supervise(), reason="needs the fork start method")
PLAIN = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s."  # {"a": 1}


@pytest.fixture()
def files(tmp_path: Path) -> list[Path]:
    made = []
    for name in ("a.pkl", "hang.pkl", "b.pkl", "bus.pkl", "c.pkl"):
        path = tmp_path / name
        path.write_bytes(PLAIN)
        made.append(path)
    return made


@pytest.fixture()
def hostile_scanner(monkeypatch: pytest.MonkeyPatch) -> None:
    """The forked workers inherit this: ``hang.pkl`` never finishes, ``bus.pkl`` dies of SIGBUS."""
    original = Scanner.scan

    def scan_one(self: Scanner, root: Artifact) -> Iterator[ArtifactOutcome]:
        if root.name.endswith("hang.pkl"):
            while True:
                time.sleep(1)
        if root.name.endswith("bus.pkl"):
            faulthandler.disable()  # pytest's handler would print this worker's stack
            os.kill(os.getpid(), signal.SIGBUS)
        return original(self, root)

    monkeypatch.setattr(Scanner, "scan", scan_one)


@pytest.mark.parametrize("jobs", [1, 2])
def test_budget_and_death_are_findings_and_the_scan_goes_on(
        files: list[Path], tmp_path: Path, hostile_scanner: None, jobs: int) -> None:
    result = scan(files, Config(artifact_timeout=1.0), root=tmp_path, jobs=jobs)
    lost = {f.location.path: f for f in result.findings if f.rule_id == "SCN003"}
    assert set(lost) == {"hang.pkl", "bus.pkl"}
    assert "time limit" in lost["hang.pkl"].message
    assert "SIGBUS" in lost["bus.pkl"].message
    scanned = {a.name: a.format for a in result.artifacts}
    assert scanned == {"a.pkl": "pickle", "hang.pkl": "not-scanned", "b.pkl": "pickle",
                       "bus.pkl": "not-scanned", "c.pkl": "pickle"}
    assert result.failed


def test_supervised_scan_equals_in_process_scan(make_fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    paths = [make_fixture(name) for name in ("plain_zip_clean", "zip_too_deep",
                                             "memo_bomb_pickle", "link_out_of_tree")]
    plain = scan(paths, Config(), root=tmp_path.parent)
    assert plain.findings
    for jobs in (1, 2):
        assert scan(paths, Config(artifact_timeout=60.0), root=tmp_path.parent,
                    jobs=jobs) == plain


def test_a_small_file_truncated_after_its_view_is_taken_does_not_crash(tmp_path: Path) -> None:
    path = tmp_path / "shrinks.bin"
    path.write_bytes(b"x" * 100_000)
    view = FileSource(str(path)).view()
    path.write_bytes(b"")  # truncated while "being scanned"
    assert bytes(view[-4:]) == b"xxxx"


def test_a_large_mapped_file_truncated_under_the_map_only_loses_that_file(tmp_path: Path) -> None:
    """Above SNAPSHOT_BYTES files are mapped; the worker that touches a vanished page dies of
    SIGBUS and the scan reports that file.  Run in a subprocess so nothing here can crash."""
    big = tmp_path / "big.pkl"
    with big.open("wb") as handle:
        handle.write(PLAIN)
        handle.truncate(SNAPSHOT_BYTES + 4096)  # sparse: costs no disk
    other = tmp_path / "other.pkl"
    other.write_bytes(PLAIN)
    script = textwrap.dedent('''
        import os, sys
        from pathlib import Path
        from ckptguard import Config, scan
        from ckptguard.scanner import Scanner
        original = Scanner.scan
        def scan_one(self, root):
            if root.name.endswith("big.pkl"):
                view = root.source.view()
                os.truncate(root.source.path, 0)
                view[len(view) - 1]  # touches a page that no longer exists: SIGBUS
            return original(self, root)
        Scanner.scan = scan_one
        big, other = sys.argv[1], sys.argv[2]
        result = scan([big, other], Config(artifact_timeout=60.0), root=Path(big).parent)
        for item in result.findings:
            print(item.rule_id, item.location.path, item.message)
        print("formats", sorted(a.format for a in result.artifacts))
    ''')
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    run = subprocess.run([sys.executable, "-c", script, str(big), str(other)], env=env,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert "SCN003 big.pkl" in run.stdout and "SIGBUS" in run.stdout
    assert "formats ['not-scanned', 'pickle']" in run.stdout
