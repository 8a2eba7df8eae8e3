"""The ONNX wire decoder (no ``onnx`` import on the scan path) against the ``onnx`` package's own
protobuf classes, on every ONNX fixture; and the scan path importing no ``onnx``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ckptguard.formats.onnx_proto import EXTERNAL, Graph, WireError, parse_model
from fixtures.registry import all_fixtures

ROOT = Path(__file__).resolve().parent.parent
ONNX_FIXTURES = sorted(name for name in all_fixtures() if name.startswith("onnx_")
                       and name != "onnx_truncated")
onnx = pytest.importorskip("onnx")


def _graph_summary(ours: Graph, theirs: Any) -> Any:
    nodes = [(n.name, n.op_type, n.domain, [a.name for a in n.attribute]) for n in ours.node]
    expected = [(n.name, n.op_type, n.domain, [a.name for a in n.attribute]) for n in theirs.node]
    assert nodes == expected
    for tensor, other in zip(ours.initializer, theirs.initializer, strict=True):
        assert (tensor.name, tensor.dims, tensor.data_type, tensor.data_location == EXTERNAL) == \
            (other.name, list(other.dims), other.data_type,
             other.data_location == onnx.TensorProto.EXTERNAL)
        assert [(e.key, e.value) for e in tensor.external_data] == \
            [(e.key, e.value) for e in other.external_data]
    for node, other in zip(ours.node, theirs.node, strict=True):
        for attr, other_attr in zip(node.attribute, other.attribute, strict=True):
            if other_attr.HasField("g"):
                assert attr.g is not None
                _graph_summary(attr.g, other_attr.g)
            assert len(attr.graphs) == len(other_attr.graphs)


@pytest.mark.parametrize("name", ONNX_FIXTURES)
def test_decoder_agrees_with_the_onnx_package(name: str, make_fixture: Any) -> None:
    path: Path = make_fixture(name)
    data = path.read_bytes()
    theirs = onnx.ModelProto()
    theirs.ParseFromString(data)
    ours = parse_model(data, max_fields=len(data), max_depth=32)
    assert (ours.ir_version, ours.producer_name, ours.producer_version, ours.domain,
            ours.model_version) == (theirs.ir_version, theirs.producer_name,
                                    theirs.producer_version, theirs.domain,
                                    theirs.model_version)
    assert ours.opset_import == [(o.domain, o.version) for o in theirs.opset_import]
    assert [(p.key, p.value) for p in ours.metadata_props] == \
        [(p.key, p.value) for p in theirs.metadata_props]
    assert [(f.domain, f.name) for f in ours.functions] == \
        [(f.domain, f.name) for f in theirs.functions]
    assert ours.graph is not None
    _graph_summary(ours.graph, theirs.graph)


def test_truncated_and_malformed_bytes_are_wire_errors(make_fixture: Any) -> None:
    data = make_fixture("onnx_truncated").read_bytes()
    with pytest.raises(WireError):
        parse_model(data, max_fields=len(data), max_depth=32)
    with pytest.raises(WireError):
        parse_model(b"\x0a\xff\xff\xff\xff\x0f", max_fields=10, max_depth=4)


def test_non_utf8_metadata_keeps_the_rest_of_the_file() -> None:
    model = onnx.helper.make_model(onnx.helper.make_graph([], "g", [], []))
    entry = model.metadata_props.add()
    entry.key, entry.value = "license", "mit"
    data = model.SerializeToString().replace(b"license", b"licen\xffe")
    ours = parse_model(data, max_fields=len(data), max_depth=4)
    assert ours.metadata_props[0].key == "licen\\xffe" and ours.graph is not None


def test_scanning_onnx_imports_no_onnx(make_fixture: Any) -> None:
    path: Path = make_fixture("onnx_custom_domain")
    code = ("import sys; from ckptguard.api import scan; r = scan([sys.argv[1]]); "
            "assert any(f.rule_id.startswith('ONX') for f in r.findings), r.findings; "
            "print(sorted(m for m in sys.modules if m == 'onnx' or m.startswith('onnx.')))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, check=True, timeout=120, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.stdout.strip() == "[]", done.stdout
