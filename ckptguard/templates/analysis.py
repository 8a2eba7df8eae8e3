"""Walk a chat template's Jinja AST (bounded) and report what it reaches for.

The source is parsed with ``Environment.parse`` only: nothing is compiled, rendered or called.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from jinja2 import Environment, TemplateError, nodes
from jinja2.ext import Extension
from jinja2.parser import Parser

from ckptguard.facts import Fact
from ckptguard.limits import Limits
from ckptguard.model import Location
from ckptguard.templates.folding import Value, fold
from ckptguard.templates.growth import macro_fan_out, string_growth
from ckptguard.templates.names import (
    ESCAPE_DUNDERS,
    FRAMEWORK_GLOBALS,
    PROCESS_ATTRIBUTES,
    PROCESS_GLOBALS,
    TEMPLATE_GLOBALS,
    TEMPLATE_LOADING,
    is_dunder,
    is_private,
)

MAX_DEPTH = 100  # AST nesting beyond this is reported (ordinary chat templates stay under 40)
HUGE_COUNT = 100_000  # range() bounds and repeat counts beyond this are reported
HUGE_PRODUCT = 10_000_000  # iterations of loops nested inside each other, multiplied
MAX_SNIPPET = 200


class _GenerationTag(Extension):
    """``{% generation %}…{% endgeneration %}``, which Hugging Face chat templates may use."""

    tags = {"generation"}  # noqa: RUF012 - jinja2's Extension API declares it a class attribute

    def parse(self, parser: Parser) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.Scope(body, lineno=lineno)


def _environment() -> Environment:
    # The extensions Hugging Face enables, so that ordinary templates parse.
    return Environment(extensions=["jinja2.ext.loopcontrols", "jinja2.ext.do", _GenerationTag])


@dataclass(frozen=True)
class Risk:
    problem: str
    name: str
    line: int
    detail: str


def _walk(root: nodes.Node, max_nodes: int) -> Iterator[tuple[nodes.Node, int]]:
    """Nodes with their depth, depth first, at most ``max_nodes`` of them."""
    stack: list[tuple[nodes.Node, int]] = [(root, 0)]
    count = 0
    while stack and count < max_nodes:
        node, depth = stack.pop()
        count += 1
        yield node, depth
        stack.extend((child, depth + 1) for child in reversed(list(node.iter_child_nodes())))


def _own_nodes(macro: nodes.Macro, max_nodes: int) -> Iterator[nodes.Node]:
    """A macro's nodes, without those of macros defined inside it (each is walked once)."""
    stack = list(macro.iter_child_nodes())
    count = 0
    while stack and count < max_nodes:
        node = stack.pop()
        count += 1
        yield node
        if not isinstance(node, nodes.Macro):
            stack.extend(node.iter_child_nodes())


def _bound_names(tree: nodes.Node, max_nodes: int) -> set[str]:
    return {n.name for n, _ in _walk(tree, max_nodes)
            if isinstance(n, nodes.Name) and n.ctx in ("store", "param")}


def _literal_env(tree: nodes.Node, max_nodes: int) -> dict[str, Value]:
    """Variables the template sets to literals (``{% set a = '__cla' ~ 'ss__' %}``)."""
    env: dict[str, Value] = {}
    for _ in range(2):  # a second pass resolves variables built from earlier variables
        for node, _depth in _walk(tree, max_nodes):
            if isinstance(node, nodes.Assign) and isinstance(node.target, nodes.Name):
                value = fold(node.node, env)
                if value is not None:
                    env[node.target.name] = value
    return env


