"""Zip containers: routing, member chains, tolerance of hostile structure, limits, and the
mapping of torch tensors to byte ranges (checked against values generated here, never by loading
the scanned file)."""

from __future__ import annotations

import importlib.util
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy
import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Artifact, Fact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.zipfmt.layout import classify
from ckptguard.formats.zipfmt.parser import parse
from ckptguard.formats.zipfmt.reader import has_end_record, read_directory
from ckptguard.formats.zipfmt.tensors import StorageIndex, c_contiguous, tensor_ref
from ckptguard.limits import Limits
from ckptguard.model import Location, Severity
from ckptguard.source import FileSource, MemorySource
from fixtures.basic_formats import plain_data_pickle
from fixtures.containers import torch_records, zip_bytes

HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_PICKLE_ENGINE = importlib.util.find_spec("ckptguard.formats.pickle.parser") is not None


def parse_file(path: Path, **context: object) -> ParseOutput:
    return parse(Artifact((path.name,), FileSource(str(path))), ParseContext(**context))  # type: ignore[arg-type]


def kinds(output: ParseOutput) -> list[str]:
    return [f.kind for f in output.facts]


def test_hand_built_torch_zip_routes_by_content_not_name(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_odd_root"))
    assert output.format == "pytorch-zip"
    # Only the pickle record is handed on: storages and metadata records are never read.
    assert [(c.chain[-1], c.format_hint) for c in output.children] == \
        [("my model (v2)/data.pkl", "pickle")]
    assert isinstance(output.children[0].source, FileSource)  # a slice of the file, no copy
    assert output.facts == []


@pytest.mark.parametrize(("names", "expected"), [
    (["a/data.pkl", "a/data/0", "a/version"], "pytorch-zip"),
    (["x/version", "x/data.pkl", "x/constants.pkl", "x/code/__torch__/m.py"], "torchscript"),
    (["config.json", "metadata.json", "model.weights.h5"], "keras"),
    (["a.npy", "b.npy"], "npz"),
    (["b/data.pkl", "a/data.pkl"], "pytorch-zip"),
    (["data.pkl"], "zip"),
    ([], "zip"),
])
def test_layout_from_member_names(names: list[str], expected: str) -> None:
    layout = classify(names)
    assert layout.format == expected
    if expected in ("pytorch-zip", "torchscript"):
        assert layout.root == names[0].split("/")[0]  # torch takes the first entry's folder


def test_every_pickle_record_is_handed_on_and_extra_ones_reported(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_extra_pickle"))
    pickles = [c.chain[-1] for c in output.children if c.format_hint == "pickle"]
    assert pickles == ["archive/data.pkl", "archive/extra/helper.bin"]
    extra = [f for f in output.facts if f.kind == "torch.extra_pickle"]
    assert [f.attrs["name"] for f in extra] == ["archive/extra/helper.bin"]


def test_duplicate_names_scan_every_copy(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_duplicate"))
    names = [c.chain[-1] for c in output.children]
    assert names == ["archive/data.pkl", "archive/data.pkl#2"]
    second = output.children[1].source.read(0, 100)
    assert second.startswith(b"cos\nsystem\n")  # the hostile copy is what gets scanned second
    (dup,) = [f for f in output.facts if f.kind == "zip.duplicate_name"]
    assert dup.attrs["copies"] == 2


def test_local_header_disagreement_is_a_fact(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_header_mismatch"))
    (fact,) = [f for f in output.facts if f.kind == "zip.header_mismatch"]
    assert (fact.attrs["field"], fact.attrs["central"], fact.attrs["local"]) == \
        ("name", "archive/data.pkl", "archive/evil.pkl")
    assert output.children  # still scanned, the way a central-directory reader sees it


def test_crc_mismatch_on_pickle_record(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_bad_crc"))
    assert kinds(output).count("zip.crc_mismatch") == 1
    assert "zip.header_mismatch" not in kinds(output)


def test_overlap_encryption_and_unsafe_paths(make_fixture) -> None:  # type: ignore[no-untyped-def]
    assert "zip.overlap" in kinds(parse_file(make_fixture("zip_overlap")))
    encrypted = parse_file(make_fixture("zip_encrypted"))
    assert [f.attrs["reason"] for f in encrypted.of_kind("archive.unreadable_member")] == \
        ["encrypted"]
    assert encrypted.children == []
    unsafe = parse_file(make_fixture("zip_unsafe_path"))
    assert [f.attrs["name"] for f in unsafe.of_kind("archive.unsafe_path")] == \
        ["../../outside.txt"]


def test_prepended_bytes_are_a_polyglot_and_still_scanned(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("torch_zip_prepended")
    assert has_end_record(FileSource(str(path)))
    result = scan([path], Config(), root=path.parent)
    assert "FMT003" in {f.rule_id for f in result.findings}
    assert any(a.name.endswith("!archive/data.pkl") for a in result.artifacts)


def test_no_end_record_is_not_mistaken_for_a_zip() -> None:
    junk = MemorySource(bytes(range(256)) * 300 + b"PK\x05\x06" + bytes(30))
    assert not has_end_record(junk)


def test_truncated_archive_is_a_parse_error(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_truncated"))
    assert [f.attrs["format"] for f in output.of_kind("parse.error")] == ["zip"]


def test_nested_chain_names(make_fixture, canary: Path) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("chain_zip_tar_gzip")
    result = scan([path], Config(), root=path.parent)
    names = [a.name for a in result.artifacts]
    assert "release.tar.gz!release.tar!bundle.zip!model/pytorch_model.bin!archive/data.pkl" \
        in names
    formats = {a.name: a.format for a in result.artifacts}
    assert formats["release.tar.gz!release.tar!bundle.zip!model/pytorch_model.bin"] == \
        "pytorch-zip"
    assert not canary.exists()


def test_zip_bomb_stops_at_the_ratio_limit(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("zip_bomb")
    output = parse_file(path)
    (hit,) = output.of_kind("limit.hit")
    assert hit.attrs["limit"] == "max_compression_ratio"
    assert output.children[0].source.size < 48 << 20  # stopped before the end
    result = scan([path], Config(), root=path.parent)
    assert "SCN001" in {f.rule_id for f in result.findings}


def test_member_size_and_count_limits() -> None:
    data = zip_bytes([(f"m{i}.txt", b"x" * 1000) for i in range(5)], zipfile.ZIP_DEFLATED)
    artifact = Artifact(("many.zip",), MemorySource(data))
    small = Limits(max_member_size=100, max_archive_members=3)
    output = parse(artifact, ParseContext(limits=small))
    limits = sorted({f.attrs["limit"] for f in output.of_kind("limit.hit")})
    assert limits == ["max_archive_members", "max_member_size"]
    assert len(output.children) == 3


def test_zip_too_deep_and_plain_zip(make_fixture) -> None:  # type: ignore[no-untyped-def]
    deep = make_fixture("zip_too_deep")
    assert "SCN001" in {f.rule_id for f in scan([deep], Config(), root=deep.parent).findings}
    plain = make_fixture("plain_zip_clean")
    result = scan([plain], Config(), root=plain.parent)
    assert result.at_or_above(Severity.HIGH) == ()


def test_zip64_directory_is_read() -> None:
    # Force ZIP64 records the way large checkpoints have them.
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", allowZip64=True) as archive:
        with archive.open("archive/data.pkl", "w", force_zip64=True) as handle:
            handle.write(plain_data_pickle())
        archive.writestr("archive/version", b"3\n")
    directory = read_directory(MemorySource(buffer.getvalue()), max_entries=10, max_bytes=1 << 20)
    assert [e.name for e in directory.entries] == ["archive/data.pkl", "archive/version"]
    output = parse(Artifact(("big.pt",), MemorySource(buffer.getvalue())), ParseContext())
    assert output.format == "pytorch-zip"
    assert output.children[0].source.read(0, 2) == plain_data_pickle()[:2]
    assert "zip.header_mismatch" not in kinds(output)


def test_contiguity() -> None:
    assert c_contiguous((3, 4), (4, 1))
    assert c_contiguous((1, 4), (99, 1))
    assert not c_contiguous((3, 4), (1, 3))


def _tensor_fact(name: str, key: str, dtype: str, shape: tuple[int, ...],
                 stride: tuple[int, ...], offset: int) -> Fact:
    return Fact.of("torch.tensor", Location(("m.pt",)), name=name, storage_key=key,
                   storage_dtype=dtype, shape=shape, stride=stride, storage_offset=offset)


def _expected_state() -> dict[str, numpy.ndarray]:
    """The fixture's values, regenerated here from the same seed (the file is never loaded)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    weight = torch.randn(4, 3, generator=generator).numpy()
    return {"linear.weight": weight, "linear.bias": numpy.arange(4, dtype=numpy.float32),
            "steps": numpy.array([7], dtype=numpy.int64), "view": weight[1:]}


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch to build the fixture")
def test_tensor_refs_match_torch_save_bytes(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("torch_zip_saved_state")
    source = FileSource(str(path))
    directory = read_directory(source, max_entries=100, max_bytes=1 << 20)
    storages = {e.name.split("/data/")[1]: e for e in directory.entries if "/data/" in e.name}
    index = StorageIndex(source, storages)
    facts = {"linear.weight": _tensor_fact("linear.weight", "0", "float32", (4, 3), (3, 1), 0),
             "linear.bias": _tensor_fact("linear.bias", "1", "float32", (4,), (1,), 0),
             "steps": _tensor_fact("steps", "3", "int64", (1,), (1,), 0),
             "view": _tensor_fact("view", "0", "float32", (3, 3), (3, 1), 3)}
    for name, expected in _expected_state().items():
        ref = tensor_ref(facts[name], index, Location(("m.pt",)))
        assert not isinstance(ref, str), ref
        values = numpy.frombuffer(ref.source.read(0, ref.source.size), dtype=ref.dtype)
        numpy.testing.assert_array_equal(values.reshape(ref.shape), expected)
    transposed = _tensor_fact("t", "0", "float32", (3, 4), (1, 3), 0)
    assert tensor_ref(transposed, index, Location(("m.pt",))) == "not contiguous in C order"
    outside = _tensor_fact("o", "1", "float32", (4,), (1,), 2)
    assert "outside" in str(tensor_ref(outside, index, Location(("m.pt",))))


@pytest.mark.skipif(not (HAS_TORCH and HAS_PICKLE_ENGINE), reason="needs torch and the pickle "
                    "engine")
def test_want_tensors_end_to_end(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("torch_zip_saved_state"), want_tensors=True)
    refs = {t.name: t for t in output.tensors}
    for name, expected in _expected_state().items():
        ref = refs[name]
        values = numpy.frombuffer(ref.source.read(0, ref.source.size), dtype=ref.dtype)
        numpy.testing.assert_array_equal(values.reshape(ref.shape), expected)
    assert refs["embed"].dtype == "bfloat16" and refs["embed"].source.size == 20
    assert isinstance(refs["view"].source, FileSource)  # a slice of the file, not a copy


def test_storage_records_are_not_read() -> None:
    # A storage record that is not even a valid local header: reading it would be an error.
    data = bytearray(zip_bytes(torch_records("archive", plain_data_pickle(), {"0": bytes(64)})))
    local = data.index(b"archive/data/0") - 30
    data[local:local + 4] = b"XXXX"
    output = parse(Artifact(("m.pt",), MemorySource(bytes(data))), ParseContext())
    assert output.facts == []
    broken = parse(Artifact(("m.pt",), MemorySource(bytes(data))),
                   replace(ParseContext(), want_tensors=True))
    # With tensors wanted, a mapping failure is a fact, never an exception.
    assert all(f.kind in ("torch.tensor_skipped",) for f in broken.facts)


def test_torchscript_records_and_code_are_handed_on() -> None:
    records = [("m/data.pkl", plain_data_pickle()), ("m/constants.pkl", plain_data_pickle()),
               ("m/code/__torch__/model.py", b"def forward(self, x):\n  return x\n"),
               ("m/code/__torch__/model.py.debug_pkl", plain_data_pickle()),
               ("m/version", b"3\n")]
    output = parse(Artifact(("s.pt",), MemorySource(zip_bytes(records))), ParseContext())
    assert output.format == "torchscript"
    hints = {c.chain[-1]: c.format_hint for c in output.children}
    assert hints == {"m/data.pkl": "pickle", "m/constants.pkl": "pickle",
                     "m/code/__torch__/model.py": None,
                     "m/code/__torch__/model.py.debug_pkl": "pickle"}
    assert "torch.extra_pickle" not in kinds(output)


def test_keras_archive_hands_configs_to_their_parsers() -> None:
    records = [("metadata.json", b'{"keras_version": "3.0.0"}'),
               ("config.json", b'{"class_name": "Sequential"}'),
               ("model.weights.h5", b"\x89HDF\r\n\x1a\n" + bytes(64))]
    output = parse(Artifact(("m.keras",), MemorySource(zip_bytes(records))), ParseContext())
    assert output.format == "keras"
    assert {c.chain[-1]: c.format_hint for c in output.children} == {
        "metadata.json": "keras-metadata", "config.json": "keras-config",
        "model.weights.h5": None}


def test_compressed_members_are_inflated_and_checked() -> None:
    data = zip_bytes([("data.pkl", plain_data_pickle())], zipfile.ZIP_DEFLATED)
    output = parse(Artifact(("b.zip",), MemorySource(data)), ParseContext())
    assert output.children[0].source.read(0, 1000) == plain_data_pickle()
    assert output.facts == []
    bz = zip_bytes([("data.pkl", plain_data_pickle())], zipfile.ZIP_BZIP2)
    output = parse(Artifact(("b.zip",), MemorySource(bz)), ParseContext())
    assert output.children[0].source.read(0, 1000) == plain_data_pickle()
    lz = zip_bytes([("data.pkl", plain_data_pickle())], zipfile.ZIP_LZMA)
    output = parse(Artifact(("b.zip",), MemorySource(lz)), ParseContext())
    assert output.children[0].source.read(0, 1000) == plain_data_pickle()
    assert output.facts == []
    broken = bytearray(lz)
    broken[broken.index(b"data.pkl") + 8 + 2] = 7  # properties size 7: not LZMA1
    output = parse(Artifact(("b.zip",), MemorySource(bytes(broken))), ParseContext())
    assert [f.attrs["reason"] for f in output.of_kind("archive.unreadable_member")] == \
        ["lzma compression with an unknown properties header"]


def test_names_differing_only_in_case_are_duplicates_for_torch() -> None:
    records = [*torch_records("archive", plain_data_pickle()), ("archive/DATA.pkl", b"cos\n")]
    output = parse(Artifact(("m.pt",), MemorySource(zip_bytes(records))), ParseContext())
    (dup,) = output.of_kind("zip.duplicate_name")
    assert "differ only in case" in dup.attrs["detail"]
    assert "archive/DATA.pkl" in [c.chain[-1] for c in output.children]


def test_deflated_members_are_checked_against_their_own_crc(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decompressor takes the CRC-32 as it inflates, and two records over the same deflated
    bytes share one output: each is still checked against its own record."""
    import io
    import struct

    from ckptguard.formats.zipfmt import members

    def read_again(source: object) -> int:
        raise AssertionError("an inflated member was read again for its CRC")

    monkeypatch.setattr(members, "_crc", read_again)

    content = bytes(range(256)) * 4096
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a.bin", content)
        archive.writestr("b.bin", content)
        archive.writestr("c.bin", content[:-1] + b"!")
    data = bytearray(buffer.getvalue())
    central = data.index(b"PK\x01\x02")
    records = []
    while central != -1:
        records.append(central)
        central = data.find(b"PK\x01\x02", central + 4)
    name_of = {bytes(data[r + 46:r + 46 + struct.unpack_from("<H", data, r + 28)[0]]): r
               for r in records}
    struct.pack_into("<I", data, name_of[b"b.bin"] + 16, 0xDEADBEEF)  # b's record lies
    path = tmp_path / "archive.zip"
    path.write_bytes(bytes(data))
    output = parse_file(path)
    wrong = [f for f in output.facts if f.kind == "zip.crc_mismatch"]
    assert [f.attrs["name"] for f in wrong] == ["b.bin"]
    assert wrong[0].attrs["expected"] == "deadbeef"
    assert wrong[0].attrs["actual"] == f"{zipfile.crc32(content):08x}"
