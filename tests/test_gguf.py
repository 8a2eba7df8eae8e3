"""The GGUF parser: bounded counts and lengths, tensor layout, metadata and chat templates."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.formats import ParseContext
from ckptguard.limits import Limits
from ckptguard.model import Severity
from fixtures._binary_writers import gguf_file
from fixtures.formats_a import GGUF_KVS, Q8_BLOCK
from tests._format_a_helpers import CountingSource, parse_bytes, parse_file, problems, scan_path

F32x4 = struct.pack("<4f", 1, 2, 3, 4)
VALID = gguf_file(GGUF_KVS, [("a", (4,), 0, F32x4), ("q", (32,), 8, Q8_BLOCK)])


def test_valid_file_facts() -> None:
    output = parse_bytes("m.gguf", VALID)
    header = next(output.of_kind("gguf.header"))
    assert header.attrs["version"] == 3 and header.attrs["tensors"] == 2
    assert header.attrs["architecture"] == "llama"
    (lic,) = output.of_kind("metadata.license")
    assert lic.attrs["source"] == "gguf:general.license" and lic.attrs["value"] == "apache-2.0"
    base = {(f.attrs["index"], f.attrs["field"]): f.attrs["value"]
            for f in output.of_kind("metadata.base_model")}
    assert base[(0, "name")] == "Base Model"
    tokens = [f for f in output.of_kind("gguf.metadata")
              if f.attrs["key"] == "tokenizer.ggml.tokens"]
    assert tokens[0].attrs["count"] == 4 and tokens[0].attrs["element_type"] == "string"
    origins = {f.attrs["origin"] for f in output.of_kind("template.summary")}
    assert origins == {"gguf:tokenizer.chat_template", "gguf:tokenizer.chat_template.tool_use"}
    assert not list(output.of_kind("gguf.violation"))


def test_valid_fixture_scans_clean(make_fixture) -> None:  # type: ignore[no-untyped-def]
    assert not scan_path(make_fixture("gguf_valid")).at_or_above(Severity.LOW)


def test_impossible_count_is_refused_before_reading() -> None:
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 2**62) + bytes(40)
    source = CountingSource(data)
    output = parse_bytes("m.gguf", source)
    assert problems(output, "gguf.violation") == {"impossible-count"}
    assert max(length for _, length in source.requested) <= 1 << 20


def test_oversize_array_is_refused() -> None:
    kv = struct.pack("<Q", 3) + b"arr" + struct.pack("<IIQ", 9, 8, 2**50)
    output = parse_bytes("m.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv + bytes(16))
    assert problems(output, "gguf.violation") == {"impossible-count"}


def test_deeply_nested_arrays_are_bounded() -> None:
    nested = b""
    for _ in range(12):
        nested = struct.pack("<IQ", 9, 1) + nested
    kv = struct.pack("<Q", 1) + b"x" + struct.pack("<I", 9) + nested + struct.pack("<IQ", 4, 0)
    output = parse_bytes("m.gguf", b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + kv)
    assert problems(output, "gguf.violation") == {"nesting"}


def test_version_1_uses_32_bit_counts() -> None:
    key, value = b"general.name", b"v1"
    kv = struct.pack("<I", len(key)) + key + struct.pack("<II", 8, len(value)) + value
    output = parse_bytes("m.gguf", b"GGUF" + struct.pack("<III", 1, 0, 1) + kv)
    assert next(output.of_kind("gguf.header")).attrs["name"] == "v1"
    assert not list(output.of_kind("gguf.violation"))


def test_bad_alignment_and_unknown_version() -> None:
    kvs = [("general.alignment", "u32", 24)]
    output = parse_bytes("m.gguf", gguf_file(kvs, []))
    assert problems(output, "gguf.violation") == {"alignment"}
    output = parse_bytes("m.gguf", b"GGUF" + struct.pack("<IQQ", 9, 0, 0))
    assert problems(output, "gguf.violation") == {"version"}


def test_tensor_refs_for_plain_types_only() -> None:
    output = parse_bytes("m.gguf", VALID, ParseContext(want_tensors=True))
    (ref,) = output.tensors
    assert ref.name == "a" and ref.dtype == "float32"
    assert ref.source.read(0, 16) == F32x4


def test_ssti_template_fires_template_rules(make_fixture) -> None:  # type: ignore[no-untyped-def]
    result = scan_path(make_fixture("gguf_ssti_template"))
    hits = {f.rule_id: f for f in result.findings}
    assert {"TPL001", "TPL002", "TPL003"} <= set(hits)
    assert hits["TPL001"].severity == Severity.CRITICAL
    assert hits["TPL001"].location.key == "tokenizer.chat_template"
    assert "__globals__" in hits["TPL001"].message or "__init__" in hits["TPL001"].message


def test_layout_violations(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("gguf_misaligned"))
    assert {"tensor-offset", "tensor-overlap"} <= problems(output, "gguf.violation")


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=len(VALID) - 1), st.binary(max_size=16))
def test_truncated_or_corrupted_files_are_findings_not_crashes(cut: int, noise: bytes) -> None:
    data = VALID[:cut] + noise
    output = parse_bytes("m.gguf", data, fmt="gguf")
    kinds = {f.kind for f in output.facts}
    assert kinds & {"gguf.violation", "gguf.header", "limit.hit"}


def test_template_over_the_text_limit_is_a_limit_hit() -> None:
    data = gguf_file([("tokenizer.chat_template", "str", "{{ x }}" * 200)], [])
    output = parse_bytes("m.gguf", data, ParseContext(limits=Limits(max_text_file_bytes=100)))
    (hit,) = output.of_kind("limit.hit")
    assert hit.attrs["value"] == "tokenizer.chat_template"
    assert not list(output.of_kind("template.summary"))


def test_appended_pickle_is_a_polyglot_scanned_as_a_member(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fixtures.basic_formats import plain_data_pickle

    path = tmp_path / "model.gguf"
    path.write_bytes(VALID + plain_data_pickle())
    output = parse_file(path)
    (poly,) = output.of_kind("format.polyglot")
    assert poly.attrs["formats"] == ("gguf", "pickle")
    assert output.children[0].source.read(0, 2) == b"\x80\x02"
    result = scan_path(path)
    assert "FMT003" in {f.rule_id for f in result.findings}
    assert not list(parse_bytes("m.gguf", VALID).of_kind("format.polyglot"))


def test_metadata_facts_are_capped_but_licenses_and_templates_are_not(  # type: ignore[no-untyped-def]
        monkeypatch) -> None:
    from ckptguard.formats import gguf as gguf_module

    monkeypatch.setattr(gguf_module, "MAX_METADATA_FACTS", 2)
    output = parse_bytes("m.gguf", VALID)
    assert len(list(output.of_kind("gguf.metadata"))) == 2
    assert len(list(output.of_kind("metadata.license"))) == 1
    assert len(list(output.of_kind("template.summary"))) == 2
