"""The ONNX -> torch probe interpreter against onnx's reference evaluator, op by op, on small
graphs built with onnx.helper (the ops Hugging Face transformer exports use)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

RNG = np.random.default_rng(0)
_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.int64): TensorProto.INT64,
          np.dtype(np.bool_): TensorProto.BOOL}


def _model(path: Path, nodes: list[Any], x: np.ndarray, inits: dict[str, np.ndarray],
           opset: int) -> Path:
    graph = helper.make_graph(
        nodes, "ops", [helper.make_tensor_value_info("x", _TYPES[x.dtype], list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.UNDEFINED, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]),
              str(path))
    return path


def _check(tmp_path: Path, nodes: list[Any], x: np.ndarray,
           inits: dict[str, np.ndarray] | None = None, opset: int = 17) -> np.ndarray:
    from ckptguard.probes.onnx_graph import build_module

    path = _model(tmp_path / "m.onnx", nodes, x, inits or {}, opset)
    expected = ReferenceEvaluator(str(path)).run(None, {"x": x})[0]
    module, shape = build_module(path)
    assert shape == x.shape[1:]
    with torch.no_grad():
        got = module(torch.from_numpy(x)).numpy()
    assert got.shape == expected.shape
    if expected.dtype.kind == "f":
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    else:
        np.testing.assert_array_equal(got, expected)
    return got


def _floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def test_gather_picks_along_an_axis_with_negative_indices(tmp_path: Path) -> None:
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=1)
    _check(tmp_path, [node], _floats(2, 6, 3), {"i": np.array([[0, 2], [-1, 1]])})


def test_gather_is_an_embedding_lookup_of_token_ids(tmp_path: Path) -> None:
    node = helper.make_node("Gather", ["table", "x"], ["y"], axis=0)
    ids = np.array([[1, 4, 0, 9], [3, 3, 7, 2]], dtype=np.int64)
    got = _check(tmp_path, [node], ids, {"table": _floats(10, 5)})
    assert got.shape == (2, 4, 5)


def test_gather_elements(tmp_path: Path) -> None:
    node = helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1)
    _check(tmp_path, [node], _floats(3, 4), {"i": np.array([[0, 3], [-1, 1], [2, 2]])})


def test_layer_normalization_with_and_without_bias(tmp_path: Path) -> None:
    node = helper.make_node("LayerNormalization", ["x", "s", "b"], ["y"], axis=-1,
                            epsilon=1e-6)
    _check(tmp_path, [node], _floats(2, 3, 8), {"s": _floats(8), "b": _floats(8)})
    over_two = helper.make_node("LayerNormalization", ["x", "s"], ["y"], axis=1)
    _check(tmp_path, [over_two], _floats(2, 3, 4), {"s": _floats(3, 4)})


def test_erf_and_an_exact_gelu(tmp_path: Path) -> None:
    nodes = [helper.make_node("Div", ["x", "r2"], ["d"]),
             helper.make_node("Erf", ["d"], ["e"]),
             helper.make_node("Add", ["e", "one"], ["a"]),
             helper.make_node("Mul", ["x", "a"], ["m"]),
             helper.make_node("Mul", ["m", "half"], ["y"])]
    x = _floats(4, 6) * np.float32(3.0)
    got = _check(tmp_path, nodes, x, {"r2": np.array(np.sqrt(2.0), dtype=np.float32),
                                      "one": np.array(1.0, dtype=np.float32),
                                      "half": np.array(0.5, dtype=np.float32)})
    with torch.no_grad():
        np.testing.assert_allclose(got, torch.nn.functional.gelu(torch.from_numpy(x)).numpy(),
                                   rtol=1e-5, atol=1e-5)


def test_equal_on_token_ids(tmp_path: Path) -> None:
    node = helper.make_node("Equal", ["x", "pad"], ["y"])
    got = _check(tmp_path, [node], np.array([[0, 5, 0], [2, 0, 1]], dtype=np.int64),
                 {"pad": np.array(0, dtype=np.int64)})
    assert got.dtype == np.bool_ and int(got.sum()) == 3


def test_where_with_broadcasting(tmp_path: Path) -> None:
    node = helper.make_node("Where", ["c", "x", "other"], ["y"])
    _check(tmp_path, [node], _floats(2, 3, 4),
           {"c": RNG.random((3, 1)) > 0.5, "other": _floats(4)})


def test_an_attention_mask_chain(tmp_path: Path) -> None:
    """ids == pad -> Cast -> Unsqueeze (axes as input, opset 13+) -> Where(-1e4, 0)."""
    nodes = [helper.make_node("Equal", ["x", "pad"], ["eq"]),
             helper.make_node("Cast", ["eq"], ["c"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["c", "axes"], ["u"]),
             helper.make_node("Cast", ["u"], ["ub"], to=TensorProto.BOOL),
             helper.make_node("Where", ["ub", "neg", "zero"], ["y"])]
    ids = np.array([[4, 9, 0, 0], [1, 2, 3, 0]], dtype=np.int64)
    got = _check(tmp_path, nodes, ids, {"pad": np.array(0, dtype=np.int64),
                                        "axes": np.array([1, 2], dtype=np.int64),
                                        "neg": np.array(-1e4, dtype=np.float32),
                                        "zero": np.array(0.0, dtype=np.float32)})
    assert got.shape == (2, 1, 1, 4) and float(got.min()) == -1e4


def test_unsqueeze_and_squeeze_with_axes_as_attributes(tmp_path: Path) -> None:
    nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[0, -1]),
             helper.make_node("Squeeze", ["u"], ["y"], axes=[0])]
    _check(tmp_path, nodes, _floats(2, 3), opset=11)


def test_expand_broadcasts_both_ways(tmp_path: Path) -> None:
    node = helper.make_node("Expand", ["x", "shape"], ["y"])
    got = _check(tmp_path, [node], _floats(3, 1), {"shape": np.array([2, 1, 4])})
    assert got.shape == (2, 3, 4)


def test_constant_of_shape_fed_by_shape(tmp_path: Path) -> None:
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("ConstantOfShape", ["s"], ["k"],
                              value=numpy_helper.from_array(np.array([2.5], np.float32))),
             helper.make_node("Add", ["x", "k"], ["y"])]
    _check(tmp_path, nodes, _floats(2, 5))
    default = [helper.make_node("Shape", ["x"], ["s"]),
               helper.make_node("ConstantOfShape", ["s"], ["y"])]
    got = _check(tmp_path, default, _floats(2, 5))
    assert not got.any()


def test_shape_gather_concat_reshape(tmp_path: Path) -> None:
    """The dynamic reshape HF attention exports: (batch, seq, heads * d) -> (batch, seq, h, d)."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Gather", ["s", "i01"], ["bs"], axis=0),
             helper.make_node("Concat", ["bs", "hd"], ["target"], axis=0),
             helper.make_node("Reshape", ["x", "target"], ["y"])]
    got = _check(tmp_path, nodes, _floats(2, 3, 8), {"i01": np.array([0, 1]),
                                                     "hd": np.array([2, 4])})
    assert got.shape == (2, 3, 2, 4)


