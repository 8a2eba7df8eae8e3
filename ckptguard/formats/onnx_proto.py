"""The parts of ONNX's ``ModelProto`` ckptguard reads, decoded from the protobuf wire format with
``protobuf_wire`` (no ``onnx`` import: importing it costs about two seconds per process).

Field numbers are those of ``onnx/onnx.proto`` (proto2).  As protobuf does, the last value of a
scalar field wins, repeated fields accumulate (packed or not), unknown fields and fields of an
unexpected wire type are skipped; a malformed message raises ``WireError``.  Strings that are not
UTF-8 are kept readable (``\\xff`` escapes) instead of failing the whole file.  Subgraphs are
decoded down to ``max_depth`` levels only; a deeper one is flagged (``GraphProto.too_deep``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ckptguard.formats.protobuf_wire import (
    LENGTH,
    VARINT,
    Budget,
    Buffer,
    WireError,
    fields,
    varint,
)

EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
PROTOBUF_MAX_NESTING = 100  # protobuf's default recursion limit (C++ and upb)
Span = tuple[int, int]


def _text(buf: Buffer, span: Span) -> str:
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "backslashreplace")


def _int(value: int) -> int:
    """A varint as a signed 64-bit integer (int64 fields are two's complement on the wire)."""
    return value - (1 << 64) if value >= 1 << 63 else value


@dataclass
class Entry:
    key: str = ""
    value: str = ""


@dataclass
class Tensor:
    name: str = ""
    dims: list[int] = field(default_factory=list)
    data_type: int = 0
    raw_data: Span | None = None  # absolute span of raw_data inside the buffer
    data_location: int = 0
    external_data: list[Entry] = field(default_factory=list)


@dataclass
class Attribute:
    name: str = ""
    type: int = 0
    t: Tensor | None = None
    g: Graph | None = None
    graphs: list[Graph] = field(default_factory=list)


@dataclass
class Node:
    name: str = ""
    op_type: str = ""
    domain: str = ""
    attribute: list[Attribute] = field(default_factory=list)


@dataclass
class Graph:
    name: str = ""
    node: list[Node] = field(default_factory=list)
    initializer: list[Tensor] = field(default_factory=list)
    sparse_initializer: list[tuple[Tensor, Tensor]] = field(default_factory=list)
    too_deep: bool = False  # nested deeper than the decoder goes: not read


@dataclass
class Function:
    name: str = ""
    domain: str = ""
    node: list[Node] = field(default_factory=list)


@dataclass
class Model:
    ir_version: int = 0
    producer_name: str = ""
    producer_version: str = ""
    domain: str = ""
    model_version: int = 0
    graph: Graph | None = None
    opset_import: list[tuple[str, int]] = field(default_factory=list)
    metadata_props: list[Entry] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)


