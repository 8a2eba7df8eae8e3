"""SavedModel / GraphDef / keras_metadata.pb: ops with their saver context, Lambda layers,
bounded protobuf reading."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.formats.protobuf_wire import Budget, WireError, fields
from ckptguard.model import Severity
from fixtures._binary_writers import pb_bytes, tf_node
from fixtures.formats_a import _tf2_model
from tests._format_a_helpers import parse_bytes, parse_file, scan_path

CLEAN = _tf2_model([])


def ops(output: object) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for fact in output.of_kind("savedmodel.op"):  # type: ignore[attr-defined]
        found.setdefault(fact.attrs["op"], set()).add(fact.attrs["context"])
    return found


def test_tf2_saver_ops_are_in_saver_context() -> None:
    found = ops(parse_bytes("saved_model.pb", CLEAN))
    assert found["SaveV2"] == {"saver"} and found["RestoreV2"] == {"saver"}
    assert found["MergeV2Checkpoints"] == {"saver"}
    assert found["MatMul"] == {"function"}
    assert found["StatefulPartitionedCall"] == {"graph", "saver"}


def test_clean_models_are_clean_at_the_default_gate(make_fixture) -> None:  # type: ignore[no-untyped-def]
    for name in ("savedmodel_tf2_clean", "savedmodel_tf1_clean"):
        result = scan_path(make_fixture(name))
        assert not result.at_or_above(Severity.LOW), [f.message for f in result.findings]
        assert {f.rule_id for f in result.findings} == {"SVM004"}


def test_saver_function_also_called_from_serving_is_not_saver() -> None:
    shared = _tf2_model([], [tf_node("evil", "StatefulPartitionedCall",
                                     "__inference__traced_save_211")])
    assert "function" in ops(parse_bytes("saved_model.pb", shared))["SaveV2"]


def test_python_callbacks_are_critical(make_fixture) -> None:  # type: ignore[no-untyped-def]
    result = scan_path(make_fixture("savedmodel_pyfunc"))
    critical = result.at_or_above(Severity.CRITICAL)
    assert sorted(f.message.split(" through ")[1].split(" ")[0] for f in critical) == \
        ["EagerPyFunc", "PyFunc"]
    assert {f.rule_id for f in critical} == {"SVM001"}


def test_file_ops_and_save_outside_saver(make_fixture) -> None:  # type: ignore[no-untyped-def]
    rules = {f.rule_id for f in scan_path(make_fixture("savedmodel_readfile")).findings}
    assert "SVM002" in rules
    result = scan_path(make_fixture("savedmodel_save_in_serving"))
    (outside,) = [f for f in result.findings if f.rule_id == "SVM003"]
    assert "SaveV2" in outside.message and outside.severity == Severity.HIGH


def test_frozen_graphdef_is_read() -> None:
    graph = pb_bytes(1, tf_node("x", "Placeholder")) + pb_bytes(1, tf_node("r", "ReadFile"))
    output = parse_bytes("frozen_graph.pb", graph)
    assert next(output.of_kind("savedmodel.header")).attrs["container"] == "GraphDef"
    assert ops(output)["ReadFile"] == {"graph"}


def test_keras_lambda_layer(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = parse_file(make_fixture("keras_metadata_lambda"))
    (layer,) = output.of_kind("savedmodel.keras_layer")
    assert layer.attrs["class_name"] == "Lambda" and layer.attrs["example"] == "layer_1"


def test_wire_reader_rejects_overlong_lengths_and_groups() -> None:
    for bad in (b"\x0a\xff\xff\xff\xff\x0f", b"\x0b", b"\x08" + b"\xff" * 11):
        try:
            list(fields(bad, 0, len(bad), Budget(100)))
        except WireError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_field_budget_becomes_a_limit_hit() -> None:
    from ckptguard.formats import savedmodel

    original = savedmodel.MAX_FIELDS
    try:
        savedmodel.MAX_FIELDS = 10
        output = parse_bytes("saved_model.pb", CLEAN)
    finally:
        savedmodel.MAX_FIELDS = original
    assert [f.attrs["limit"] for f in output.of_kind("limit.hit")] == ["protobuf fields"]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=len(CLEAN)), st.binary(max_size=8))
def test_corruption_is_a_fact_not_a_crash(cut: int, noise: bytes) -> None:
    output = parse_bytes("saved_model.pb", CLEAN[:cut] + noise, fmt="savedmodel")
    assert {f.kind for f in output.facts} & {"savedmodel.violation", "savedmodel.header",
                                             "limit.hit"}


def test_too_many_distinct_ops_is_a_limit_hit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ckptguard.formats import savedmodel

    monkeypatch.setattr(savedmodel, "MAX_OP_FACTS", 3)
    output = parse_bytes("saved_model.pb", CLEAN)
    assert len(list(output.of_kind("savedmodel.op"))) == 3
    assert [f.attrs["limit"] for f in output.of_kind("limit.hit")] == ["distinct ops"]
