"""The Hugging Face hub cache: files named by repo id and revision, each blob scanned once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptguard import scan
from ckptguard.api import plan
from ckptguard.cli import main
from ckptguard.config import Config
from ckptguard.hfcache import default_cache_dir, repo_id_of, walk_cache
from fixtures.workflow import sevenzip

REV1 = "a" * 40
REV2 = "b" * 40


def _link(snapshot: Path, name: str, blob: str) -> None:
    target = snapshot / name
    target.parent.mkdir(parents=True, exist_ok=True)
    depth = len(Path(name).parts) + 1
    os.symlink(Path(*([".."] * depth)) / "blobs" / blob, target)


@pytest.fixture()
def cache(tmp_path: Path) -> Path:
    root = tmp_path / "hub"
    repo = root / "models--acme--tiny"
    (repo / "blobs").mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REV2)
    (repo / "blobs" / "h-7z").write_bytes(sevenzip())
    (repo / "blobs" / "h-config").write_text(json.dumps({"model_type": "bert"}))
    (repo / "blobs" / "h-weird").write_bytes(bytes(range(256)) * 4)
    for rev in (REV1, REV2):
        snap = repo / "snapshots" / rev
        snap.mkdir(parents=True)
        _link(snap, "config.json", "h-config")
        _link(snap, "weights/model.7z", "h-7z")  # same blob in both revisions
    _link(repo / "snapshots" / REV2, "extra.pt", "h-weird")
    _link(repo / "snapshots" / REV2, "missing.bin", "h-not-downloaded")  # broken link
    (root / "models--solo").mkdir()  # no snapshots: not a cached repo yet
    (root / "version.txt").write_text("1")
    return root


def test_repo_ids() -> None:
    assert repo_id_of("models--acme--tiny") == "acme/tiny"
    assert repo_id_of("models--gpt2") == "gpt2"
    assert repo_id_of("datasets--acme--data") == "datasets/acme/data"
    assert repo_id_of("blobs") is None and repo_id_of("models--") is None


def test_default_cache_dir() -> None:
    assert default_cache_dir({"HF_HUB_CACHE": "/x/hub"}) == Path("/x/hub")
    assert default_cache_dir({"HF_HOME": "/y"}) == Path("/y/hub")
    assert default_cache_dir({"XDG_CACHE_HOME": "/z"}) == Path("/z/huggingface/hub")
    assert default_cache_dir({}) == Path.home() / ".cache" / "huggingface" / "hub"


def test_walk_reads_refs_and_snapshots(cache: Path) -> None:
    snapshots = list(walk_cache(cache))
    assert [(s.repo_id, s.revision, s.refs) for s in snapshots] == [
        ("acme/tiny", REV1, ()), ("acme/tiny", REV2, ("main",))]
    assert [f.name for f in snapshots[1].files] == [
        f"acme/tiny@{REV2}/config.json", f"acme/tiny@{REV2}/extra.pt",
        f"acme/tiny@{REV2}/weights/model.7z"]


def test_each_blob_scanned_once_and_reported_under_every_path(cache: Path) -> None:
    units = plan([], Config(), hf_cache=cache)
    blobs = [u for u in units if u.file is not None]
    assert len(blobs) == len({u.file for u in blobs}) == 3
    shared = next(u for u in blobs if u.file is not None and u.file.endswith("h-7z"))
    assert shared.artifact.chain == (f"acme/tiny@{REV1}/weights/model.7z",)
    assert shared.aliases == (f"acme/tiny@{REV2}/weights/model.7z",)
    repos = [u.artifact for u in units if u.artifact.format_hint == "hf-repo"]
    assert [r.chain for r in repos] == [(f"acme/tiny@{REV1}/",), (f"acme/tiny@{REV2}/",)]

    result = scan([], hf_cache=cache)
    assert {f.location.path for f in result.findings if f.rule_id == "FMT004"} == {
        f"acme/tiny@{REV1}/weights/model.7z", f"acme/tiny@{REV2}/weights/model.7z"}
    assert result.failed


def test_cli_hf_cache(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    explicit = runner.invoke(main, ["scan", "--hf-cache", str(cache), "--format", "json"])
    assert explicit.exit_code == 1, explicit.output
    paths = {f["location"]["path"] for f in json.loads(explicit.stdout)["findings"]}
    assert f"acme/tiny@{REV2}/extra.pt" in paths
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    from_env = runner.invoke(main, ["scan", "--format", "json", "--hf-cache"])
    assert from_env.exit_code == 1 and from_env.stdout == explicit.stdout
    excluded = runner.invoke(main, ["scan", "--hf-cache", str(cache), "--exclude", "*.7z",
                                    "--exclude", "*.pt"])
    assert excluded.exit_code == 0, excluded.output


def test_missing_cache_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["scan", "--hf-cache", str(tmp_path / "none")])
    assert result.exit_code == 2 and "no Hugging Face cache here" in result.stderr


def test_too_many_files_is_an_error_not_a_silent_cut(cache: Path) -> None:
    from ckptguard.hfcache import CacheError

    with pytest.raises(CacheError, match="more than 2 files in one snapshot"):
        list(walk_cache(cache, max_files=2))