class _Decoder:
    def __init__(self, buf: Buffer, budget: Budget, max_depth: int) -> None:
        self.buf = buf
        self.budget = budget
        self.max_depth = max_depth

    def fields(self, span: Span) -> list[tuple[int, int, int | Span]]:
        return list(fields(self.buf, span[0], span[1], self.budget))

    def entry(self, span: Span) -> Entry:
        out = Entry()
        for number, wire, value in self.fields(span):
            if wire == LENGTH and isinstance(value, tuple):
                if number == 1:
                    out.key = _text(self.buf, value)
                elif number == 2:
                    out.value = _text(self.buf, value)
        return out

    def packed(self, span: Span) -> list[int]:
        out, pos = [], span[0]
        while pos < span[1]:
            self.budget.spend()
            value, pos = varint(self.buf, pos, span[1])
            out.append(_int(value))
        return out

    def tensor(self, span: Span) -> Tensor:
        out = Tensor()
        for number, wire, value in self.fields(span):
            if isinstance(value, tuple):
                if number == 1:
                    out.dims += self.packed(value)
                elif number == 8:
                    out.name = _text(self.buf, value)
                elif number == 9:
                    out.raw_data = value
                elif number == 13:
                    out.external_data.append(self.entry(value))
            elif wire == VARINT:
                if number == 1:
                    out.dims.append(_int(value))
                elif number == 2:
                    out.data_type = _int(value)
                elif number == 14:
                    out.data_location = _int(value)
        return out

    def sparse(self, span: Span) -> tuple[Tensor, Tensor]:
        values, indices = Tensor(), Tensor()
        for number, wire, value in self.fields(span):
            if wire == LENGTH and isinstance(value, tuple):
                if number == 1:
                    values = self.tensor(value)
                elif number == 2:
                    indices = self.tensor(value)
        return values, indices

    def attribute(self, span: Span, depth: int) -> Attribute:
        out = Attribute()
        for number, wire, value in self.fields(span):
            if isinstance(value, tuple):
                if number == 1:
                    out.name = _text(self.buf, value)
                elif number == 5:
                    out.t = self.tensor(value)
                elif number == 6:
                    out.g = self.graph(value, depth + 1)
                elif number == 11:
                    out.graphs.append(self.graph(value, depth + 1))
            elif wire == VARINT and number == 20:
                out.type = _int(value)
        return out

    def node(self, span: Span, depth: int) -> Node:
        out = Node()
        for number, wire, value in self.fields(span):
            if wire == LENGTH and isinstance(value, tuple):
                if number == 3:
                    out.name = _text(self.buf, value)
                elif number == 4:
                    out.op_type = _text(self.buf, value)
                elif number == 7:
                    out.domain = _text(self.buf, value)
                elif number == 5:
                    out.attribute.append(self.attribute(value, depth))
        return out

    def graph(self, span: Span, depth: int) -> Graph:
        if depth > self.max_depth:
            self.probe(span, depth)
            return Graph(too_deep=True)
        out = Graph()
        for number, wire, value in self.fields(span):
            if wire == LENGTH and isinstance(value, tuple):
                if number == 1:
                    out.node.append(self.node(value, depth))
                elif number == 2:
                    out.name = _text(self.buf, value)
                elif number == 5:
                    out.initializer.append(self.tensor(value))
                elif number == 15:
                    out.sparse_initializer.append(self.sparse(value))
        return out

    def probe(self, span: Span, depth: int) -> None:
        """Walk a graph too deep to decode only far enough to see whether protobuf itself would
        refuse the file (messages nested deeper than its recursion limit): loaders then fail
        to read it, and so does this decoder."""
        if 2 + 3 * depth > PROTOBUF_MAX_NESTING:  # model > graph > (node > attribute > graph)*
            raise WireError(f"subgraphs nested {depth} deep: messages deeper than protobuf's "
                            f"recursion limit ({PROTOBUF_MAX_NESTING})")
        for number, _, value in self.fields(span):
            if number != 1 or not isinstance(value, tuple):
                continue
            for n_number, _, n_value in self.fields(value):
                if n_number != 5 or not isinstance(n_value, tuple):
                    continue
                for a_number, _, a_value in self.fields(n_value):
                    if a_number in (6, 11) and isinstance(a_value, tuple):
                        self.probe(a_value, depth + 1)

    def function(self, span: Span) -> Function:
        out = Function()
        for number, wire, value in self.fields(span):
            if wire == LENGTH and isinstance(value, tuple):
                if number == 1:
                    out.name = _text(self.buf, value)
                elif number == 10:
                    out.domain = _text(self.buf, value)
                elif number == 7:
                    out.node.append(self.node(value, 0))
        return out

    def opset(self, span: Span) -> tuple[str, int]:
        domain, version = "", 0
        for number, wire, value in self.fields(span):
            if number == 1 and isinstance(value, tuple):
                domain = _text(self.buf, value)
            elif number == 2 and wire == VARINT and isinstance(value, int):
                version = _int(value)
        return domain, version

    def model(self) -> Model:
        out = Model()
        for number, wire, value in self.fields((0, len(self.buf))):
            if isinstance(value, tuple):
                if number == 2:
                    out.producer_name = _text(self.buf, value)
                elif number == 3:
                    out.producer_version = _text(self.buf, value)
                elif number == 4:
                    out.domain = _text(self.buf, value)
                elif number == 7:
                    out.graph = self.graph(value, 0)
                elif number == 8:
                    out.opset_import.append(self.opset(value))
                elif number == 14:
                    out.metadata_props.append(self.entry(value))
                elif number == 25:
                    out.functions.append(self.function(value))
            elif wire == VARINT:
                if number == 1:
                    out.ir_version = _int(value)
                elif number == 5:
                    out.model_version = _int(value)
        return out


def parse_model(buf: Buffer, *, max_fields: int, max_depth: int) -> Model:
    """The model in ``buf``; ``WireError`` when the bytes are not a well-formed protobuf (or hold
    more than ``max_fields`` fields: ``BudgetExceeded``, a subclass)."""
    return _Decoder(buf, Budget(max_fields), max_depth).model()


__all__ = ["EXTERNAL", "Attribute", "Entry", "Function", "Graph", "Model", "Node", "Tensor",
           "WireError", "parse_model"]
