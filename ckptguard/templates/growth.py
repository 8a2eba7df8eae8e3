"""Rendering cost that grows exponentially with the template's size, found without rendering.

Two shapes make a few hundred bytes of Jinja render forever or exhaust memory, with no large
number anywhere for a range() check to see:

* macros that call the previous macro twice: ``m1`` calls ``m0`` twice, ``m2`` calls ``m1``
  twice … 64 levels are 2**64 expansions;
* a string doubled again and again: ``{% set s = s ~ s %}`` 64 times, or inside a loop.

Both are estimated with saturating arithmetic over the syntax tree (each node visited a bounded
number of times), and reported as ``huge-loop`` risks like an unbounded ``range()``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from jinja2 import nodes

from ckptguard.templates.folding import Value, fold

CAP = 10**18  # every estimate saturates here
HUGE_EXPANSIONS = 10_000_000  # macro bodies rendered for one call
HUGE_STRING = 100_000_000  # characters one variable would hold
MAX_SIMULATED_ITERATIONS = 128  # loop bodies are replayed at most this often (then saturate)


@dataclass(frozen=True)
class Growth:
    name: str
    node: nodes.Node
    detail: str


def _mul(a: int, b: int) -> int:
    return min(CAP, a * b)


def macro_fan_out(tree: nodes.Node, max_nodes: int) -> Growth | None:
    """The macro whose one call renders the most macro bodies, when that is beyond reason."""
    macros: dict[str, nodes.Macro] = {}
    calls: dict[str, list[str]] = {}
    for node in _nodes(tree, max_nodes):
        if isinstance(node, nodes.Macro):
            macros[node.name] = node
    for name, macro in macros.items():
        calls[name] = [c.node.name for c in _nodes(macro, max_nodes, own=True)
                       if isinstance(c, nodes.Call) and isinstance(c.node, nodes.Name)
                       and c.node.name in macros]
    cost: dict[str, int] = {}
    for name in sorted(macros):
        _cost(name, calls, cost, set())
    worst = max(sorted(cost), key=lambda n: cost[n], default=None)
    if worst is None or cost[worst] <= HUGE_EXPANSIONS:
        return None
    shown = "more than 10^18" if cost[worst] >= CAP else str(cost[worst])
    return Growth(f"macro {worst} x{shown}", macros[worst],
                  f"one call of macro {worst!r} renders {shown} macro bodies (macros that call "
                  "the previous one several times): rendering would not finish")


def _cost(name: str, calls: Mapping[str, list[str]], cost: dict[str, int],
          active: set[str]) -> int:
    """Bodies rendered by one call of ``name`` (recursion is reported elsewhere: counted once).
    Iterative over an explicit stack, so a chain of thousands of macros cannot recurse deep."""
    stack: list[tuple[str, int]] = [(name, 0)]
    while stack:
        current, index = stack.pop()
        if current in cost:
            continue
        callees = calls.get(current, [])
        if index == 0:
            active.add(current)
        pending = next((i for i in range(index, len(callees))
                        if callees[i] not in cost and callees[i] not in active), None)
        if pending is not None:
            stack.append((current, pending))
            stack.append((callees[pending], 0))
            continue
        total = 1
        for callee in callees:
            total = min(CAP, total + cost.get(callee, 1))
        cost[current] = total
        active.discard(current)
    return cost.get(name, 1)


def string_growth(tree: nodes.Template, env: Mapping[str, Value],
                  max_nodes: int) -> Growth | None:
    """A variable whose assignments make it longer than HUGE_STRING characters."""
    sizes: dict[str, int] = {}
    budget = [max_nodes]
    return _statements(tree.body, sizes, env, budget)


def _statements(body: list[nodes.Node], sizes: dict[str, int], env: Mapping[str, Value],
                budget: list[int]) -> Growth | None:
    for node in body:
        budget[0] -= 1
        if budget[0] <= 0:
            return None
        found = _statement(node, sizes, env, budget)
        if found is not None:
            return found
    return None


def _statement(node: nodes.Node, sizes: dict[str, int], env: Mapping[str, Value],
               budget: list[int]) -> Growth | None:
    if isinstance(node, nodes.Assign):
        key = _key(node.target)
        if key is not None:
            size = _size(node.node, sizes, env)
            sizes[key] = size
            if size > HUGE_STRING:
                shown = "more than 10^18" if size >= CAP else str(size)
                return Growth(f"{key} ~{shown} chars", node,
                              f"{key!r} grows to {shown} characters (a string built from "
                              "itself again and again): rendering would exhaust memory")
        return None
    if isinstance(node, nodes.For):
        count = _range_count(node.iter, env)
        runs = MAX_SIMULATED_ITERATIONS if count is None else min(count, MAX_SIMULATED_ITERATIONS)
        for _ in range(runs):
            before = dict(sizes)
            found = _statements(node.body, sizes, env, budget)
            if found is not None or sizes == before:
                return found
        return None
    if isinstance(node, nodes.If):
        return _statements(node.body, sizes, env, budget) or \
            _statements([*node.elif_, *node.else_], sizes, env, budget)
    if isinstance(node, (nodes.Scope, nodes.ScopedEvalContextModifier, nodes.With,
                         nodes.FilterBlock, nodes.Block)):
        return _statements(node.body, sizes, env, budget)
    return None


def _key(target: nodes.Node) -> str | None:
    if isinstance(target, nodes.Name):
        return target.name
    if isinstance(target, nodes.NSRef):
        return f"{target.name}.{target.attr}"
    return None


def _size(node: nodes.Node, sizes: Mapping[str, int], env: Mapping[str, Value]) -> int:
    """Characters an expression renders to, estimated (unknown parts count as 1)."""
    if isinstance(node, nodes.Const):
        return len(node.value) if isinstance(node.value, str) else 1
    if isinstance(node, nodes.Name):
        return sizes.get(node.name, 1)
    if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
        return sizes.get(f"{node.node.name}.{node.attr}", 1)
    if isinstance(node, nodes.Concat):
        total = 0
        for part in node.nodes:
            total = min(CAP, total + _size(part, sizes, env))
        return total
    if isinstance(node, nodes.Add):
        return min(CAP, _size(node.left, sizes, env) + _size(node.right, sizes, env))
    if isinstance(node, nodes.Mul):
        for side, other in ((node.left, node.right), (node.right, node.left)):
            times = fold(side, env)
            if isinstance(times, int) and not isinstance(times, bool) and times > 0:
                return _mul(_size(other, sizes, env), times)
        return 1
    if isinstance(node, nodes.CondExpr):
        alternative: int = 0 if node.expr2 is None else _size(node.expr2, sizes, env)
        return max(_size(node.expr1, sizes, env), alternative)
    if isinstance(node, nodes.Filter) and node.node is not None:
        return _size(node.node, sizes, env)
    return 1


def _range_count(call: nodes.Node, env: Mapping[str, Value]) -> int | None:
    if not (isinstance(call, nodes.Call) and isinstance(call.node, nodes.Name)
            and call.node.name == "range" and len(call.args) == 1):
        return None
    value = fold(call.args[0], env)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _nodes(root: nodes.Node, max_nodes: int, *, own: bool = False) -> Iterator[nodes.Node]:
    """Nodes under ``root``, at most ``max_nodes``; ``own``: not inside nested macros."""
    stack = list(root.iter_child_nodes())
    count = 0
    while stack and count < max_nodes:
        node = stack.pop()
        count += 1
        yield node
        if not (own and isinstance(node, nodes.Macro)):
            stack.extend(node.iter_child_nodes())
