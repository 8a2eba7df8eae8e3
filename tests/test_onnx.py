"""ONNX parser: facts from good models, findings (never crashes) from bad ones, and the
external-data path logic."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.onnx_external import (
    ABSOLUTE,
    BAD_FIELD,
    MISSING,
    OK,
    OUT_OF_RANGE,
    SYMLINK_ESCAPE,
    TRAVERSAL,
    UNCHECKED,
    ExternalRef,
    external_ref,
    judge,
)
from ckptguard.formats.onnx_fmt import MAX_GRAPH_DEPTH, parse
from ckptguard.sniff import magic_format
from ckptguard.source import FileSource, MemorySource

onnx = pytest.importorskip("onnx")


def _parse_file(path: Path, want_tensors: bool = False) -> ParseOutput:
    return parse(Artifact((path.name,), FileSource(str(path))),
                 ParseContext(want_tensors=want_tensors))


def _parse_bytes(data: bytes) -> ParseOutput:
    return parse(Artifact(("m.onnx",), MemorySource(data)), ParseContext())


def _kinds(output: ParseOutput) -> list[str]:
    return [f.kind for f in output.facts]


@pytest.mark.parametrize(("location", "problem"), [
    ("/etc/passwd", ABSOLUTE), ("C:\\Windows\\win.ini", ABSOLUTE), ("~/.ssh/id_rsa", ABSOLUTE),
    ("../../etc/passwd", TRAVERSAL), ("a/../../b", TRAVERSAL), ("a\\..\\..\\b", TRAVERSAL),
    ("a/../b", TRAVERSAL), ("", BAD_FIELD), ("x\0y", BAD_FIELD)])
def test_path_text_verdicts(location: str, problem: str, tmp_path: Path) -> None:
    assert judge(ExternalRef("t", location, 0, 4), str(tmp_path)).problem == problem


def test_symlink_escape_missing_range_and_ok(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "secret").write_bytes(b"x" * 16)
    os.symlink(tmp_path / "secret", model_dir / "link.data")
    (model_dir / "w.data").write_bytes(b"\0" * 16)
    where = str(model_dir)
    assert judge(ExternalRef("t", "link.data", 0, 4), where).problem == SYMLINK_ESCAPE
    assert judge(ExternalRef("t", "gone.data", 0, 4), where).problem == MISSING
    assert judge(ExternalRef("t", "w.data", 8, 16), where).problem == OUT_OF_RANGE
    assert judge(ExternalRef("t", "w.data", 20, None), where).problem == OUT_OF_RANGE
    assert judge(ExternalRef("t", "w.data", 0, 16), where).problem == OK
    assert judge(ExternalRef("t", "w.data", 0, 16), None).problem == UNCHECKED
    assert judge(ExternalRef("t", "/abs", 0, 16), None).problem == ABSOLUTE


def test_symlinked_folder_inside_is_fine(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    (model_dir / "real").mkdir(parents=True)
    (model_dir / "real" / "w.data").write_bytes(b"\0" * 8)
    os.symlink(model_dir / "real", model_dir / "alias")
    assert judge(ExternalRef("t", "alias/w.data", 0, 8), str(model_dir)).problem == OK


def test_non_numeric_offset_is_bad_field(tmp_path: Path) -> None:
    ref = external_ref("t", {"location": "w.data", "offset": "-5", "length": "abc"})
    assert ref.offset == -1 and ref.length == -1
    assert judge(ref, str(tmp_path)).problem == BAD_FIELD


def test_clean_model_facts_and_tensors(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = _parse_file(make_fixture("onnx_clean_mlp"), want_tensors=True)
    model = next(output.of_kind("onnx.model"))
    assert model.attrs["producer_name"] == "ckptguard-fixtures"
    assert model.attrs["nodes"] == 3
    lic = next(output.of_kind("metadata.license"))
    assert lic.attrs["value"] == "apache-2.0"
    assert lic.attrs["source"] == "onnx:metadata_props.license"
    assert not list(output.of_kind("onnx.custom_op"))
    tensors = {t.name: t for t in output.tensors}
    assert set(tensors) == {"w1", "b1"}
    assert tensors["w1"].dtype == "float32" and tensors["w1"].shape == (2, 2)
    assert isinstance(tensors["w1"].source, FileSource)
    assert tensors["w1"].source.read(0, 16) == bytes(
        onnx.numpy_helper.to_array(onnx.helper.make_tensor(
            "w", onnx.TensorProto.FLOAT, [2, 2], [0.5, -0.25, 1.0, 0.75])).tobytes())


def test_custom_op_inside_if_branch_is_found(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = _parse_file(make_fixture("onnx_custom_in_if"))
    ops = list(output.of_kind("onnx.custom_op"))
    assert [(f.attrs["domain"], f.attrs["op_type"]) for f in ops] == [("org.evil", "Backdoor")]
    assert "else_branch" in ops[0].attrs["graph"]


def test_local_function_and_contrib_domain_are_not_custom() -> None:
    helper, tp = onnx.helper, onnx.TensorProto
    function = helper.make_function("my.fn", "Twice", ["a"], ["b"],
                                    [helper.make_node("Add", ["a", "a"], ["b"])],
                                    [helper.make_opsetid("", 17)])
    graph = helper.make_graph(
        [helper.make_node("Twice", ["x"], ["y"], domain="my.fn"),
         helper.make_node("FastGelu", ["y"], ["z"], domain="com.microsoft")],
        "g", [helper.make_tensor_value_info("x", tp.FLOAT, [1])],
        [helper.make_tensor_value_info("z", tp.FLOAT, [1])])
    model = helper.make_model(graph, functions=[function],
                              opset_imports=[helper.make_opsetid("", 17),
                                             helper.make_opsetid("my.fn", 1),
                                             helper.make_opsetid("com.microsoft", 1)])
    output = _parse_bytes(model.SerializeToString())
    assert not list(output.of_kind("onnx.custom_op"))
    assert [f.attrs["domain"] for f in output.of_kind("onnx.op_domain")] == ["com.microsoft"]


def test_custom_op_inside_function_is_found() -> None:
    helper, tp = onnx.helper, onnx.TensorProto
    function = helper.make_function("my.fn", "Wrap", ["a"], ["b"],
                                    [helper.make_node("Evil", ["a"], ["b"], domain="x.y")],
                                    [helper.make_opsetid("x.y", 1)])
    graph = helper.make_graph([helper.make_node("Wrap", ["x"], ["y"], domain="my.fn")], "g",
                              [helper.make_tensor_value_info("x", tp.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", tp.FLOAT, [1])])
    model = helper.make_model(graph, functions=[function])
    output = _parse_bytes(model.SerializeToString())
    assert [f.attrs["op_type"] for f in output.of_kind("onnx.custom_op")] == ["Evil"]


def _nested_if(depth: int) -> bytes:
    """Serialised by hand: each level is a graph holding one If node whose then_branch is the
    level below (onnx.helper refuses to build what the protobuf decoder would refuse)."""
    def message(field: int, payload: bytes) -> bytes:
        size, length = bytearray(), len(payload)
        while True:
            size.append((length & 0x7F) | (0x80 if length > 0x7F else 0))
            length >>= 7
            if not length:
                break
        return bytes([field << 3 | 2]) + bytes(size) + payload

    graph = message(1, message(4, b"Identity"))  # GraphProto.node{op_type}
    for _ in range(depth):
        attribute = message(1, b"then_branch") + b"\xa0\x01\x05" + message(6, graph)
        graph = message(1, message(4, b"If") + message(5, attribute))
    return bytes([1 << 3, 8]) + message(7, graph)


def test_deep_subgraph_nesting_is_a_limit_not_a_crash() -> None:
    assert "limit.hit" not in _kinds(_parse_bytes(_nested_if(MAX_GRAPH_DEPTH - 1)))
    assert "limit.hit" in _kinds(_parse_bytes(_nested_if(MAX_GRAPH_DEPTH + 2)))
    # Deeper than protobuf's own nesting bound: the decoder refuses it.
    assert _kinds(_parse_bytes(_nested_if(60))) == ["parse.error"]


@pytest.mark.parametrize("data", [b"", b"\x08\x07\xff\xff\xff", b"not a protobuf at all",
                                  bytes(range(256)) * 4, b"\x08\x07"])
def test_malformed_input_is_a_parse_error(data: bytes) -> None:
    output = _parse_bytes(data)
    assert [f.kind for f in output.facts] == ["parse.error"]
    assert output.facts[0].attrs["format"] == "onnx"


def test_random_bytes_named_onnx_go_to_the_parser() -> None:
    assert magic_format(b"\xff\x00garbage", 9, "model.onnx") == ["onnx"]
    assert magic_format(b"\x08\x07\x72\x05", 4, "model") == ["onnx"]


def test_archive_member_external_data_is_judged_by_text_only() -> None:
    helper, tp = onnx.helper, onnx.TensorProto
    tensor = tp()
    tensor.name, tensor.data_type, tensor.data_location = "w", tp.FLOAT, tp.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "w.data"
    graph = helper.make_graph([], "g", [], [], [tensor])
    output = _parse_bytes(helper.make_model(graph).SerializeToString())
    fact = next(output.of_kind("onnx.external_data"))
    assert fact.attrs["problem"] == UNCHECKED


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=512))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    output = _parse_bytes(data)
    assert all(f.kind in {"parse.error", "onnx.model", "onnx.metadata", "metadata.license",
                          "onnx.custom_op", "onnx.op_domain", "onnx.external_data",
                          "limit.hit"} for f in output.facts)


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_truncated_models_never_crash(cut: int) -> None:
    data = _nested_if(3)
    _parse_bytes(data[: cut % (len(data) + 1)])
