"""Decompression is bounded per scan, not per archive, and memory does not grow with what an
archive claims: nested archives share one budget, overlapping entries are inflated once, and
output past the in-memory share goes to temporary files."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ckptguard import Config, scan
from ckptguard.limits import Limits
from ckptguard.spill import SpillBuffer, TempFileSource
from fixtures.bombs import moderate_block, nested_zip_bomb, overlap_zip_bomb, ratio_gzip

ROOT = Path(__file__).resolve().parent.parent
MIB = 1 << 20


def _limit_hits(result: object, name: str) -> int:
    findings = getattr(result, "findings", ())
    return sum(1 for f in findings if f.rule_id == "SCN001" and name in f.message)


def test_nested_archives_share_one_budget(tmp_path: Path) -> None:
    path = tmp_path / "nested.zip"
    path.write_bytes(nested_zip_bomb(levels=3, copies=4, kernel=MIB))  # 64 leaves of 1 MiB
    unbounded = scan([path], Config(), root=tmp_path)
    assert sum(1 for a in unbounded.artifacts if a.chain[-1] == "0.bin") == 64
    limited = scan([path], Config(limits=Limits(max_total_decompressed=10 * MIB)), root=tmp_path)
    leaves = sum(1 for a in limited.artifacts if a.chain[-1] == "0.bin" and a.size == MIB)
    # Each level used to get a fresh budget, so every leaf was inflated; now the scan stops.
    assert 0 < leaves < 10
    assert _limit_hits(limited, "max_total_decompressed") and limited.failed


def test_overlapping_entries_are_inflated_once(tmp_path: Path) -> None:
    path = tmp_path / "overlap.zip"
    path.write_bytes(overlap_zip_bomb(entries=64, kernel_mib=8))  # claims 512 MiB
    result = scan([path], Config(limits=Limits(max_total_decompressed=32 * MIB)), root=tmp_path)
    members = [a for a in result.artifacts if len(a.chain) == 2]
    assert len(members) == 64 and all(a.size == 8 * MIB for a in members)
    assert _limit_hits(result, "max_total_decompressed") == 0
    assert any(f.rule_id == "CON004" for f in result.findings)  # the overlap itself is reported


def test_spill_buffer_moves_to_a_file_past_its_memory_share() -> None:
    small = SpillBuffer(memory=100)
    small.write(b"abc")
    assert small.source().read(0, 10) == b"abc" and small.in_memory == 3
    big = SpillBuffer(memory=10)
    for _ in range(5):
        big.write(b"0123456789")
    big.truncate(45)
    source = big.source()
    assert isinstance(source, TempFileSource) and big.in_memory == 0
    assert source.size == 45 and source.read(40, 100) == b"01234"
    assert bytes(source.view()[:12]) == b"012345678901"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux")
def test_bombs_scan_under_an_address_space_limit(tmp_path: Path) -> None:
    """Peak memory bounded by the limits: 1 GiB of address space above what the process had
    before scanning is enough for a gzip expanding to 600 MiB (held whole in memory, twice,
    before) and a zip claiming 16 GiB."""
    gz = tmp_path / "ratio.bin.gz"
    gz.write_bytes(ratio_gzip(600, moderate_block()))
    bomb = tmp_path / "overlap.zip"
    bomb.write_bytes(overlap_zip_bomb(entries=16, kernel_mib=1024))
    script = textwrap.dedent('''
        import resource, sys
        from ckptguard import Config, scan
        scan([sys.argv[1]], Config())  # warm up: every parser imported, arenas in place
        with open("/proc/self/status") as status:
            size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
        resource.setrlimit(resource.RLIMIT_AS, (size + (1 << 30), resource.RLIM_INFINITY))
        for path in sys.argv[2:]:
            result = scan([path], Config())
            print(path.rsplit("/", 1)[-1], sorted({f.rule_id for f in result.findings}))
    ''')
    warm = tmp_path / "warm.pkl"
    warm.write_bytes(b"\x80\x02}q\x00.")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", script, str(warm), str(gz), str(bomb)],
                         env=env, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in run.stdout.strip().splitlines())
    assert "SCN002" not in lines["ratio.bin.gz"] and "SCN002" not in lines["overlap.zip"]
    assert "CON004" in lines["overlap.zip"]


def test_large_slices_of_decompressed_content_are_not_copied() -> None:
    from ckptguard.source import MemorySource, SliceSource, slice_source

    spilled = SpillBuffer(memory=0)
    for index in range(3):
        spilled.write(bytes([index]) * MIB)
    parent = spilled.source()
    member = slice_source(parent, MIB // 2, 2 * MIB)
    assert isinstance(member, SliceSource) and member.parent is parent
    assert member.read(0, 2) == b"\x00\x00" and member.read(2 * MIB - 1, 5) == b"\x02"
    inner = slice_source(member, MIB // 2, MIB + 10)  # a slice of a slice: one level deep
    assert isinstance(inner, SliceSource) and inner.parent is parent
    assert bytes(inner.view()[:1]) == b"\x01" and inner.size == MIB + 10
    small = slice_source(parent, 10, 100)
    assert isinstance(small, MemorySource) and small.data == bytes(100)


def test_a_tar_gz_member_is_judged_from_the_spilled_stream(tmp_path: Path) -> None:
    from fixtures.bombs import tar_gz_bomb

    path = tmp_path / "weights.tar.gz"
    path.write_bytes(tar_gz_bomb(6, moderate_block()))
    result = scan([path], Config(limits=Limits(max_decompressed_in_memory=MIB)), root=tmp_path)
    sizes = {a.chain[-1]: a.size for a in result.artifacts}
    assert sizes["weights.bin"] == 6 * MIB
    assert not any(f.rule_id in ("SCN001", "SCN002") for f in result.findings)


def test_spilled_members_share_the_scans_one_file(tmp_path: Path) -> None:
    """Thousands of small members past the in-memory share must not need thousands of open
    files: they are ranges of one file, and a cut at the end leaves earlier ranges intact."""
    from ckptguard.spill import SpillFile

    shared = SpillFile()
    first, second = SpillBuffer(0, shared), SpillBuffer(0, shared)
    first.write(b"a" * 5000)
    one = first.source()
    second.write(b"b" * 9000)
    second.truncate(3000)
    two = second.source()
    assert (one.size, two.size, shared.end) == (5000, 3000, 8000)
    assert one.read(4990, 100) == b"a" * 10 and two.read(0, 4) == b"bbbb"
    assert bytes(two.view()[-3:]) == b"bbb" and bytes(one.view()[:2]) == b"aa"
    import zipfile

    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as packed:
        for index in range(300):
            packed.writestr(f"m{index}.txt", f"line {index}\n".encode() * 512)
    resource = pytest.importorskip("resource")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    open_now = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 64
    resource.setrlimit(resource.RLIMIT_NOFILE, (open_now + 64, hard))  # far fewer than 300
    try:
        result = scan([archive], Config(limits=Limits(max_decompressed_in_memory=0)),
                      root=tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert not any(f.rule_id in ("SCN001", "SCN002") for f in result.findings)
    assert result.artifacts[0].format == "zip" and not result.judged_nothing


def test_spill_buffer_keeps_the_crc_of_what_was_written() -> None:
    import zlib

    pieces = [b"0123456789" * 7, b"x" * 100, b"tail"]
    for memory in (0, 50, 10_000):  # spilled from the start, part way, never
        buffer = SpillBuffer(memory=memory, crc=True)
        for piece in pieces:
            buffer.write(piece)
        assert buffer.crc32 == zlib.crc32(b"".join(pieces))
        buffer.truncate(10)
        assert buffer.crc32 is None  # no longer the CRC of anything whole
    assert SpillBuffer(memory=10).crc32 is None  # not asked for
