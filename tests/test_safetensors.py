"""The safetensors parser: bounded header reading, validation, licenses, tensors, polyglots."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.formats import ParseContext
from ckptguard.formats.safetensors_fmt import DTYPE_BITS, check_entry, decode_header
from ckptguard.limits import Limits
from ckptguard.model import Severity
from fixtures.basic_formats import safetensors_bytes
from tests._format_a_helpers import CountingSource, parse_bytes, parse_file, problems, scan_path

VALID = safetensors_bytes({"w": ("F32", (2, 2), struct.pack("<4f", 1, 2, 3, 4)),
                           "b": ("I8", (3,), b"\x01\x02\x03")}, {"license": "mit"})


def test_library_file_is_clean_and_summarised(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("st_valid_library")
    output = parse_file(path)
    header = next(output.of_kind("safetensors.header"))
    assert header.attrs["tensors"] == 3
    assert header.attrs["dtypes"] == ("BOOL", "F16", "F32")
    assert header.attrs["metadata"]["format"] == "pt"
    assert not list(output.of_kind("safetensors.violation"))
    assert not scan_path(path).at_or_above(Severity.LOW)


def test_license_metadata_becomes_a_license_fact() -> None:
    output = parse_bytes("m.safetensors", VALID)
    (fact,) = output.of_kind("metadata.license")
    assert fact.attrs == {"value": "mit", "source": "safetensors:__metadata__.license",
                          "key": "license"}


def test_huge_header_length_reads_only_the_length() -> None:
    source = CountingSource(struct.pack("<Q", 2**62) + b'{"a": 1}' + bytes(100))
    output = parse_bytes("m.safetensors", source)
    assert problems(output, "safetensors.violation") == {"header-length"}
    assert all(length <= 4096 for _, length in source.requested)


def test_header_over_the_limit_is_a_limit_hit_not_a_read() -> None:
    source = CountingSource(VALID)
    output = parse_bytes("m.safetensors", source, ParseContext(limits=Limits(max_header_bytes=16)))
    (hit,) = output.of_kind("limit.hit")
    assert hit.attrs["limit"] == "max_header_bytes"
    assert all(offset == 0 for offset, _ in source.requested)


def test_tensor_refs_point_at_exact_bytes() -> None:
    output = parse_bytes("m.safetensors", VALID, ParseContext(want_tensors=True))
    refs = {t.name: t for t in output.tensors}
    data = refs["w"].source.read(0, refs["w"].source.size)
    assert np.frombuffer(data, dtype=np.float32).tolist() == [1, 2, 3, 4]
    assert refs["w"].shape == (2, 2) and refs["b"].dtype == "int8"
    assert not parse_bytes("m.safetensors", VALID).tensors


def test_duplicate_keys_are_found_at_any_depth() -> None:
    _, duplicates = decode_header(b'{"a": {"x": 1, "x": 2}, "b": 1}')
    assert duplicates == ["x"]


def test_sub_byte_dtypes_must_fill_whole_bytes() -> None:
    assert DTYPE_BITS["F4"] == 4
    ok = check_entry("t", {"dtype": "F4", "shape": [4], "data_offsets": [0, 2]})
    odd = check_entry("t", {"dtype": "F4", "shape": [3], "data_offsets": [0, 2]})
    assert getattr(ok, "dtype", None) == "F4"
    assert getattr(odd, "problem", None) == "size-mismatch"


def test_booleans_are_not_dimensions() -> None:
    result = check_entry("t", {"dtype": "U8", "shape": [True], "data_offsets": [0, 1]})
    assert getattr(result, "problem", None) == "shape"


def test_appended_pickle_is_a_polyglot_and_scanned_as_a_member(  # type: ignore[no-untyped-def]
        make_fixture) -> None:
    path = make_fixture("st_trailing_pickle")
    output = parse_file(path)
    (poly,) = output.of_kind("format.polyglot")
    assert poly.attrs["formats"] == ("safetensors", "pickle")
    (child,) = output.children
    assert child.source.read(0, 2) == b"\x80\x02"
    result = scan_path(path)
    assert {"FMT003", "SFT006"} <= {f.rule_id for f in result.findings}
    assert any(a.format == "pickle" for a in result.artifacts)


def test_zip_polyglot_fixture_fires_through_the_parser(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("safetensors_zip_polyglot"))
    assert "zip" in next(output.of_kind("format.polyglot")).attrs["formats"]


def test_messages_say_what_and_where(make_fixture) -> None:  # type: ignore[no-untyped-def]
    result = scan_path(make_fixture("st_overlap"))
    (overlap,) = [f for f in result.findings if f.rule_id == "SFT004"]
    assert "overlap" in overlap.message and overlap.location.tensor == "b"
    assert overlap.severity == Severity.HIGH


def test_pickle_named_safetensors_is_not_parsed_as_safetensors(  # type: ignore[no-untyped-def]
        make_fixture) -> None:
    result = scan_path(make_fixture("pickle_named_safetensors"))
    assert not any(f.rule_id.startswith("SFT") for f in result.findings)


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=200), st.integers(min_value=0, max_value=len(VALID)))
def test_any_corruption_is_a_fact_not_a_crash(noise: bytes, cut: int) -> None:
    data = VALID[:cut] + noise
    output = parse_bytes("m.safetensors", data, fmt="safetensors")
    judged = {f.kind for f in output.facts}
    assert judged & {"safetensors.violation", "safetensors.header", "limit.hit"}
    if data != VALID and "safetensors.violation" not in judged:
        header = json.loads(data[8:8 + struct.unpack("<Q", data[:8])[0]])
        assert isinstance(header, dict)


def test_many_bad_entries_cost_a_bounded_number_of_facts() -> None:
    header = {f"t{i}": {"dtype": "F128", "shape": [1], "data_offsets": [0, 0]}
              for i in range(5000)}
    raw = json.dumps(header).encode()
    output = parse_bytes("m.safetensors", struct.pack("<Q", len(raw)) + raw)
    dtype = [f for f in output.of_kind("safetensors.violation") if f.attrs["problem"] == "dtype"]
    assert len(dtype) == 100 and "not listed" in dtype[-1].attrs["detail"]


def test_torch_written_file_with_bf16_and_fp8_is_clean(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": torch.randn(8, 4).to(torch.bfloat16),
               "q": torch.zeros(16).to(torch.float8_e4m3fn),
               "i": torch.arange(5, dtype=torch.int64)}, str(path))
    output = parse_file(path)
    assert not list(output.of_kind("safetensors.violation"))
    assert next(output.of_kind("safetensors.header")).attrs["dtypes"] == ("BF16", "F8_E4M3",
                                                                          "I64")


def test_git_lfs_pointer_is_not_reported_as_a_broken_model(tmp_path: Path) -> None:
    path = tmp_path / "model.safetensors"
    path.write_text("version https://git-lfs.github.com/spec/v1\n"
                    "oid sha256:" + "0" * 64 + "\nsize 1234\n")
    result = scan_path(path)
    assert not any(f.rule_id.startswith("SFT") for f in result.findings)
    # Reported as what it is, at the gate (FMT006, high): a CI checkout without LFS content
    # must not pass a scan of pointers.
    assert {f.rule_id for f in result.findings} == {"FMT006"}
    assert result.at_or_above(Severity.HIGH)
    garbage = tmp_path / "other.safetensors"
    garbage.write_bytes(b"\x01" * 64)
    assert {f.rule_id for f in scan_path(garbage).findings} == {"SFT001"}
