"""A small ONNX -> torch interpreter for common classifier graphs, so an ONNX model can be probed
without onnx2torch (which needs torchvision) and without running anything but known ops.

The graph is parsed by the onnx package's protobuf reader (no custom ops, no external data),
initializers become buffers, and each node runs as the torch function it names.  Activation
nodes become ``nn.Module``s so the probes can hook their outputs.  A final Softmax is dropped:
the probes work on logits.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptguard.probes.network import ProbeError

if TYPE_CHECKING:
    import torch
    from torch import nn

MAX_NODES = 10_000
ACTIVATION_OPS = {"Relu": "ReLU", "Sigmoid": "Sigmoid", "Tanh": "Tanh", "LeakyRelu": "LeakyReLU"}


@dataclass(frozen=True)
class Node:
    op: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any]


def _safe(name: str) -> str:
    return "t_" + re.sub(r"\W", "_", name)


def _attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def read_graph(path: Path) -> tuple[list[Node], dict[str, Any], str, tuple[int, ...], str]:
    """Nodes, initializers (numpy), input name, input shape (without batch), output name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    if len(graph.node) > MAX_NODES:
        raise ProbeError(f"the graph has {len(graph.node)} nodes (limit {MAX_NODES})")
    initializers: dict[str, Any] = {}
    for tensor in graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            raise ProbeError(f"initializer {tensor.name!r} uses external data; not probed")
        initializers[tensor.name] = numpy_helper.to_array(tensor)
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise ProbeError("probes need a graph with one data input and one output")
    dims = inputs[0].type.tensor_type.shape.dim
    shape = tuple(int(d.dim_value) for d in dims[1:])
    if not shape or any(d <= 0 for d in shape):
        raise ProbeError("the graph input's shape (after the batch axis) is not fixed; "
                         "pass --input-shape")
    nodes = [Node(n.op_type, tuple(n.input), tuple(n.output), _attributes(n)) for n in graph.node]
    return nodes, initializers, inputs[0].name, shape, graph.output[0].name


def build_module(path: Path) -> tuple[nn.Module, tuple[int, ...]]:
    nodes, initializers, input_name, shape, output_name = read_graph(path)
    if nodes and nodes[-1].op == "Softmax" and nodes[-1].outputs[0] == output_name:
        output_name = nodes[-1].inputs[0]
        nodes = nodes[:-1]
    unknown = sorted({n.op for n in nodes} - set(_OPS) - set(ACTIVATION_OPS))
    if unknown:
        raise ProbeError(f"ONNX ops not supported by the probe interpreter: {', '.join(unknown)}")
    return _graph_module(nodes, initializers, input_name, output_name), shape


def _graph_module(nodes: Sequence[Node], initializers: dict[str, Any], input_name: str,
                  output_name: str) -> nn.Module:
    import numpy as np
    import torch
    from torch import nn

    class GraphModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.constants: dict[str, Any] = {}
            for name, value in initializers.items():
                array = np.array(value)
                if array.dtype.kind == "f":
                    self.register_buffer(_safe(name), torch.from_numpy(array.astype(np.float32)))
                else:
                    self.constants[name] = array
            self.activations = nn.ModuleDict()
            for node in nodes:
                if node.op in ACTIVATION_OPS:
                    layer = getattr(nn, ACTIVATION_OPS[node.op])()
                    if node.op == "LeakyRelu":
                        layer = nn.LeakyReLU(float(node.attrs.get("alpha", 0.01)))
                    self.activations[_safe(node.outputs[0])] = layer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values: dict[str, Any] = {input_name: x}
            for name in initializers:
                values[name] = self.constants[name] if name in self.constants else \
                    getattr(self, _safe(name))
            for node in nodes:
                args = [_as_tensor(values[i]) if i else None for i in node.inputs]
                if node.op in ACTIVATION_OPS:
                    result = self.activations[_safe(node.outputs[0])](args[0])
                else:
                    result = _OPS[node.op](args, node.attrs)
                values[node.outputs[0]] = result
            out: torch.Tensor = values[output_name]
            return out

    return GraphModule()


def _gemm(args: list[Any], attrs: dict[str, Any]) -> Any:
    a, b = args[0], args[1]
    if attrs.get("transA"):
        a = a.t()
    if attrs.get("transB"):
        b = b.t()
    out = float(attrs.get("alpha", 1.0)) * (a @ b)
    if len(args) > 2 and args[2] is not None:
        out = out + float(attrs.get("beta", 1.0)) * args[2]
    return out


