"""The TFLite parser: operator codes, custom and Flex ops, bounds, metadata."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.model import Severity
from fixtures.formats_a import ADD, _custom, _tflite_model
from tests._format_a_helpers import parse_bytes, problems, scan_path

VALID = _tflite_model([ADD, _custom("TFLite_Detection_PostProcess")], license_text="MIT")


def test_model_summary_ops_and_metadata() -> None:
    output = parse_bytes("m.tflite", VALID)
    header = next(output.of_kind("tflite.header"))
    assert header.attrs["version"] == 3 and header.attrs["operator_codes"] == 2
    assert header.attrs["tensors"] == 2 and header.attrs["operators"] == 1
    assert header.attrs["buffers"] == 4
    ops = {f.attrs["name"]: f.attrs["custom"] for f in output.of_kind("tflite.op")}
    assert ops == {"builtin:0": False, "TFLite_Detection_PostProcess": True}
    meta = {f.attrs["name"]: f.attrs["value"] for f in output.of_kind("tflite.metadata")}
    assert meta["min_runtime_version"] == "1.14.0" and "TFLITE_METADATA" in meta
    (lic,) = output.of_kind("metadata.license")
    assert lic.attrs["value"] == "MIT"
    assert not list(output.of_kind("tflite.violation"))


def test_custom_op_is_medium_with_its_name(make_fixture) -> None:  # type: ignore[no-untyped-def]
    result = scan_path(make_fixture("tflite_custom_op"))
    (custom,) = [f for f in result.findings if f.rule_id == "TFL001"]
    assert custom.severity == Severity.MEDIUM and "MyDetectionPostprocess" in custom.message
    assert not result.at_or_above(Severity.HIGH)


def test_flex_file_op_is_high(make_fixture) -> None:  # type: ignore[no-untyped-def]
    result = scan_path(make_fixture("tflite_flex_readfile"))
    assert [f.rule_id for f in result.at_or_above(Severity.HIGH)] == ["TFL003"]


def test_builtin_model_is_clean(make_fixture) -> None:  # type: ignore[no-untyped-def]
    assert not scan_path(make_fixture("tflite_builtin")).at_or_above(Severity.LOW)


def test_bad_identifier() -> None:
    data = bytearray(VALID)
    data[4:8] = b"TFL9"
    output = parse_bytes("m.tflite", bytes(data), fmt="tflite")
    assert problems(output, "tflite.violation") == {"identifier"}


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=8, max_value=len(VALID)), st.integers(min_value=8),
       st.binary(min_size=1, max_size=4))
def test_corruption_is_a_fact_not_a_crash(cut: int, where: int, noise: bytes) -> None:
    data = bytearray(VALID[:cut])
    at = where % len(data)
    data[at:at + len(noise)] = noise
    output = parse_bytes("m.tflite", bytes(data), fmt="tflite")
    assert {f.kind for f in output.facts} & {"tflite.violation", "tflite.header", "limit.hit"}
