"""The parts of TensorFlow's SavedModel protos ckptguard reads, walked with protobuf_wire.

SavedModel{2: MetaGraphDef} · MetaGraphDef{1: MetaInfoDef, 2: GraphDef, 3: SaverDef}
MetaInfoDef{4: tags, 5: tensorflow_version} · GraphDef{1: NodeDef, 2: FunctionDefLibrary}
NodeDef{1: name, 2: op, 5: attr map<string, AttrValue>} · FunctionDefLibrary{1: FunctionDef}
FunctionDef{1: OpDef{1: name}, 3: NodeDef} · AttrValue{1: ListValue{9: NameAttrList},
10: NameAttrList{1: name}} · SaverDef{2: save_tensor_name, 3: restore_op_name}
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptguard.formats.protobuf_wire import LENGTH, Budget, Buffer, fields, spans, text


@dataclass(frozen=True)
class Node:
    name: str
    op: str
    calls: tuple[str, ...]  # functions named in its attributes (call ops, control flow)


@dataclass
class Graph:
    """One MetaGraphDef: its nodes, its function library and what its saver names."""

    tags: list[str] = field(default_factory=list)
    tf_version: str = ""
    nodes: list[Node] = field(default_factory=list)
    functions: dict[str, list[Node]] = field(default_factory=dict)
    saver_names: list[str] = field(default_factory=list)


def _func_names(buf: Buffer, span: tuple[int, int], budget: Budget) -> list[str]:
    """Function names in one AttrValue (``func`` or a list of ``func``)."""
    names: list[str] = []
    for number, wire, value in fields(buf, span[0], span[1], budget):
        if wire != LENGTH or not isinstance(value, tuple):
            continue
        if number == 10:
            names += [text(buf, s) for s in spans(buf, value[0], value[1], budget, 1)]
        elif number == 1:
            for item in spans(buf, value[0], value[1], budget, 9):
                names += [text(buf, s) for s in spans(buf, item[0], item[1], budget, 1)]
    return names


def read_node(buf: Buffer, span: tuple[int, int], budget: Budget) -> Node:
    name = op = ""
    calls: list[str] = []
    for number, wire, value in fields(buf, span[0], span[1], budget):
        if wire != LENGTH or not isinstance(value, tuple):
            continue
        if number == 1:
            name = text(buf, value)
        elif number == 2:
            op = text(buf, value)
        elif number == 5:  # map entry {1: key, 2: AttrValue}
            for attr in spans(buf, value[0], value[1], budget, 2):
                calls += _func_names(buf, attr, budget)
    return Node(name, op, tuple(calls))


def read_function(buf: Buffer, span: tuple[int, int], budget: Budget) -> tuple[str, list[Node]]:
    name = ""
    body: list[Node] = []
    for number, wire, value in fields(buf, span[0], span[1], budget):
        if wire != LENGTH or not isinstance(value, tuple):
            continue
        if number == 1:
            name = next((text(buf, s) for s in spans(buf, value[0], value[1], budget, 1)), "")
        elif number == 3:
            body.append(read_node(buf, value, budget))
    return name, body


def _graph_def(buf: Buffer, span: tuple[int, int], budget: Budget, graph: Graph) -> None:
    for number, wire, value in fields(buf, span[0], span[1], budget):
        if wire != LENGTH or not isinstance(value, tuple):
            continue
        if number == 1:
            graph.nodes.append(read_node(buf, value, budget))
        elif number == 2:
            for item in spans(buf, value[0], value[1], budget, 1):
                name, body = read_function(buf, item, budget)
                graph.functions[name] = body


def read_meta_graph(buf: Buffer, span: tuple[int, int], budget: Budget) -> Graph:
    graph = Graph()
    for number, wire, value in fields(buf, span[0], span[1], budget):
        if wire != LENGTH or not isinstance(value, tuple):
            continue
        if number == 1:
            for sub, sub_wire, sub_value in fields(buf, value[0], value[1], budget):
                if sub_wire == LENGTH and isinstance(sub_value, tuple) and sub == 4:
                    graph.tags.append(text(buf, sub_value))
                elif sub_wire == LENGTH and isinstance(sub_value, tuple) and sub == 5:
                    graph.tf_version = text(buf, sub_value)
        elif number == 2:
            _graph_def(buf, value, budget, graph)
        elif number == 3:
            for sub, sub_wire, sub_value in fields(buf, value[0], value[1], budget):
                if sub in (2, 3) and sub_wire == LENGTH and isinstance(sub_value, tuple):
                    graph.saver_names.append(text(buf, sub_value).split(":")[0])
    return graph


def read_saved_model(buf: Buffer, budget: Budget) -> tuple[int, list[Graph]]:
    version = 0
    graphs = []
    for number, wire, value in fields(buf, 0, len(buf), budget):
        if number == 1 and isinstance(value, int):
            version = value
        elif number == 2 and wire == LENGTH and isinstance(value, tuple):
            graphs.append(read_meta_graph(buf, value, budget))
    return version, graphs
