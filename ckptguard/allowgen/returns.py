"""Whether a function returns only data.

A listed function must not hand the pickle a callable that is not on the allowlist: a REDUCE
result can be the callable of a later REDUCE, so ``def get(kind): return _LOADERS[kind]`` or
``def loader_of(obj): return obj.loader`` would launder ``torch.load``.  A return value counts as
data when it is built only from constants, parameters (and their items), locals assigned such
values, operators, containers and comprehensions of them, and calls to built-ins, known-safe
callables, classes, or functions that themselves return data.  Attribute reads and module-level
names are not data: they may be functions.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from ckptguard.allowgen.effects import Function

DATA_BUILTINS = frozenset({
    "abs", "all", "any", "bool", "bytes", "bytearray", "chr", "complex", "dict", "divmod",
    "enumerate", "float", "format", "frozenset", "hash", "hex", "int", "isinstance",
    "issubclass", "len", "list", "max", "min", "oct", "ord", "pow", "range", "repr", "reversed",
    "round", "set", "slice", "sorted", "str", "sum", "tuple", "zip", "callable", "hasattr",
})


def _own_returns(func: Function) -> list[ast.Return]:
    found: list[ast.Return] = []
    pending: list[ast.AST] = list(func.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            found.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return found


class DataCheck:
    """``callee_returns_data(call)`` judges a call's result (the analyser supplies it)."""

    def __init__(self, func: Function, callee_returns_data: Callable[[ast.Call], bool]) -> None:
        self.params = {a.arg for a in [*func.args.posonlyargs, *func.args.args,
                                       *func.args.kwonlyargs]}
        for extra in (func.args.vararg, func.args.kwarg):
            if extra is not None:
                self.params.add(extra.arg)
        self.callee = callee_returns_data
        self.assigned: dict[str, list[ast.expr | None]] = {}
        for node in ast.walk(func):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self._bind(target, node.value)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                self._bind(node.target, node.value)
            elif isinstance(node, (ast.For, ast.comprehension)):
                self._bind(node.target, node.iter, element=True)
            elif isinstance(node, (ast.With, ast.AsyncWith)):
                for item in node.items:
                    if item.optional_vars is not None:
                        self._bind(item.optional_vars, None)
            elif isinstance(node, ast.NamedExpr):
                self._bind(node.target, node.value)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    self.assigned.setdefault((alias.asname or alias.name).split(".")[0],
                                             []).append(None)
        self._busy: set[str] = set()

    def _bind(self, target: ast.AST, value: ast.expr | None, element: bool = False) -> None:
        if isinstance(target, ast.Name):
            self.assigned.setdefault(target.id, []).append(value)
        elif isinstance(target, (ast.Tuple, ast.List)):
            for item in target.elts:  # unpacking: an element of the value
                self._bind(item, value, True)
        else:
            return  # attribute or item stores bind no local

    def returns_data(self, func: Function) -> bool:
        return all(r.value is None or self.data(r.value) for r in _own_returns(func))

    def data(self, node: ast.expr) -> bool:
        if isinstance(node, (ast.Constant, ast.JoinedStr)):
            return True
        if isinstance(node, ast.Name):
            return self._name(node.id)
        if isinstance(node, (ast.BinOp,)):
            return self.data(node.left) and self.data(node.right)
        if isinstance(node, ast.UnaryOp):
            return self.data(node.operand)
        if isinstance(node, (ast.Compare, ast.BoolOp)):
            parts = [node.left, *node.comparators] if isinstance(node, ast.Compare) \
                else node.values
            return all(self.data(p) for p in parts)
        if isinstance(node, ast.IfExp):
            return self.data(node.body) and self.data(node.orelse)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return all(self.data(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            return all(k is None or self.data(k) for k in node.keys) and \
                all(self.data(v) for v in node.values)
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp)):
            return self.data(node.elt)
        if isinstance(node, ast.DictComp):
            return self.data(node.key) and self.data(node.value)
        if isinstance(node, (ast.Subscript, ast.Starred)):
            return self.data(node.value)
        if isinstance(node, ast.Call):
            return self.callee(node)
        return False  # attribute reads, lambdas, awaits, ...

    def _name(self, name: str) -> bool:
        if name in self.params and name not in self.assigned:
            return True
        values = self.assigned.get(name)
        if not values or name in self._busy:
            return name in self._busy  # a local defined in terms of itself: judged elsewhere
        self._busy.add(name)
        try:
            return all(v is not None and self.data(v) for v in values)
        finally:
            self._busy.discard(name)
