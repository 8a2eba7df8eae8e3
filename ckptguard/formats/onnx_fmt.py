"""ONNX models: the ModelProto is parsed with the ``onnx`` package's protobuf classes only.

Nothing is run (no onnxruntime), no external data is read: the parser reports what the graph
needs (operator domains, including those only reachable through functions and If/Loop/Scan
subgraphs), where its external tensors point, and its metadata.

Facts: ``onnx.model``, ``onnx.metadata``, ``metadata.license``, ``onnx.custom_op``,
``onnx.external_data``, ``parse.error``, ``limit.hit``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from ckptguard.facts import Artifact, ParseOutput, TensorRef
from ckptguard.formats import ParseContext
from ckptguard.formats.onnx_external import OK, external_ref, judge
from ckptguard.formats.onnx_wire import initializer_ranges
from ckptguard.license.embedded import lineage_facts
from ckptguard.model import Location
from ckptguard.source import FileSource, MemorySource, slice_source

# Operator sets that every ONNX runtime implements from the specification.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml", "ai.onnx.training",
                              "ai.onnx.preview.training"})
# Contrib operators compiled into ONNX Runtime itself: they need no native library supplied by
# the model's publisher, so they are recorded (``onnx.op_domain``) but not reported.
RUNTIME_DOMAINS = frozenset({"com.microsoft", "com.microsoft.nchwc", "com.microsoft.experimental",
                             "com.ms.internal.nhwc"})
MAX_GRAPH_DEPTH = 16  # If/Loop/Scan bodies nested in each other (protobuf stops near 33)
MAX_NODES = 2_000_000
MAX_FACTS_PER_KIND = 1_000
SMALL_TENSOR_BYTES = 64 * 1024**2  # copy raw_data into memory only below this size
LICENSE_KEY = re.compile(r"licen[cs]e", re.IGNORECASE)
_DTYPES = {1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 7: "int64",
           10: "float16", 11: "float64", 12: "uint32", 13: "uint64", 16: "bfloat16"}


@dataclass
class _Walk:
    """Per-parse state of the graph walk (bounded)."""

    output: ParseOutput
    where: Location
    model_dir: str | None
    local_functions: frozenset[tuple[str, str]]
    nodes: int = 0
    custom_facts: int = 0
    external_facts: int = 0
    limited: bool = False


def _model_dir(artifact: Artifact) -> str | None:
    source = artifact.source
    if isinstance(source, FileSource) and source.start == 0 and source.length is None \
            and artifact.depth == 0:
        return os.path.dirname(os.path.abspath(source.path))
    return None


def parse(artifact: Artifact, context: ParseContext) -> ParseOutput:
    import onnx
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    output = ParseOutput(format="onnx")
    where = artifact.location
    size = artifact.source.size
    if size > context.limits.max_member_size:
        output.add("limit.hit", where, limit="max_member_size", value=size,
                   detail=f"the {size}-byte ONNX protobuf is larger than the limit; not parsed")
        return output
    buf = artifact.source.view()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(buf)
    except (DecodeError, ValueError, RuntimeError) as exc:
        output.add("parse.error", where, format="onnx", error=f"not a valid ONNX protobuf: {exc}",
                   offset=None, read=size)
        return output
    if not model.HasField("graph") or model.ir_version <= 0:
        output.add("parse.error", where, format="onnx",
                   error="the protobuf has no graph or no ir_version: not an ONNX model",
                   offset=None, read=size)
        return output
    _model_facts(model, output, where)
    local = frozenset((f.domain, f.name) for f in model.functions)
    walk = _Walk(output, where, _model_dir(artifact), local)
    _walk_graph(walk, model.graph, "graph", 0)
    for function in model.functions:
        _walk_nodes(walk, function.node, f"function {function.domain}.{function.name}", 0)
    if walk.limited:
        output.add("limit.hit", where, limit="onnx graph", value=walk.nodes,
                   detail=f"more than {MAX_NODES} nodes or subgraphs nested deeper than "
                          f"{MAX_GRAPH_DEPTH}; the rest of the graph was not examined")
    if context.want_tensors:
        output.tensors.extend(_tensor_refs(model, artifact, buf))
    return output


def _model_facts(model: object, output: ParseOutput, where: Location) -> None:
    from onnx import ModelProto

    assert isinstance(model, ModelProto)
    opsets = tuple(f"{o.domain or 'ai.onnx'}:{o.version}" for o in model.opset_import)
    output.add("onnx.model", where, ir_version=model.ir_version,
               producer_name=model.producer_name, producer_version=model.producer_version,
               domain=model.domain, model_version=model.model_version, opsets=opsets,
               graph_name=model.graph.name, nodes=len(model.graph.node),
               initializers=len(model.graph.initializer), functions=len(model.functions))
    for prop in model.metadata_props[:MAX_FACTS_PER_KIND]:
        key_where = where.within(key=prop.key)
        output.add("onnx.metadata", key_where, key=prop.key, value=prop.value[:2000])
        if LICENSE_KEY.search(prop.key) and prop.value.strip():
            output.add("metadata.license", key_where, value=prop.value.strip()[:500],
                       source=f"onnx:metadata_props.{prop.key}", key=prop.key)
        output.facts.extend(lineage_facts(key_where, prop.key, prop.value,
                                          f"onnx:metadata_props.{prop.key}"))


def _subgraphs(node: object) -> Iterator[tuple[str, object]]:
    from onnx import AttributeProto, NodeProto

    assert isinstance(node, NodeProto)
    for attr in node.attribute:
        if attr.type == AttributeProto.GRAPH or attr.HasField("g"):
            yield attr.name, attr.g
        for index, graph in enumerate(attr.graphs):
            yield f"{attr.name}[{index}]", graph


def _walk_graph(walk: _Walk, graph: object, path: str, depth: int) -> None:
    from onnx import GraphProto

    assert isinstance(graph, GraphProto)
    for tensor in graph.initializer:
        _external(walk, tensor, path)
    for sparse in graph.sparse_initializer:
        _external(walk, sparse.values, path)
        _external(walk, sparse.indices, path)
    _walk_nodes(walk, graph.node, path, depth)


def _walk_nodes(walk: _Walk, nodes: object, path: str, depth: int) -> None:
    from onnx import NodeProto

    if depth > MAX_GRAPH_DEPTH:
        walk.limited = True
        return
    for node in nodes:  # type: ignore[attr-defined]
        assert isinstance(node, NodeProto)
        walk.nodes += 1
        if walk.nodes > MAX_NODES:
            walk.limited = True
            return
        _node_domain(walk, node, path)
        for attr in node.attribute:
            if attr.HasField("t"):
                _external(walk, attr.t, f"{path}/{node.name or node.op_type}.{attr.name}")
        for name, sub in _subgraphs(node):
            _walk_graph(walk, sub, f"{path}/{node.name or node.op_type}.{name}", depth + 1)


def _node_domain(walk: _Walk, node: object, path: str) -> None:
    from onnx import NodeProto

    assert isinstance(node, NodeProto)
    domain = node.domain
    if domain in STANDARD_DOMAINS or (domain, node.op_type) in walk.local_functions:
        return
    if walk.custom_facts >= MAX_FACTS_PER_KIND:
        return
    walk.custom_facts += 1
    kind = "onnx.op_domain" if domain in RUNTIME_DOMAINS else "onnx.custom_op"
    walk.output.add(kind, walk.where.within(key=f"{path}/{node.name or node.op_type}"),
                    domain=domain, op_type=node.op_type, node=node.name, graph=path)


def _external(walk: _Walk, tensor: object, path: str) -> None:
    from onnx import TensorProto

    assert isinstance(tensor, TensorProto)
    if tensor.data_location != TensorProto.EXTERNAL or \
            walk.external_facts >= MAX_FACTS_PER_KIND:
        return
    walk.external_facts += 1
    entries = {e.key: e.value for e in tensor.external_data}
    ref = external_ref(tensor.name, entries)
    verdict = judge(ref, walk.model_dir)
    walk.output.add("onnx.external_data", walk.where.within(tensor=tensor.name),
                    tensor=tensor.name, graph=path, path=ref.location,
                    offset=ref.offset, length=ref.length, problem=verdict.problem,
                    resolved=verdict.resolved, detail=verdict.detail,
                    ok=verdict.problem == OK)


def _tensor_refs(model: object, artifact: Artifact, buf: memoryview) -> list[TensorRef]:
    from onnx import ModelProto, TensorProto

    assert isinstance(model, ModelProto)
    ranges = initializer_ranges(buf) if isinstance(artifact.source, FileSource) else {}
    refs: list[TensorRef] = []
    for tensor in model.graph.initializer:
        dtype = _DTYPES.get(tensor.data_type)
        if dtype is None or tensor.data_location == TensorProto.EXTERNAL or not tensor.raw_data:
            continue
        where = artifact.location.within(tensor=tensor.name)
        span = ranges.get(tensor.name)
        if span is not None and span[1] == len(tensor.raw_data):
            source = slice_source(artifact.source, span[0], span[1])
        elif len(tensor.raw_data) <= SMALL_TENSOR_BYTES:
            source = MemorySource(bytes(tensor.raw_data))
        else:
            continue
        refs.append(TensorRef(tensor.name, dtype, tuple(int(d) for d in tensor.dims), source,
                              where))
    return refs
