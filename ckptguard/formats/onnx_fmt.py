"""ONNX models: the ModelProto is decoded from the protobuf wire format (``onnx_proto``), without
importing the ``onnx`` package (whose import alone costs about two seconds).

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
from ckptguard.formats.onnx_proto import (
    EXTERNAL,
    Graph,
    Model,
    Node,
    Tensor,
    WireError,
    parse_model,
)
from ckptguard.license.embedded import lineage_facts
from ckptguard.model import Location
from ckptguard.source import FileSource, slice_source

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
    output = ParseOutput(format="onnx")
    where = artifact.location
    size = artifact.source.size
    if size > context.limits.max_member_size:
        output.add("limit.hit", where, limit="max_member_size", value=size,
                   detail=f"the {size}-byte ONNX protobuf is larger than the limit; not parsed")
        return output
    buf = artifact.source.view()
    try:
        # Every field takes at least two bytes, so the budget never cuts a well-formed file.
        model = parse_model(buf, max_fields=size // 2 + 16, max_depth=MAX_GRAPH_DEPTH + 1)
    except WireError as exc:
        output.add("parse.error", where, format="onnx", error=f"not a valid ONNX protobuf: {exc}",
                   offset=None, read=size)
        return output
    if model.graph is None or model.ir_version <= 0:
        output.add("parse.error", where, format="onnx",
                   error="the protobuf has no graph or no ir_version: not an ONNX model",
                   offset=None, read=size)
        return output
    _model_facts(model, model.graph, output, where)
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
        output.tensors.extend(_tensor_refs(model.graph, artifact))
    return output


def _model_facts(model: Model, graph: Graph, output: ParseOutput, where: Location) -> None:
    opsets = tuple(f"{domain or 'ai.onnx'}:{version}" for domain, version in model.opset_import)
    output.add("onnx.model", where, ir_version=model.ir_version,
               producer_name=model.producer_name, producer_version=model.producer_version,
               domain=model.domain, model_version=model.model_version, opsets=opsets,
               graph_name=graph.name, nodes=len(graph.node),
               initializers=len(graph.initializer), functions=len(model.functions))
    for prop in model.metadata_props[:MAX_FACTS_PER_KIND]:
        key_where = where.within(key=prop.key)
        output.add("onnx.metadata", key_where, key=prop.key, value=prop.value[:2000])
        if LICENSE_KEY.search(prop.key) and prop.value.strip():
            output.add("metadata.license", key_where, value=prop.value.strip()[:500],
                       source=f"onnx:metadata_props.{prop.key}", key=prop.key)
        output.facts.extend(lineage_facts(key_where, prop.key, prop.value,
                                          f"onnx:metadata_props.{prop.key}"))


def _subgraphs(node: Node) -> Iterator[tuple[str, Graph]]:
    for attr in node.attribute:
        if attr.g is not None:
            yield attr.name, attr.g
        for index, graph in enumerate(attr.graphs):
            yield f"{attr.name}[{index}]", graph


def _walk_graph(walk: _Walk, graph: Graph, path: str, depth: int) -> None:
    if graph.too_deep:
        walk.limited = True
        return
    for tensor in graph.initializer:
        _external(walk, tensor, path)
    for values, indices in graph.sparse_initializer:
        _external(walk, values, path)
        _external(walk, indices, path)
    _walk_nodes(walk, graph.node, path, depth)


def _walk_nodes(walk: _Walk, nodes: list[Node], path: str, depth: int) -> None:
    if depth > MAX_GRAPH_DEPTH:
        walk.limited = True
        return
    for node in nodes:
        walk.nodes += 1
        if walk.nodes > MAX_NODES:
            walk.limited = True
            return
        _node_domain(walk, node, path)
        for attr in node.attribute:
            if attr.t is not None:
                _external(walk, attr.t, f"{path}/{node.name or node.op_type}.{attr.name}")
        for name, sub in _subgraphs(node):
            _walk_graph(walk, sub, f"{path}/{node.name or node.op_type}.{name}", depth + 1)


def _node_domain(walk: _Walk, node: Node, path: str) -> None:
    domain = node.domain
    if domain in STANDARD_DOMAINS or (domain, node.op_type) in walk.local_functions:
        return
    if walk.custom_facts >= MAX_FACTS_PER_KIND:
        return
    walk.custom_facts += 1
    kind = "onnx.op_domain" if domain in RUNTIME_DOMAINS else "onnx.custom_op"
    walk.output.add(kind, walk.where.within(key=f"{path}/{node.name or node.op_type}"),
                    domain=domain, op_type=node.op_type, node=node.name, graph=path)


def _external(walk: _Walk, tensor: Tensor, path: str) -> None:
    if tensor.data_location != EXTERNAL or walk.external_facts >= MAX_FACTS_PER_KIND:
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


def _tensor_refs(graph: Graph, artifact: Artifact) -> list[TensorRef]:
    """The top-level initializers with raw data, as slices of the artifact (never copied)."""
    refs: list[TensorRef] = []
    for tensor in graph.initializer:
        dtype = _DTYPES.get(tensor.data_type)
        span = tensor.raw_data
        if dtype is None or tensor.data_location == EXTERNAL or span is None \
                or span[1] <= span[0]:
            continue
        where = artifact.location.within(tensor=tensor.name)
        source = slice_source(artifact.source, span[0], span[1] - span[0])
        refs.append(TensorRef(tensor.name, dtype, tuple(tensor.dims), source, where))
    return refs
