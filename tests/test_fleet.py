"""Fleet scans on a local Dask cluster give the same answer as a single-process scan, survive
failing and hanging tasks, deduplicate identical blobs and resume from a results file."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Artifact
from ckptguard.model import ScanResult
from fixtures.basic_formats import plain_data_pickle, safetensors_bytes
from fixtures.examples import malicious_pickle

distributed = pytest.importorskip("distributed")
fsspec = pytest.importorskip("fsspec")

from ckptguard.fleet import run as fleet_run  # noqa: E402
from ckptguard.fleet.run import fleet_scan  # noqa: E402


def _tree(root: Path, canary: Path, count: int = 240) -> Path:
    """A few hundred files: benign pickles and safetensors, hostile pickles, duplicates."""
    tree = root / "registry"
    for index in range(count):
        folder = tree / f"org{index % 7}" / f"model{index % 23}"
        folder.mkdir(parents=True, exist_ok=True)
        kind = index % 4
        if kind == 0:
            data = plain_data_pickle()
            name = f"weights{index}.pkl"
        elif kind == 1:
            data = safetensors_bytes({"w": ("F32", (1,), bytes([index % 256, 0, 0, 0]))})
            name = f"weights{index}.safetensors"
        elif kind == 2:
            data = malicious_pickle(f"touch {canary}-{index % 5}")
            name = f"payload{index}.bin"
        else:
            data = bytes(range(index % 200, index % 200 + 40))
            name = f"unknown{index}.pt"
        (folder / name).write_bytes(data)
    return tree


def _view(result: ScanResult) -> list[tuple[str, str, str, str]]:
    return [(f.location.artifact, f.rule_id, f.severity.label, f.fingerprint)
            for f in result.findings]


@pytest.fixture(scope="module")
def process_cluster() -> Iterator[Any]:
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address="127.0.0.1:0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.fixture()
def thread_cluster() -> Iterator[Any]:
    cluster = distributed.LocalCluster(n_workers=3, threads_per_worker=1, processes=False,
                                       dashboard_address="127.0.0.1:0")
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_cluster_scan_equals_single_process_scan(tmp_path: Path, canary: Path,
                                                 process_cluster: Any) -> None:
    tree = _tree(tmp_path, canary)
    local = scan([tree], root=tmp_path)
    fleet, summary = fleet_scan([str(tree)], process_cluster, root=tmp_path)
    assert _view(fleet) == _view(local)
    assert sorted(a.name for a in fleet.artifacts) == sorted(a.name for a in local.artifacts)
    assert fleet.failed and local.failed
    assert summary.files == 240 and summary.unique < summary.files  # duplicates folded
    assert summary.failed == 0
    assert not any(canary.parent.glob(canary.name + "*"))


def test_identical_blobs_are_scanned_once_and_reported_everywhere(
        tmp_path: Path, canary: Path, thread_cluster: Any) -> None:
    folder = tmp_path / "dups"
    folder.mkdir()
    for name in ("a.pkl", "b.pkl", "c.pkl"):
        (folder / name).write_bytes(malicious_pickle(f"touch {canary}"))
    result, summary = fleet_scan([str(folder)], thread_cluster, root=tmp_path)
    assert summary.unique == 1 and summary.scanned == 1
    assert {f.location.path for f in result.findings} == {"dups/a.pkl", "dups/b.pkl",
                                                          "dups/c.pkl"}


def test_resume_from_results_file(tmp_path: Path, canary: Path, thread_cluster: Any) -> None:
    tree = _tree(tmp_path, canary, count=40)
    results = tmp_path / "results.jsonl"
    first, s1 = fleet_scan([str(tree)], thread_cluster, results_file=results, root=tmp_path)
    second, s2 = fleet_scan([str(tree)], thread_cluster, results_file=results, root=tmp_path)
    assert s1.scanned == s1.unique and s1.resumed == 0
    assert s2.scanned == 0 and s2.resumed == s1.unique
    assert _view(first) == _view(second)


def test_memory_filesystem_urls(thread_cluster: Any, canary: Path) -> None:
    fs = fsspec.filesystem("memory")
    fs.pipe("/ckptguard-test/models/evil.pkl", malicious_pickle(f"touch {canary}"))
    fs.pipe("/ckptguard-test/models/clean.pkl", plain_data_pickle())
    try:
        result, summary = fleet_scan(["memory://ckptguard-test/models"], thread_cluster)
    finally:
        fs.rm("/ckptguard-test", recursive=True)
    assert summary.files == 2
    bad = {f.location.path for f in result.findings if f.severity >= result.fail_on}
    assert bad == {"memory://ckptguard-test/models/evil.pkl"}


def test_failing_and_hanging_tasks_are_reported_not_dropped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, thread_cluster: Any) -> None:
    folder = tmp_path / "flaky"
    folder.mkdir()
    (folder / "boom.pkl").write_bytes(plain_data_pickle() + b"1")
    (folder / "hang.pkl").write_bytes(plain_data_pickle() + b"22")
    (folder / "fine.pkl").write_bytes(plain_data_pickle())
    real = fleet_run._scan_task

    def flaky(artifact: Artifact, config: Config) -> Any:
        if artifact.name.endswith("boom.pkl"):
            raise OSError("storage went away")
        if artifact.name.endswith("hang.pkl"):
            time.sleep(8)
        return real(artifact, config)

    fleet_scan([str(folder / "fine.pkl")], thread_cluster, root=tmp_path)  # warm the workers
    monkeypatch.setattr(fleet_run, "_scan_task", flaky)
    # The hanging task sleeps well past the limit; the limit stays far above what scanning a
    # small file takes even on a loaded machine.
    result, summary = fleet_scan([str(folder)], thread_cluster, root=tmp_path, retries=1,
                                 timeout=3.0)
    assert summary.failed == 2
    not_scanned = {f.location.path: f.message for f in result.findings if f.rule_id == "SCN003"}
    assert set(not_scanned) == {"flaky/boom.pkl", "flaky/hang.pkl"}
    assert "storage went away" in not_scanned["flaky/boom.pkl"]
    assert "timed out" in not_scanned["flaky/hang.pkl"]
    assert result.failed  # not scanned fails closed


def test_missing_backend_or_path_is_a_clear_message_not_an_internal_error() -> None:
    import importlib.util

    from click.testing import CliRunner

    from ckptguard.cli import main
    from ckptguard.fleet.storage import StorageError, expand

    runner = CliRunner()
    missing = runner.invoke(main, ["fleet", "scan", "memory://ckptguard-absent/x.pt",
                                   "--local-workers", "1"])
    assert missing.exit_code == 2
    assert "memory://ckptguard-absent/x.pt: no such file or folder" in missing.stderr
    assert "internal error" not in missing.stderr
    unknown = runner.invoke(main, ["fleet", "scan", "nosuch://x", "--local-workers", "1"])
    assert unknown.exit_code == 2 and "unknown URL scheme" in unknown.stderr
    if importlib.util.find_spec("s3fs") is None:
        s3 = runner.invoke(main, ["fleet", "scan", "s3://bucket/model.pt", "--local-workers",
                                  "1"])
        assert s3.exit_code == 2 and "pip install s3fs" in s3.stderr
        assert "internal error" not in s3.stderr
        with pytest.raises(StorageError, match="s3fs"):
            expand(["s3://bucket/model.pt"])
