"""Constant folding of Jinja expressions, to see names a template spells indirectly.

``'__cla' ~ 'ss__'``, ``['__cla', 'ss__']|join``, ``'{}{}'.format('__cla', 'ss__')``,
``'__SSALC__'|lower|reverse`` all become ``'__class__'`` here, without running anything: only
string and small-integer arithmetic on literals (and on variables the template ``set`` to
literals) is evaluated, with every result bounded.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from jinja2 import nodes

Value: TypeAlias = "str | int | tuple[Value, ...]"
MAX_STRING = 4096  # longer folded strings are not followed
MAX_INT = 10**12  # integers saturate here (so ``10 ** 99`` costs nothing)

_STR_FILTERS = {"lower", "upper", "reverse", "string", "trim", "title", "capitalize"}
_STR_METHODS = {"lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize", "format",
                "join", "replace"}


def _bounded(value: Value | None) -> Value | None:
    if isinstance(value, str) and len(value) > MAX_STRING:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return max(-MAX_INT, min(MAX_INT, value))
    return value


def _str_method(name: str, text: str, args: list[Value]) -> Value | None:
    if name in ("lower", "upper", "strip", "lstrip", "rstrip", "title", "capitalize") and not args:
        return str(getattr(text, name)())
    if name == "replace" and len(args) in (2, 3) and all(isinstance(a, str) for a in args[:2]):
        return text.replace(str(args[0]), str(args[1]))
    if name == "join" and len(args) == 1 and isinstance(args[0], tuple):
        parts = [p for p in args[0] if isinstance(p, str)]
        return text.join(parts) if len(parts) == len(args[0]) else None
    if name == "format" and all(isinstance(a, (str, int)) for a in args):
        try:
            return text.format(*args)
        except (IndexError, KeyError, ValueError):
            return None
    return None


def _percent(text: str, arg: Value) -> Value | None:
    try:
        return text % arg
    except (TypeError, ValueError, KeyError):
        return None


def _filter(node: nodes.Filter, base: Value | None, env: Mapping[str, Value]) -> Value | None:
    args = [fold(a, env) for a in node.args]
    if base is None or any(a is None for a in args):
        return None
    clean = [a for a in args if a is not None]
    if node.name in _STR_FILTERS and isinstance(base, str) and not clean:
        if node.name == "reverse":
            return base[::-1]
        if node.name == "trim":
            return base.strip()
        return base if node.name == "string" else str(getattr(base, node.name)())
    if node.name in ("first", "last") and isinstance(base, tuple) and base and not clean:
        return base[0] if node.name == "first" else base[-1]
    if node.name == "list" and isinstance(base, (str, tuple)) and not clean:
        return tuple(base)
    if node.name == "join" and isinstance(base, tuple):
        sep = clean[0] if clean and isinstance(clean[0], str) else ""
        return _str_method("join", sep, [base])
    if node.name == "replace" and isinstance(base, str):
        return _str_method("replace", base, clean)
    if node.name == "format" and isinstance(base, str):
        return _percent(base, tuple(clean))
    return None


def _binary(node: nodes.BinExpr, env: Mapping[str, Value]) -> Value | None:
    left, right = fold(node.left, env), fold(node.right, env)
    if left is None or right is None:
        return None
    if isinstance(node, nodes.Add):
        if isinstance(left, str) and isinstance(right, str):
            return left + right
        if isinstance(left, int) and isinstance(right, int):
            return left + right
    if isinstance(node, nodes.Mul):
        if isinstance(left, int) and isinstance(right, int):
            return left * right
        text, count = (left, right) if isinstance(left, str) else (right, left)
        if isinstance(text, str) and isinstance(count, int):
            return text * count if len(text) * max(count, 0) <= MAX_STRING else None
    if isinstance(node, nodes.Pow) and isinstance(left, int) and isinstance(right, int):
        if right < 0:
            return None
        return MAX_INT if right > 64 and abs(left) > 1 else left ** right
    if isinstance(node, nodes.Mod) and isinstance(left, str):
        return _percent(left, right)
    return None


def fold(node: nodes.Node | None, env: Mapping[str, Value]) -> Value | None:
    """The literal value of ``node`` when it is computed from literals only, else None."""
    result: Value | None = None
    if isinstance(node, nodes.Const):
        value = node.value
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            result = value
    elif isinstance(node, (nodes.List, nodes.Tuple)):
        items = [fold(item, env) for item in node.items]
        result = tuple(i for i in items if i is not None) if None not in items else None
    elif isinstance(node, nodes.Name):
        result = env.get(node.name)
    elif isinstance(node, nodes.Concat):
        parts = [fold(item, env) for item in node.nodes]
        result = "".join(str(p) for p in parts) if all(
            isinstance(p, (str, int)) for p in parts) else None
    elif isinstance(node, nodes.BinExpr):
        result = _binary(node, env)
    elif isinstance(node, nodes.Filter) and node.node is not None:
        result = _filter(node, fold(node.node, env), env)
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr) \
            and node.node.attr in _STR_METHODS:
        base = fold(node.node.node, env)
        args = [fold(a, env) for a in node.args]
        if isinstance(base, str) and None not in args and not node.kwargs:
            result = _str_method(node.node.attr, base, [a for a in args if a is not None])
    elif isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) \
            and node.node.name == "dict" and not node.args and "dict" not in env:
        result = tuple(kw.key for kw in node.kwargs)  # dict(__cla=1) spells its keys
    elif isinstance(node, nodes.Getitem):
        base, key = fold(node.node, env), fold(node.arg, env)
        if isinstance(base, (str, tuple)) and isinstance(key, int) \
                and -len(base) <= key < len(base):
            result = base[key]
    return _bounded(result)