def test_slice_and_a_decomposed_layer_norm(tmp_path: Path) -> None:
    nodes = [helper.make_node("Slice", ["x", "st", "en", "ax"], ["sl"]),
             helper.make_node("ReduceMean", ["sl"], ["mu"], axes=[-1]),
             helper.make_node("Sub", ["sl", "mu"], ["d"]),
             helper.make_node("Pow", ["d", "two"], ["sq"]),
             helper.make_node("ReduceMean", ["sq"], ["var"], axes=[-1], keepdims=1),
             helper.make_node("Add", ["var", "eps"], ["ve"]),
             helper.make_node("Sqrt", ["ve"], ["sd"]),
             helper.make_node("Div", ["d", "sd"], ["n"]),
             helper.make_node("Neg", ["n"], ["y"])]
    _check(tmp_path, nodes, _floats(2, 4, 10),
           {"st": np.array([1, 2]), "en": np.array([3, 100]), "ax": np.array([1, 2]),
            "two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32)})


def test_cast_to_an_unsupported_type_is_a_probe_error(tmp_path: Path) -> None:
    from ckptguard.probes.network import ProbeError
    from ckptguard.probes.onnx_graph import build_module

    path = _model(tmp_path / "m.onnx", [helper.make_node("Cast", ["x"], ["y"],
                                                        to=TensorProto.STRING)],
                  _floats(2, 3), {}, 17)
    module, _ = build_module(path)
    with pytest.raises(ProbeError, match="Cast"):
        module(torch.zeros(2, 3))
