"""Content digests: each range of bytes is hashed once per scan, whatever number of artifacts
cover it, and a remembered digest is never given to other bytes."""

from __future__ import annotations

import gc
import hashlib
import weakref
from pathlib import Path

import pytest

import ckptguard.digests as digests
from ckptguard import Config, scan
from ckptguard.digests import DigestMemo, content_digest
from ckptguard.facts import Artifact
from ckptguard.source import FileSource, MemorySource, SliceSource
from fixtures.bombs import overlap_zip_bomb

MIB = 1 << 20


@pytest.fixture()
def hashed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every artifact actually hashed."""
    sizes: list[int] = []
    real = digests.content_digest

    def counting(artifact: Artifact) -> str | None:
        sizes.append(artifact.source.size)
        return real(artifact)

    monkeypatch.setattr(digests, "content_digest", counting)
    return sizes


def test_overlapping_zip_members_are_hashed_once(tmp_path: Path, hashed: list[int]) -> None:
    path = tmp_path / "overlap.zip"
    path.write_bytes(overlap_zip_bomb(entries=200, kernel_mib=4))
    result = scan([path], Config(), root=tmp_path)
    members = [a for a in result.artifacts if len(a.chain) == 2]
    assert len(members) == 200
    expected = hashlib.sha256(bytes(4 * MIB)).hexdigest()
    assert {a.sha256 for a in members} == {expected}  # every member still carries its digest
    assert sorted(hashed) == [path.stat().st_size, 4 * MIB]  # the archive, then one member


def test_the_same_file_range_is_hashed_once_and_other_ranges_apart(
        tmp_path: Path, hashed: list[int]) -> None:
    path = tmp_path / "data.bin"
    path.write_bytes(b"abcdef" * 1000)
    memo = DigestMemo()
    whole = memo.digest(Artifact(("a",), FileSource(str(path))))
    again = memo.digest(Artifact(("b",), FileSource(str(path))))
    part = memo.digest(Artifact(("c",), FileSource(str(path), 6, 600)))
    sliced = memo.digest(Artifact(("d",), SliceSource(FileSource(str(path)), 6, 600)))
    assert whole == again == hashlib.sha256(path.read_bytes()).hexdigest()
    assert part == sliced == hashlib.sha256(b"abcdef" * 100).hexdigest()
    assert len(hashed) == 3  # the whole file once; the part and its slice have different keys


def test_a_source_that_died_is_never_confused_with_a_new_one_at_its_address(
        hashed: list[int]) -> None:
    memo = DigestMemo()
    first = MemorySource(b"first bytes")
    assert memo.digest(Artifact(("a",), first)) == hashlib.sha256(b"first bytes").hexdigest()
    second = MemorySource(b"other bytes")
    # As if ``second`` had been allocated where ``first`` lived: its key is taken by an entry
    # whose object is gone.
    dead = MemorySource(b"gone")
    reference = weakref.ref(dead)
    del dead
    gc.collect()
    assert reference() is None
    memo._known[("object", id(second))] = (reference, "a digest of other bytes")
    assert memo.digest(Artifact(("b",), second)) == hashlib.sha256(b"other bytes").hexdigest()
    # and a live one is remembered
    assert memo.digest(Artifact(("c",), second)) == hashlib.sha256(b"other bytes").hexdigest()
    assert len(hashed) == 2


def test_folders_judged_whole_have_no_digest() -> None:
    folder = Artifact(("repo/",), MemorySource(b""))
    assert content_digest(folder) is None and DigestMemo().digest(folder) is None
