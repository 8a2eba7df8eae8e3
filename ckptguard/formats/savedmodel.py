"""TensorFlow SavedModel (``saved_model.pb``), frozen GraphDefs (``*.pb``) and Keras SavedModel
metadata (``keras_metadata.pb``), read without TensorFlow.

Every op of every graph node and every library function is listed with its context: ``saver``
when it sits in the standard saver (the nodes and functions the SaverDef names, only reachable
from there), ``graph`` or ``function`` otherwise.  Rules judge the ops against the op lists in
``rules/lists/``.  Keras metadata is scanned for Lambda layers (marshalled Python bytecode).
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.protobuf_wire import LENGTH, Budget, Buffer, WireError, fields, spans, text
from ckptguard.formats.savedmodel_graph import (
    Graph,
    Node,
    read_function,
    read_node,
    read_saved_model,
)

LAMBDA_CONFIG = re.compile(rb'"class_name":\s*"Lambda"')
MAX_LAMBDA_MATCHES = 1000
MAX_OP_FACTS = 10_000  # distinct (op, context) pairs judged per graph (TF has ~1,500 ops)
MAX_FIELDS = 20_000_000  # protobuf fields read per file (a large SavedModel has ~10^6)


def _reach(roots: Iterable[str], functions: dict[str, list[Node]]) -> set[str]:
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in seen or name not in functions:
            continue
        seen.add(name)
        for node in functions[name]:
            pending.extend(node.calls)
    return seen


def _is_saver_node(node: Node, graph: Graph) -> bool:
    for name in graph.saver_names:
        if node.name == name:
            return True
        scope = name.rsplit("/", 1)[0] + "/" if "/" in name else None
        if scope is not None and node.name.startswith(scope):
            return True
    return False


def op_contexts(graph: Graph) -> dict[tuple[str, str], tuple[int, str]]:
    """(op, context) -> (how many times, one node or function where it appears)."""
    saver_roots = [c for n in graph.nodes if _is_saver_node(n, graph) for c in n.calls]
    other_roots = [c for n in graph.nodes if not _is_saver_node(n, graph) for c in n.calls]
    saver_only = _reach(saver_roots, graph.functions) - _reach(other_roots, graph.functions)
    seen: dict[tuple[str, str], tuple[int, str]] = {}

    def note(op: str, context: str, where: str) -> None:
        count, example = seen.get((op, context), (0, where))
        seen[(op, context)] = (count + 1, example)

    for node in graph.nodes:
        note(node.op, "saver" if _is_saver_node(node, graph) else "graph", node.name)
    for name, body in graph.functions.items():
        context = "saver" if name in saver_only else "function"
        for node in body:
            note(node.op, context, f"{name}/{node.name}")
    return seen


def _graph_facts(out: ParseOutput, artifact: Artifact, graphs: list[Graph]) -> None:
    for graph in graphs:
        tags = tuple(graph.tags)
        contexts = sorted(op_contexts(graph).items())
        if len(contexts) > MAX_OP_FACTS:
            out.add("limit.hit", artifact.location, limit="distinct ops", value=len(contexts),
                    detail=f"{len(contexts)} distinct (op, context) pairs; only "
                           f"{MAX_OP_FACTS} were judged")
        for (op, context), (count, example) in contexts[:MAX_OP_FACTS]:
            out.add("savedmodel.op", artifact.location.within(key=example), op=op,
                    context=context, count=count, example=example, tags=tags)
        out.add("savedmodel.graph", artifact.location, tags=tags,
                tensorflow_version=graph.tf_version, nodes=len(graph.nodes),
                functions=len(graph.functions),
                ops=tuple(sorted({n.op for n in graph.nodes} |
                                 {n.op for body in graph.functions.values() for n in body})))


def _frozen_graph(buf: Buffer, budget: Budget) -> Graph:
    graph = Graph()
    for number, wire, value in fields(buf, 0, len(buf), budget):
        if wire == LENGTH and isinstance(value, tuple) and number == 1:
            graph.nodes.append(read_node(buf, value, budget))
        elif wire == LENGTH and isinstance(value, tuple) and number == 2:
            for item in spans(buf, value[0], value[1], budget, 1):
                name, body = read_function(buf, item, budget)
                graph.functions[name] = body
    return graph


def _keras_metadata(out: ParseOutput, artifact: Artifact, buf: Buffer, budget: Budget,
                    ctx: ParseContext) -> None:
    counts: dict[str, tuple[int, str]] = {}
    for item in spans(buf, 0, len(buf), budget, 1):
        for number, wire, value in fields(buf, item[0], item[1], budget):
            if number != 5 or wire != LENGTH or not isinstance(value, tuple):
                continue
            if value[1] - value[0] > ctx.limits.max_text_file_bytes:
                out.add("limit.hit", artifact.location, limit="max_text_file_bytes",
                        value=value[1] - value[0], detail="Keras layer metadata too large")
                continue
            try:
                meta = json.loads(text(buf, value, value[1] - value[0]))
            except (ValueError, RecursionError):
                out.add("savedmodel.violation", artifact.location.within(offset=value[0]),
                        problem="metadata-json", detail="layer metadata is not valid JSON")
                continue
            if isinstance(meta, dict) and isinstance(meta.get("class_name"), str):
                name = str(meta.get("name", ""))
                count, example = counts.get(meta["class_name"], (0, name))
                counts[meta["class_name"]] = (count + 1, example)
    for class_name, (count, example) in sorted(counts.items()):
        out.add("savedmodel.keras_layer", artifact.location.within(key=example),
                class_name=class_name, count=count, example=example)


def _legacy_lambdas(out: ParseOutput, artifact: Artifact, buf: Buffer) -> None:
    """Keras before TF 2.5 kept layer configs as JSON inside saved_model.pb (the object graph's
    user objects); a Lambda layer there is found by its serialised class name."""
    count = 0
    first = -1
    for match in LAMBDA_CONFIG.finditer(buf):
        count += 1
        first = match.start() if first < 0 else first
        if count >= MAX_LAMBDA_MATCHES:
            break
    if count:
        out.add("savedmodel.keras_layer", artifact.location.within(offset=first),
                class_name="Lambda", count=count, example=f"layer config at byte {first}")


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    out = ParseOutput(format="savedmodel")
    buf = artifact.source.view()
    budget = Budget(MAX_FIELDS)
    base = posixpath.basename(artifact.name.lower())
    try:
        if base == "keras_metadata.pb":
            _keras_metadata(out, artifact, buf, budget, ctx)
            return out
        first = next(fields(buf, 0, len(buf), Budget(1)), None)
        if first is not None and first[0] == 1 and first[1] == LENGTH:
            graphs = [_frozen_graph(buf, budget)]
            out.add("savedmodel.header", artifact.location, container="GraphDef", version=0,
                    meta_graphs=1)
        else:
            version, graphs = read_saved_model(buf, budget)
            out.add("savedmodel.header", artifact.location, container="SavedModel", version=version,
                    meta_graphs=len(graphs))
        _graph_facts(out, artifact, graphs)
        _legacy_lambdas(out, artifact, buf)
    except WireError as exc:
        if budget.left < 0:
            out.add("limit.hit", artifact.location, limit="protobuf fields", value=MAX_FIELDS,
                    detail=str(exc))
        else:
            out.add("savedmodel.violation", artifact.location, problem="protobuf",
                    detail=str(exc))
    return out
