"""Tar archives, single compressed streams (including joblib's), NumPy files, and robustness of
every container parser against mutated input."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext, parser_for
from ckptguard.formats.compressed import decompress, gzip_original_name, parse_gzip, parse_zlib
from ckptguard.formats.numpy_npy import HeaderError, parse_header
from ckptguard.formats.tarfmt import parse as parse_tar
from ckptguard.limits import Limits
from ckptguard.source import FileSource, MemorySource
from fixtures.basic_formats import plain_data_pickle
from fixtures.containers import npy_bytes, torch_records, zip_bytes

CONTAINER_FORMATS = ("zip", "tar", "gzip", "bz2", "xz", "zlib", "lzma", "numpy")


def artifact(path: Path) -> Artifact:
    return Artifact((path.name,), FileSource(str(path)))


def run(fmt: str, path: Path, **context: object) -> ParseOutput:
    parser = parser_for(fmt)
    assert parser is not None
    return parser(artifact(path), ParseContext(**context))  # type: ignore[arg-type]


def test_legacy_torch_tar_hands_every_record_on_as_pickle(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = run("tar", make_fixture("torch_tar_legacy"))
    assert output.format == "torch-tar"
    assert [(c.chain, c.format_hint) for c in output.children] == [
        (("model.pt", name), "pickle") for name in ("sys_info", "pickle", "storages", "tensors")]
    assert output.children[0].source.read(0, 64) == plain_data_pickle()


def test_tar_links_are_reported_not_followed(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = run("tar", make_fixture("tar_link"))
    (link,) = output.of_kind("archive.link")
    assert (link.attrs["name"], link.attrs["target"]) == ("storages", "/etc/passwd")
    assert [c.chain[-1] for c in output.children] == ["README"]
    assert [f.attrs["name"] for f in output.of_kind("archive.unsafe_path")] == ["storages"]


def test_tar_checksum_and_truncation_are_parse_errors(make_fixture) -> None:  # type: ignore[no-untyped-def]
    data = bytearray(make_fixture("tar_clean").read_bytes())
    data[0] ^= 0x20  # name changes, checksum no longer matches
    output = parse_tar(Artifact(("b.tar",), MemorySource(bytes(data))), ParseContext())
    assert "checksum" in next(output.of_kind("parse.error")).attrs["error"]
    cut = make_fixture("tar_clean").read_bytes()[:700]
    output = parse_tar(Artifact(("b.tar",), MemorySource(cut)), ParseContext())
    assert [f.kind for f in output.facts] == ["parse.error"]


@pytest.mark.parametrize("method", ["zlib", "gzip", "bz2", "xz", "lzma"])
def test_joblib_compressed_files_decompress_to_a_pickle(method: str, make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture(f"joblib_{method}")
    output = run(method, path)
    (child,) = output.children
    assert child.format_hint == "pickle"
    assert child.source.read(0, 1) == b"\x80"  # joblib pickles with a PROTO opcode
    assert not [f for f in output.facts if f.kind in ("parse.error", "limit.hit")]


def test_joblib_zf_legacy_header(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = run("zlib", make_fixture("joblib_zf_legacy"))
    assert output.format == "joblib"
    assert output.children[0].source.read(0, 100) == plain_data_pickle()
    assert output.facts == []
    path = make_fixture("joblib_zf_legacy")
    wrong = b"ZF" + b"0x5".ljust(19) + path.read_bytes()[21:]
    bad = parse_zlib(Artifact(("m.pkl",), MemorySource(wrong)), ParseContext())
    assert "declares 5 bytes" in next(bad.of_kind("parse.error")).attrs["error"]


def test_streams_name_their_content(make_fixture) -> None:  # type: ignore[no-untyped-def]
    folder = make_fixture("streams_clean")
    result = scan([folder], Config(), root=folder.parent)
    names = {a.name for a in result.artifacts}
    assert {"streams/a.pkl.gz!a.pkl", "streams/b.pkl.bz2!b.pkl", "streams/c.pkl.xz!c.pkl",
            "streams/d.pkl.lzma!d.pkl"} <= names
    assert not [f for f in result.findings if f.rule_id.startswith(("CON", "SCN", "FMT"))]


def test_gzip_original_name_and_concatenated_members() -> None:
    data = gzip.compress(b"abc", mtime=0)
    named = data[:3] + bytes([data[3] | 0x08]) + data[4:10] + b"../model.pkl\x00" + data[10:]
    assert gzip_original_name(named) == "model.pkl"
    two = gzip.compress(b"abc", mtime=0) + gzip.compress(b"def", mtime=0)
    result = decompress(MemorySource(two), 0, len(two), "gzip", Limits(), 1 << 20)
    assert (result.data, result.complete, result.streams) == (b"abcdef", True, 2)
    garbage = gzip.compress(b"abc", mtime=0) + b"trailing!"
    output = parse_gzip(Artifact(("x.gz",), MemorySource(garbage)), ParseContext())
    assert next(output.of_kind("compressed.trailing_data")).attrs["bytes"] == 9
    trailing = {c.chain[-1]: c for c in output.children}["<trailing data>"]
    assert trailing.source.read(0, 100) == b"trailing!"


def test_decompression_budget_and_ratio() -> None:
    zeros = zlib.compress(bytes(1 << 20))
    small = decompress(MemorySource(zeros), 0, len(zeros), "zlib", Limits(), 1000)
    assert (small.limit, len(small.data)) == ("max_total_decompressed", 1000)
    capped = decompress(MemorySource(zeros), 0, len(zeros), "zlib",
                        Limits(max_member_size=4096), 1 << 30)
    assert capped.limit == "max_member_size"
    corrupt = decompress(MemorySource(b"\x78\x9c" + b"\xff" * 50), 0, 52, "zlib", Limits(), 1 << 20)
    assert corrupt.error is not None and not corrupt.complete


def test_gzip_truncated_is_reported(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = run("gzip", make_fixture("gzip_truncated"))
    assert "truncated" in next(output.of_kind("parse.error")).attrs["error"]


def test_numpy_object_array_hands_its_pickle_on(make_fixture, canary: Path) -> None:  # type: ignore[no-untyped-def]
    output = run("numpy", make_fixture("npy_object_payload"))
    (fact,) = output.of_kind("numpy.array")
    assert fact.attrs["object"] is True
    (child,) = output.children
    assert child.format_hint == "pickle" and child.source.read(0, 3) == b"cos"
    assert not canary.exists()


def test_numpy_numeric_tensor_ref(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = run("numpy", make_fixture("npy_clean"), want_tensors=True)
    (ref,) = output.tensors
    values = numpy.frombuffer(ref.source.read(0, ref.source.size), dtype=ref.dtype)
    numpy.testing.assert_array_equal(values.reshape(ref.shape),
                                     numpy.array([[0.5, 1, 1.5], [2, 2.5, 3]], dtype="<f4"))
    assert next(output.of_kind("numpy.array")).attrs["object"] is False


def test_numpy_written_by_numpy(tmp_path: Path) -> None:
    numpy.save(tmp_path / "f.npy", numpy.asfortranarray(numpy.ones((2, 3), dtype=">i4")))
    output = run("numpy", tmp_path / "f.npy", want_tensors=True)
    assert next(output.of_kind("numpy.array")).attrs["fortran_order"] is True
    assert output.tensors == [] and list(output.of_kind("numpy.tensor_skipped"))


def test_numpy_truncated(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = run("numpy", make_fixture("npy_truncated"))
    assert "truncated" in next(output.of_kind("parse.error")).attrs["error"]


@pytest.mark.parametrize("text", [
    "{'descr': __import__('os').system('id'), 'fortran_order': False, 'shape': ()}",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
    "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}",
    "{'descr': '<f4', 'shape': ()}",
    "[" * 100 + "]" * 100,
    "{'descr': '<f4', 'fortran_order': False, 'shape': (",
    "",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), } extra",
])
def test_header_parser_rejects_what_is_not_a_plain_header(text: str) -> None:
    with pytest.raises(HeaderError):
        parse_header(text)


def test_header_parser_accepts_structured_descr() -> None:
    header = parse_header("{'descr': [('a', '<i4'), ('b', '|O', (2,))], 'fortran_order': False,"
                          " 'shape': (3,), }")
    assert header["descr"] == [("a", "<i4"), ("b", "|O", (2,))]
    assert header["shape"] == (3,)


def test_npz_members_are_scanned(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("npz_clean")
    result = scan([path], Config(), root=path.parent)
    formats = {a.name: a.format for a in result.artifacts}
    assert formats == {"arrays.npz": "npz", "arrays.npz!a.npy": "numpy",
                       "arrays.npz!b.npy": "numpy"}


SEEDS = {
    "zip": zip_bytes(torch_records("archive", plain_data_pickle(), {"0": bytes(32)})),
    "numpy": npy_bytes("<f4", (2,), bytes(8)),
    "gzip": gzip.compress(plain_data_pickle(), mtime=0),
    "zlib": zlib.compress(plain_data_pickle()),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(fmt=st.sampled_from(sorted(SEEDS)), data=st.data())
def test_mutated_containers_never_crash(fmt: str, data: st.DataObject) -> None:
    seed = bytearray(SEEDS[fmt])
    for _ in range(data.draw(st.integers(1, 6))):
        position = data.draw(st.integers(0, len(seed) - 1))
        seed[position] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(len(seed) // 2, len(seed)))
    parser = parser_for(fmt)
    assert parser is not None
    output = parser(Artifact(("m",), MemorySource(bytes(seed[:cut]))), ParseContext())
    assert isinstance(output, ParseOutput)


def test_tar_parser_never_crashes_on_mutations(make_fixture) -> None:  # type: ignore[no-untyped-def]
    original = make_fixture("torch_tar_legacy").read_bytes()
    for position in range(0, 1536, 7):
        mutated = bytearray(original)
        mutated[position] ^= 0xFF
        output = parse_tar(Artifact(("t",), MemorySource(bytes(mutated))), ParseContext())
        assert isinstance(output, ParseOutput)


def test_no_canary_after_scanning_every_container_fixture(make_fixture, canary: Path) -> None:  # type: ignore[no-untyped-def]
    from fixtures.containers import FIXTURES

    for fixture in FIXTURES:
        if fixture.available() and fixture.name != "zip_bomb":
            path = make_fixture(fixture.name)
            scan([path], Config(), root=path.parent)
    assert not canary.exists()


def test_number_fields_in_tar_headers() -> None:
    from ckptguard.formats.tar_reader import TarError
    from ckptguard.formats.tar_reader import number as _number

    assert _number(b"0000644\x00", 0) == 0o644
    assert _number(b"\x80" + (5).to_bytes(11, "big"), 0) == 5
    with pytest.raises(TarError):
        _number(b"12x4", 0)
    assert struct.calcsize("<I") == 4


def test_raw_pickle_under_bin_name_goes_to_the_pickle_engine(make_fixture, canary: Path) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("pickle_named_bin")
    result = scan([path], Config(), root=path.parent)
    assert {a.name: a.format for a in result.artifacts}["pytorch_model.bin"] == "pickle"
    assert not canary.exists()


def test_zip_appended_to_a_pickle_is_a_polyglot(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(plain_data_pickle() + zip_bytes([("archive/data.pkl", b"x")]))
    result = scan([path], Config(), root=tmp_path)
    assert "FMT003" in {f.rule_id for f in result.findings}
