"""LZ4 and Zstandard streams are decompressed and their content scanned (joblib reads LZ4 files
natively); a missing binding keeps the fail-closed FMT004; bombs stop at the limits."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats import compressed_lz4zstd as codec
from ckptguard.limits import Limits
from ckptguard.model import Severity
from ckptguard.source import MemorySource
from fixtures.registry import all_fixtures
from tests.conftest import FixtureFactory

lz4_frame = pytest.importorskip("lz4.frame")
zstandard = pytest.importorskip("zstandard")
ROOT = Path(__file__).resolve().parent.parent


def _ids(path: Path) -> dict[str, list[tuple[str, ...]]]:
    found: dict[str, list[tuple[str, ...]]] = {}
    for item in ckptguard.scan([path]).findings:
        found.setdefault(item.rule_id, []).append(item.location.chain[1:])
    return found


@pytest.mark.parametrize("name", ["joblib_lz4_payload", "lz4_pkl_payload", "zstd_payload",
                                  "zstd_second_frame_payload"])
def test_payload_inside_the_stream_is_found(make_fixture: FixtureFactory, name: str) -> None:
    found = _ids(make_fixture(name))
    assert "FMT004" not in found
    assert found.get("PKL001"), found
    assert not make_fixture.canary.exists()


@pytest.mark.parametrize("name", ["joblib_lz4_clean", "zstd_clean"])
def test_benign_streams_pass_the_gate(make_fixture: FixtureFactory, name: str) -> None:
    result = ckptguard.scan([make_fixture(name)])
    assert [f.rule_id for f in result.findings if f.severity >= Severity.HIGH] == []
    formats = {a.format for a in result.artifacts}
    assert formats & {"lz4", "zstd"}, formats
    assert formats & {"pickle", "joblib"}, formats  # the content itself was parsed


def test_trailing_bytes_are_scanned_on_their_own(make_fixture: FixtureFactory) -> None:
    found = _ids(make_fixture("lz4_trailing_payload"))
    assert "CON011" in found
    assert ("<trailing data>",) in found["PKL001"]


def test_truncated_frame_fails_closed(make_fixture: FixtureFactory) -> None:
    assert "CON010" in _ids(make_fixture("lz4_truncated"))


@pytest.mark.parametrize("fmt", ["lz4", "zstd"])
def test_missing_binding_keeps_fmt004(make_fixture: FixtureFactory, fmt: str,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(codec.MODULES, fmt, "ckptguard_no_such_binding")
    name = "joblib_lz4_payload" if fmt == "lz4" else "zstd_payload"
    found = _ids(make_fixture(name))
    assert "FMT004" in found
    assert "PKL001" not in found  # nothing was examined: the gate fails closed on FMT004


def _inflate(data: bytes, fmt: str, limits: Limits) -> codec.Inflated:
    module = codec.codec_module(fmt)
    return codec.inflate(MemorySource(data), fmt, module, limits, limits.max_total_decompressed)


@pytest.mark.parametrize("fmt", ["lz4", "zstd"])
def test_member_size_limit_stops_a_bomb(fmt: str) -> None:
    zeros = bytes(8 << 20)
    data = lz4_frame.compress(zeros) if fmt == "lz4" else \
        zstandard.ZstdCompressor().compress(zeros)
    result = _inflate(data, fmt, Limits(max_member_size=1 << 20))
    assert result.limit == "max_member_size"
    assert len(result.data) == 1 << 20


@pytest.mark.parametrize("fmt", ["lz4", "zstd"])
def test_ratio_limit_stops_a_bomb(fmt: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "RATIO_FLOOR", 1 << 20)
    zeros = bytes(48 << 20)  # one 1 KiB zstd piece may expand to 32 MiB: the bomb is larger
    data = lz4_frame.compress(zeros) if fmt == "lz4" else \
        zstandard.ZstdCompressor().compress(zeros)
    result = _inflate(data, fmt, Limits(max_compression_ratio=10))
    assert result.limit == "max_compression_ratio"
    assert len(result.data) < len(zeros)


def test_budget_below_member_limit_is_named() -> None:
    data = zstandard.ZstdCompressor().compress(bytes(4 << 20))
    result = codec.inflate(MemorySource(data), "zstd", codec.codec_module("zstd"), Limits(),
                           1 << 20)
    assert result.limit == "max_total_decompressed"


def test_skippable_frames_are_skipped() -> None:
    skip = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"hello"
    body = b"plain content"
    result = _inflate(skip + zstandard.ZstdCompressor().compress(body), "zstd", Limits())
    assert result.complete and result.data == body


def test_not_a_frame_is_a_parse_error() -> None:
    artifact = Artifact(("x.zst",), MemorySource(b"not zstd at all"))
    output = codec.parse_zstd(artifact, ParseContext())
    assert [f.kind for f in output.facts] == ["parse.error"]
    assert output.children == []


LIVE = """
import sys, joblib
try:
    joblib.load(sys.argv[1])
except Exception:
    pass
"""


def test_joblib_lz4_payload_is_live_under_joblib(tmp_path: Path) -> None:
    """The hostile fixture really runs its payload under joblib.load (in a child process whose
    payload only touches this test's own canary)."""
    pytest.importorskip("joblib")
    canary = tmp_path / "canary"
    target = all_fixtures()["joblib_lz4_payload"].build(tmp_path, canary)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", LIVE, str(target)], env=env, timeout=120,
                   check=False, capture_output=True)
    assert canary.exists()


@pytest.mark.parametrize("fmt", ["lz4", "zstd"])
def test_concatenated_frames_decode_as_one_stream(fmt: str) -> None:
    parts = [b"first frame|", bytes(range(256)) * 300, b"|third"]
    compress = lz4_frame.compress if fmt == "lz4" else zstandard.ZstdCompressor().compress
    data = b"".join(compress(p) for p in parts)
    result = _inflate(data + b"tail", fmt, Limits())
    assert result.complete and result.streams == 3
    assert result.data == b"".join(parts)
    assert result.trailing == 4