def _conv(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch.nn.functional as F

    pads = list(attrs.get("pads", [0, 0, 0, 0]))
    half = len(pads) // 2
    if pads[:half] != pads[half:]:
        raise ProbeError("asymmetric Conv padding is not supported by the probe interpreter")
    return F.conv2d(args[0], args[1], args[2] if len(args) > 2 else None,
                    stride=tuple(attrs.get("strides", [1, 1])), padding=tuple(pads[:half]),
                    dilation=tuple(attrs.get("dilations", [1, 1])),
                    groups=int(attrs.get("group", 1)))


def _pool(kind: str) -> Callable[[list[Any], dict[str, Any]], Any]:
    def run(args: list[Any], attrs: dict[str, Any]) -> Any:
        import torch.nn.functional as F

        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        kernel = tuple(attrs["kernel_shape"])
        stride = tuple(attrs.get("strides", kernel))
        pool = F.max_pool2d if kind == "max" else F.avg_pool2d
        return pool(args[0], kernel, stride, tuple(pads[:len(pads) // 2]))
    return run


def _reshape(args: list[Any], attrs: dict[str, Any]) -> Any:
    shape = [int(v) for v in args[1]]
    shape = [args[0].shape[i] if v == 0 else v for i, v in enumerate(shape)]
    return args[0].reshape(shape)


def _flatten(args: list[Any], attrs: dict[str, Any]) -> Any:
    axis = int(attrs.get("axis", 1))
    return args[0].reshape(*args[0].shape[:axis], -1) if axis == 1 else \
        args[0].reshape(int(args[0].shape[:axis].numel()), -1)


def _batch_norm(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch.nn.functional as F

    return F.batch_norm(args[0], args[3], args[4], args[1], args[2], False, 0.0,
                        float(attrs.get("epsilon", 1e-5)))


def _softmax(args: list[Any], attrs: dict[str, Any]) -> Any:
    return args[0].softmax(dim=int(attrs.get("axis", -1)))


def _constant(args: list[Any], attrs: dict[str, Any]) -> Any:
    import numpy as np
    import torch
    from onnx import numpy_helper

    array = np.array(numpy_helper.to_array(attrs["value"]))
    return torch.from_numpy(array.astype(np.float32)) if array.dtype.kind == "f" else array


def _as_tensor(value: Any) -> Any:
    """Integer and boolean constants are kept as numpy arrays until a node reads them."""
    import numpy as np
    import torch

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    return value


def _ints(value: Any) -> list[int]:
    """A shape-like input (an int64 tensor of any rank) as a list of Python ints."""
    return [int(v) for v in value.reshape(-1).tolist()]


def _axes(args: list[Any], attrs: dict[str, Any], rank: int) -> list[int] | None:
    """Axes from the attribute (older opsets) or the second input (newer), normalised."""
    raw = attrs.get("axes")
    if raw is None and len(args) > 1 and args[1] is not None:
        raw = _ints(args[1])
    if raw is None:
        return None
    return sorted(int(a) % rank for a in raw)


def _gather(args: list[Any], attrs: dict[str, Any]) -> Any:
    data, indices = args[0], args[1].long()
    axis = int(attrs.get("axis", 0)) % data.dim()
    indices = indices.where(indices >= 0, indices + data.shape[axis])  # negative indices
    picked = data.index_select(axis, indices.reshape(-1))
    shape = (*data.shape[:axis], *indices.shape, *data.shape[axis + 1:])
    return picked.reshape(shape)


def _gather_elements(args: list[Any], attrs: dict[str, Any]) -> Any:
    data, indices = args[0], args[1].long()
    axis = int(attrs.get("axis", 0)) % data.dim()
    indices = indices.where(indices >= 0, indices + data.shape[axis])
    return data.gather(axis, indices)


def _layer_norm(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch.nn.functional as F

    x = args[0]
    axis = int(attrs.get("axis", -1)) % x.dim()
    bias = args[2] if len(args) > 2 else None
    return F.layer_norm(x, tuple(x.shape[axis:]), args[1], bias,
                        float(attrs.get("epsilon", 1e-5)))


def _unsqueeze(args: list[Any], attrs: dict[str, Any]) -> Any:
    x = args[0]
    raw: list[int] = [int(a) for a in attrs["axes"]] if "axes" in attrs else _ints(args[1])
    rank = x.dim() + len(raw)
    for axis in sorted(int(a) % rank for a in raw):
        x = x.unsqueeze(axis)
    return x


def _squeeze(args: list[Any], attrs: dict[str, Any]) -> Any:
    x = args[0]
    axes = _axes(args, attrs, max(x.dim(), 1))
    if axes is None:
        return x.squeeze()
    for axis in sorted(axes, reverse=True):
        x = x.squeeze(axis)
    return x


def _shape(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch

    dims = list(args[0].shape)
    start = int(attrs.get("start", 0))
    end = attrs.get("end")
    return torch.tensor(dims[start:None if end is None else int(end)], dtype=torch.int64)


def _cast(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch

    target = _CAST_TYPES.get(int(attrs["to"]))
    if target is None:
        raise ProbeError(f"Cast to ONNX type {attrs['to']} is not supported by the probe "
                         "interpreter")
    dtype = getattr(torch, target)
    return args[0].to(dtype)


# ONNX TensorProto element types -> torch dtypes; every float width runs in float32 here.
_CAST_TYPES = {1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64",
               9: "bool", 10: "float32", 11: "float32", 16: "float32"}


def _expand(args: list[Any], attrs: dict[str, Any]) -> Any:
    x, shape = args[0], _ints(args[1])
    # ONNX Expand broadcasts both ways (a 1 in the shape keeps the input's dimension).
    ours = [1] * (len(shape) - x.dim()) + list(x.shape)
    theirs = [1] * (x.dim() - len(shape)) + shape
    target = [a if b == 1 else b for a, b in zip(ours, theirs, strict=True)]
    return x.expand(target)


def _constant_of_shape(args: list[Any], attrs: dict[str, Any]) -> Any:
    import numpy as np
    import torch
    from onnx import numpy_helper

    shape = _ints(args[0])
    if "value" in attrs:
        fill = np.array(numpy_helper.to_array(attrs["value"])).reshape(-1)[0]
    else:
        fill = np.float32(0.0)
    value = torch.from_numpy(np.array(fill).reshape(1))
    if value.dtype.is_floating_point:
        value = value.float()
    return value.expand(shape).clone() if shape else value.reshape(())


def _where(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch

    return torch.where(args[0].bool(), args[1], args[2])


def _concat(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch

    return torch.cat([a for a in args if a is not None], dim=int(attrs["axis"]))


def _reduce_mean(args: list[Any], attrs: dict[str, Any]) -> Any:
    x = args[0]
    axes = _axes(args, attrs, x.dim())
    keep = bool(attrs.get("keepdims", 1))
    if axes is None:
        axes = list(range(x.dim()))
    return x.mean(dim=tuple(axes), keepdim=keep) if axes else x


def _slice(args: list[Any], attrs: dict[str, Any]) -> Any:
    x = args[0]
    starts, ends = _ints(args[1]), _ints(args[2])
    axes = _ints(args[3]) if len(args) > 3 and args[3] is not None else \
        list(range(len(starts)))
    steps = _ints(args[4]) if len(args) > 4 and args[4] is not None else [1] * len(starts)
    index: list[slice] = [slice(None)] * x.dim()
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        if step <= 0:
            raise ProbeError("Slice with a non-positive step is not supported by the probe "
                             "interpreter")
        size = x.shape[axis % x.dim()]
        index[axis % x.dim()] = slice(max(min(start, size), -size), max(min(end, size), -size),
                                      step)
    return x[tuple(index)]


def _erf(args: list[Any], attrs: dict[str, Any]) -> Any:
    import torch

    return torch.special.erf(args[0])


_OPS: dict[str, Callable[[list[Any], dict[str, Any]], Any]] = {
    "Gemm": _gemm,
    "MatMul": lambda a, _: a[0] @ a[1],
    "Add": lambda a, _: a[0] + a[1],
    "Sub": lambda a, _: a[0] - a[1],
    "Mul": lambda a, _: a[0] * a[1],
    "Div": lambda a, _: a[0] / a[1],
    "Conv": _conv,
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": lambda a, _: a[0].mean(dim=(2, 3), keepdim=True),
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Softmax": _softmax,
    "BatchNormalization": _batch_norm,
    "Identity": lambda a, _: a[0],
    "Constant": _constant,
    "Dropout": lambda a, _: a[0],
    "Transpose": lambda a, attrs: a[0].permute(*attrs["perm"]),
    # transformer graphs (HF exports): embeddings, masks, LayerNorm, exact GELU
    "Gather": _gather,
    "GatherElements": _gather_elements,
    "LayerNormalization": _layer_norm,
    "Erf": _erf,
    "Where": _where,
    "Equal": lambda a, _: a[0] == a[1],
    "Expand": _expand,
    "ConstantOfShape": _constant_of_shape,
    "Unsqueeze": _unsqueeze,
    "Squeeze": _squeeze,
    "Shape": _shape,
    "Cast": _cast,
    "Concat": _concat,
    "Slice": _slice,
    "ReduceMean": _reduce_mean,
    "Sqrt": lambda a, _: a[0].sqrt(),
    "Pow": lambda a, _: a[0].pow(a[1]),
    "Neg": lambda a, _: -a[0],
}