class _Analyser:
    def __init__(self, tree: nodes.Template, limits: Limits) -> None:
        self.tree = tree
        self.max_nodes = limits.max_template_nodes
        self.bound = _bound_names(tree, self.max_nodes)
        self.env = _literal_env(tree, self.max_nodes)
        self.risks: list[Risk] = []
        self.nodes_seen = 0

    def add(self, problem: str, name: str, node: nodes.Node, detail: str) -> None:
        self.risks.append(Risk(problem, name, node.lineno or 0, detail))

    def run(self) -> None:
        deep_reported = False
        for node, depth in _walk(self.tree, self.max_nodes):
            self.nodes_seen += 1
            if depth > MAX_DEPTH and not deep_reported:
                deep_reported = True
                self.add("excessive-nesting", str(depth), node,
                         f"expressions nested more than {MAX_DEPTH} levels deep")
            self.visit(node)
        self._macro_recursion()
        self._nested_loops()
        for growth in (macro_fan_out(self.tree, self.max_nodes),
                       string_growth(self.tree, self.env, self.max_nodes)):
            if growth is not None:
                self.add("huge-loop", growth.name, growth.node, growth.detail)

    def _loop_count(self, loop: nodes.For) -> int | None:
        """How many times a ``{% for %}`` over ``range(...)`` with known bounds iterates."""
        call = loop.iter
        if not (isinstance(call, nodes.Call) and isinstance(call.node, nodes.Name)
                and call.node.name == "range" and "range" not in self.bound):
            return None
        args = [value for value in (fold(arg, self.env) for arg in call.args)
                if isinstance(value, int)]
        if not args or len(args) != len(call.args) or len(args) > 3:
            return None
        start, stop, step = (0, args[0], 1) if len(args) == 1 else \
            (args[0], args[1], args[2] if len(args) == 3 else 1)
        if step == 0:
            return None
        return max(0, (stop - start + step - (1 if step > 0 else -1)) // step)

    def _nested_loops(self) -> None:
        """Loops inside loops multiply: three range(100000) loops are 10^15 iterations."""
        stack: list[tuple[nodes.Node, int]] = [(self.tree, 1)]
        seen = 0
        while stack and seen < self.max_nodes:
            node, outer = stack.pop()
            seen += 1
            inner = outer
            if isinstance(node, nodes.For):
                count = self._loop_count(node)
                if count is not None:
                    inner = outer * max(count, 1)
                    if inner > HUGE_PRODUCT and outer <= HUGE_PRODUCT and count <= HUGE_COUNT:
                        self.add("huge-loop", f"nested loops x{inner}", node,
                                 f"nested loops iterate {inner} times in all: rendering would "
                                 "not finish")
            stack.extend((child, inner) for child in node.iter_child_nodes())

    def _name_used(self, name: str, node: nodes.Node, via: str,
                   process_names: frozenset[str] = PROCESS_ATTRIBUTES) -> None:
        if name in ESCAPE_DUNDERS or is_dunder(name):
            self.add("dunder-access", name, node, f"reaches Python internals through {via}")
        elif name in process_names:
            self.add("process-access", name, node, f"names {name!r} through {via}")

    def visit(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr):
            self._getattr(node)
        elif isinstance(node, nodes.Getitem):
            self._getitem(node)
        elif isinstance(node, nodes.Filter) and node.node is not None:
            self._filter(node)
        elif isinstance(node, nodes.Name) and node.ctx == "load" and node.name not in self.bound:
            self._global_name(node)
        elif isinstance(node, nodes.Call):
            self._call(node)
        elif isinstance(node, nodes.Const) and isinstance(node.value, str):
            self._string(node.value, node, "a string literal")
        elif isinstance(node, nodes.Keyword) and is_dunder(node.key):
            self.add("dunder-string", node.key, node, "a keyword argument name spells a dunder")
        elif isinstance(node, nodes.Mul):
            self._repeat(node)
        elif type(node).__name__ in TEMPLATE_LOADING:
            self.add("template-loading", type(node).__name__.lower(), node,
                     "loads another template, which a chat template never needs")
        if isinstance(node, (nodes.Concat, nodes.Add, nodes.Mod, nodes.Call, nodes.Filter)):
            value = fold(node, self.env)
            if isinstance(value, str):
                self._string(value, node, "a string built by concatenation or formatting")

    def _getattr(self, node: nodes.Getattr) -> None:
        if is_private(node.attr) and not is_dunder(node.attr):
            self.add("dunder-access", node.attr, node, "reads an underscore (private) attribute")
        self._name_used(node.attr, node, "attribute access")
        self._on_global(node.node, node)

    def _getitem(self, node: nodes.Getitem) -> None:
        key = fold(node.arg, self.env)
        if isinstance(key, str):
            self._name_used(key, node, "item access")
        elif key is None and _builds_string(node.arg):
            self.add("computed-attribute", "[…]", node,
                     "item key built at render time from strings")
        self._on_global(node.node, node)

    def _on_global(self, target: nodes.Node, node: nodes.Node) -> None:
        if isinstance(target, nodes.Name) and target.name in TEMPLATE_GLOBALS \
                and target.name not in self.bound:
            self.add("global-internals", target.name, node,
                     f"reads attributes of the template global {target.name!r}, whose "
                     "internals lead to Python module globals")

    def _filter(self, node: nodes.Filter) -> None:
        args = [fold(a, self.env) for a in node.args]
        kwargs = {kw.key: fold(kw.value, self.env) for kw in node.kwargs}
        attr_name: nodes.Node | None = None
        if node.name == "attr" and node.args:
            attr_name = node.args[0]
        elif node.name == "map" and len(node.args) >= 2 and args[0] == "attr":
            attr_name = node.args[1]
        names = [a for a in (*args, *kwargs.values()) if isinstance(a, str)]
        for name in names:
            if is_dunder(name) and attr_name is None:
                self._name_used(name, node, f"the |{node.name} filter")
        if attr_name is not None:
            if node.node is not None:
                self._on_global(node.node, node)
            value = fold(attr_name, self.env)
            if not isinstance(value, str):
                self.add("computed-attribute", f"|{node.name}", node,
                         "attribute name computed at render time")
            else:
                self._name_used(value, node, f"the |{node.name} filter")
                if is_private(value) and not is_dunder(value):
                    self.add("dunder-access", value, node, "reads an underscore attribute")

    def _global_name(self, node: nodes.Name) -> None:
        if node.name in FRAMEWORK_GLOBALS:
            self.add("global-internals", node.name, node,
                     f"uses the framework global {node.name!r}, which chat templates never need")
        self._name_used(node.name, node, "a template global", PROCESS_GLOBALS)

    def _call(self, node: nodes.Call) -> None:
        if isinstance(node.node, nodes.Name) and node.node.name == "range" \
                and "range" not in self.bound:
            for arg in node.args:
                value = fold(arg, self.env)
                if isinstance(value, int) and abs(value) > HUGE_COUNT:
                    self.add("huge-loop", f"range({value})", node,
                             f"iterates over range({value}): rendering would not finish")

    def _repeat(self, node: nodes.Mul) -> None:
        for side in (node.left, node.right):
            value = fold(side, self.env)
            if isinstance(value, int) and value > HUGE_COUNT:
                self.add("huge-loop", f"* {value}", node,
                         f"multiplies by {value}: rendering would exhaust memory")

    def _string(self, value: str, node: nodes.Node, how: str) -> None:
        if any(d in value for d in ESCAPE_DUNDERS):
            problem = "dunder-string"
            name = next(d for d in ESCAPE_DUNDERS if d in value)
            self.add(problem, name, node, f"{how} spells {name!r}")

    def _macro_recursion(self) -> None:
        calls: dict[str, set[str]] = {}
        macros: dict[str, nodes.Macro] = {}
        for node, _ in _walk(self.tree, self.max_nodes):
            if isinstance(node, nodes.Macro):
                macros[node.name] = node
                calls[node.name] = {
                    c.node.name for c in _own_nodes(node, self.max_nodes)
                    if isinstance(c, nodes.Call) and isinstance(c.node, nodes.Name)}
        for name, macro in sorted(macros.items()):
            if _reaches(calls, name, name):
                self.add("macro-recursion", name, macro,
                         f"macro {name!r} calls itself; its depth depends on the input")


STRING_BUILDERS = frozenset({"join", "replace", "format", "reverse", "lower", "upper", "string",
                             "trim", "title", "capitalize"})


def _builds_string(node: nodes.Node) -> bool:
    """Whether an expression assembles a string (``a ~ b``, ``'x' + y``, ``l|join``)."""
    if isinstance(node, nodes.Concat):
        return True
    if isinstance(node, (nodes.Add, nodes.Mod)):
        return any((isinstance(side, nodes.Const) and isinstance(side.value, str))
                   or _builds_string(side) for side in (node.left, node.right))
    if isinstance(node, nodes.Filter):
        return node.name in STRING_BUILDERS
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr):
        return node.node.attr in STRING_BUILDERS
    return False


