"""Parallel scans give exactly the result of a sequential scan, in input order."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from ckptguard import scan
from ckptguard.api import load_rules, plan
from ckptguard.config import Config
from ckptguard.parallel import effective_jobs, run_units, threads_per_worker, weight_threads

HAS_PICKLE_PARSER = importlib.util.find_spec("ckptguard.formats.pickle") is not None and \
    importlib.util.find_spec("ckptguard.formats.pickle.parser") is not None
# Fixtures whose scan needs no pickle parser, then (when it is present) some that hold pickles.
FIXTURE_NAMES = ("sevenzip_wrapped", "random_bytes_pt", "gguf_named_npy") + (
    ("safetensors_zip_polyglot", "zip_too_deep", "plain_zip_clean", "workflow_system_pickle",
     "workflow_plain_pickle") if HAS_PICKLE_PARSER else ())


@pytest.fixture()
def fixture_files(make_fixture, tmp_path: Path) -> list[Path]:  # type: ignore[no-untyped-def]
    built = [make_fixture(name) for name in FIXTURE_NAMES]
    extra = tmp_path / "extra"
    extra.mkdir()
    for index in range(6):  # more units than workers, of different sizes
        (extra / f"blob{index}.pt").write_bytes(bytes([index + 1]) * (1000 * (6 - index)))
    return [*built, extra]


def test_jobs_two_equals_jobs_one(fixture_files: list[Path], tmp_path: Path) -> None:
    sequential = scan(fixture_files, root=tmp_path.parent, jobs=1)
    parallel = scan(fixture_files, root=tmp_path.parent, jobs=2)
    assert sequential.findings  # the set exercises real findings
    assert parallel == sequential
    all_cpus = scan(fixture_files, root=tmp_path.parent, jobs=0)
    assert all_cpus == sequential


def test_results_come_back_in_input_order(fixture_files: list[Path], tmp_path: Path) -> None:
    config = Config()
    units = plan(fixture_files, config, root=tmp_path.parent)
    sizes: list[int] = []
    outcomes = run_units(units, config, load_rules(config), jobs=2, advance=sizes.append)
    assert [o[0].summary.chain for o in outcomes] == [u.artifact.chain for u in units]
    assert sorted(sizes) == sorted(u.size for u in units)


def test_custom_rules_reach_the_workers(fixture_files: list[Path], tmp_path: Path) -> None:
    only = load_rules(Config()).only(["FMT004"])
    result = scan(fixture_files, root=tmp_path.parent, rules=only, jobs=2)
    assert {f.rule_id for f in result.findings} == {"FMT004"}


def test_effective_jobs() -> None:
    assert effective_jobs(1, 10) == 1
    assert effective_jobs(4, 2) == 2
    assert effective_jobs(0, 1000) == min(os.cpu_count() or 1, 1000)
    assert effective_jobs(3, 0) == 1


def test_spawned_workers_load_the_same_rules(fixture_files: list[Path], tmp_path: Path) -> None:
    config = Config()
    rules = load_rules(config).only(["FMT004", "FMT005"])
    units = plan(fixture_files[:2], config, root=tmp_path.parent)
    spawned = run_units(units, config, rules, jobs=2, start_method="spawn")
    assert spawned == run_units(units, config, rules, jobs=1)
    assert {f.rule_id for outcomes in spawned for o in outcomes for f in o.findings} == {
        "FMT004", "FMT005"}


@pytest.mark.parametrize(("jobs", "units", "cpus", "threads"), [
    (1, 1, 8, 1), (4, 1, 8, 4), (4, 2, 8, 2), (4, 8, 8, 1), (0, 1, 8, 8), (0, 3, 8, 2),
    (0, 20, 8, 1), (0, 1, 1, 1), (3, 0, 8, 3)])
def test_cpus_the_files_leave_idle_go_to_threads(jobs: int, units: int, cpus: int, threads: int,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: cpus)
    assert threads_per_worker(jobs, units) == threads
    assert effective_jobs(jobs, units) * threads_per_worker(jobs, units) <= max(
        1, cpus if jobs == 0 else jobs)


def checkpoint_and_recorded_workers(tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> tuple[Path, list[int]]:
    """A small safetensors checkpoint, and the ``workers`` every ``anomalies.profile`` call
    receives from then on (the calls still run)."""
    from ckptguard.weights import anomalies
    from fixtures.backdoor import clean_mlp, safetensors_file

    path = tmp_path / "model.safetensors"
    path.write_bytes(safetensors_file(clean_mlp(3)))
    seen: list[int] = []
    real = anomalies.profile

    def recording(*args: object, workers: int = 1, **kwargs: object) -> object:
        seen.append(workers)
        return real(*args, workers=workers, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(anomalies, "profile", recording)
    return path, seen


def test_jobs_reach_the_weight_statistics_of_a_single_file(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    path, seen = checkpoint_and_recorded_workers(tmp_path, monkeypatch)
    results = {}
    for jobs in (1, 3):
        result = scan([path], Config(weights=True), root=tmp_path, jobs=jobs)
        results[jobs] = [(f.rule_id, f.location.tensor, f.message) for f in result.findings]
    assert seen == [1, 3]
    assert results[1] == results[3]


@pytest.mark.parametrize(("usable", "units"), [(8, 1), (8, 20), (2, 5), (1, 1)])
def test_without_jobs_the_weight_threads_are_the_usable_cpus(usable: int, units: int,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import ckptguard.parallel

    monkeypatch.setattr(ckptguard.parallel, "usable_cpus", lambda: usable)
    # The files are scanned one at a time, so each gets every usable CPU.
    assert weight_threads(None, units) == usable
    # An explicit -j is a promise about CPUs: the free cores do not change it.
    assert weight_threads(1, units) == 1
    assert weight_threads(2, 1) == 2


def test_a_plain_scan_gives_the_weight_statistics_every_usable_cpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ckptguard.parallel

    path, seen = checkpoint_and_recorded_workers(tmp_path, monkeypatch)
    monkeypatch.setattr(ckptguard.parallel, "usable_cpus", lambda: 4)
    plain = scan([path], Config(weights=True), root=tmp_path)
    single = scan([path], Config(weights=True), root=tmp_path, jobs=1)
    assert seen == [4, 1]
    assert [(f.rule_id, f.location.tensor, f.message) for f in plain.findings] == \
        [(f.rule_id, f.location.tensor, f.message) for f in single.findings]