def _reaches(calls: dict[str, set[str]], start: str, target: str) -> bool:
    seen: set[str] = set()
    pending = list(calls.get(start, ()))
    while pending:
        name = pending.pop()
        if name == target:
            return True
        if name not in seen and name in calls:
            seen.add(name)
            pending.extend(calls[name])
    return False


def _snippet(lines: list[str], line: int) -> str:
    if 1 <= line <= len(lines):
        return lines[line - 1].strip()[:MAX_SNIPPET]
    return ""


def analyse_template(source: str, location: Location, limits: Limits, *,
                     origin: str = "") -> list[Fact]:
    """Facts about one Jinja template; ``origin`` names where it came from (e.g.
    ``gguf:tokenizer.chat_template``).  Never renders or compiles the template."""
    where = location
    label = origin or location.key or "template"
    if len(source) > limits.max_text_file_bytes:
        return [Fact.of("limit.hit", where, limit="max_text_file_bytes", value=len(source),
                        detail=f"template {label} of {len(source)} characters was not analysed")]
    try:
        tree = _environment().parse(source)
    except TemplateError as exc:
        line = getattr(exc, "lineno", None)
        return [Fact.of("template.error", _at(where, line), origin=label, line=line,
                        error=str(exc)[:300])]
    except RecursionError:
        return [Fact.of("template.risk", where, problem="excessive-nesting", name="parser",
                        snippet="", line=0, detail="nesting too deep for the Jinja parser",
                        origin=label)]
    analyser = _Analyser(tree, limits)
    analyser.run()
    lines = source.splitlines()
    risks = list(dict.fromkeys(analyser.risks))  # one per (problem, name, line, detail)
    facts = [Fact.of("template.risk", _at(where, risk.line), problem=risk.problem,
                     name=risk.name, line=risk.line, snippet=_snippet(lines, risk.line),
                     detail=risk.detail, origin=label)
             for risk in risks]
    if analyser.nodes_seen >= limits.max_template_nodes:
        facts.append(Fact.of("limit.hit", where, limit="max_template_nodes",
                             value=analyser.nodes_seen,
                             detail=f"template {label} has more AST nodes than the limit"))
    facts.append(Fact.of("template.summary", where, origin=label, length=len(source),
                         nodes=analyser.nodes_seen,
                         macros=sum(1 for n, _ in _walk(tree, limits.max_template_nodes)
                                    if isinstance(n, nodes.Macro))))
    return facts


def _at(where: Location, line: int | None) -> Location:
    return Location(where.chain, offset=where.offset, tensor=where.tensor, key=where.key,
                    line=line or None)
