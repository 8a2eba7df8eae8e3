"""A decompiled Python view of a pickle, from fickling, as evidence for payload findings.

Only evidence, never a verdict: the input is bounded, any failure reads "unavailable", and it is
computed only for pickles that import a name from a module that can run code.  fickling is LGPL;
ckptguard depends on it and calls it, nothing more.
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from contextlib import redirect_stderr
from typing import TypeVar

MAX_DECOMPILE_BYTES = 64 * 1024
MAX_VIEW_CHARS = 1500
# fickling builds its syntax tree with memo-shared objects as shared nodes, so a 560-byte pickle
# of lists holding the previous list twice unparses to an exponentially long text.  The tree is
# measured as unparsing would expand it, and that walk stops at this budget (nodes plus the
# characters of constants), so rendering costs at most a bounded amount whatever the pickle.
MAX_RENDER_COST = 50_000
# Top-level modules whose names make a decompiled view worth its cost.
SUSPECT_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "builtins", "__builtin__", "importlib", "sys", "operator",
    "_operator", "functools", "pty", "socket", "shutil", "ctypes", "_ctypes", "marshal", "types",
    "runpy", "code", "pickle", "_pickle", "cPickle", "dill", "webbrowser", "io", "_io", "codecs",
    "pathlib", "urllib", "http", "requests", "multiprocessing", "asyncio", "pdb", "timeit",
})


# Names from those modules that ordinary pickles import (not worth a decompile).
ORDINARY = frozenset({
    "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.complex",
    "builtins.slice", "builtins.range", "builtins.object", "builtins.int", "builtins.float",
    "builtins.str", "builtins.bytes", "builtins.list", "builtins.tuple", "builtins.dict",
    "builtins.bool", "functools.partial", "functools.reduce",
})


def suspect(qualname: str) -> bool:
    return qualname.split(".", 1)[0] in SUSPECT_MODULES and qualname not in ORDINARY


def _renders_within(tree: object, budget: int) -> bool:
    """Whether unparsing ``tree`` costs at most ``budget``, counting a shared node once per use
    (as ``ast.unparse`` does); the walk itself stops as soon as the budget is spent."""
    import ast

    stack: list[ast.AST] = [tree] if isinstance(tree, ast.AST) else []
    spent = 0
    while stack:
        node = stack.pop()
        spent += 1
        value = getattr(node, "value", None) if isinstance(node, ast.Constant) else None
        if isinstance(value, (str, bytes)):
            spent += len(value)
        if spent > budget:
            return False
        for name in node._fields:  # not ast.iter_child_nodes: fickling stores tuples, too
            field = getattr(node, name, None)
            if isinstance(field, ast.AST):
                stack.append(field)
            elif isinstance(field, (list, tuple)):
                stack.extend(item for item in field if isinstance(item, ast.AST))
    return True


# fickling reports a pickle it cannot follow on sys.stderr and carries on: a memo key never
# stored becomes a placeholder None (a view reading "None('echo')", where a loader stops with an
# error), an unreadable stream an empty tree (an empty view).  Those messages would reach the
# user's terminal in the middle of a report, unformatted.  They are captured instead, and such
# a view is "unavailable" with fickling's reason.  Capturing swaps sys.stderr, so one decompile
# runs at a time; any other line written meanwhile is passed on to the real stderr.
_FICKLING_WARNING = "Warning: "
_UNFAITHFUL = ("Warning: malformed pickle file.", "Warning: resource limits exceeded")
_STDERR_SWAP = threading.Lock()
_Result = TypeVar("_Result")


def _with_stderr_captured(work: Callable[[], _Result]) -> tuple[_Result, list[str]]:
    """``work()`` with its writes to sys.stderr captured; its result and fickling's warnings
    (other lines are written to the real stderr afterwards)."""
    captured = io.StringIO()
    warnings: list[str] = []
    try:
        with _STDERR_SWAP, redirect_stderr(captured):
            result = work()
    finally:  # also when ``work`` fails: what others wrote meanwhile is never lost
        others: list[str] = []
        for line in captured.getvalue().splitlines(keepends=True):
            (warnings if line.startswith(_FICKLING_WARNING) else others).append(line)
        if others:
            sys.stderr.write("".join(others))
    return result, [line.strip() for line in warnings]


def decompiled_view(data: bytes) -> str:
    """Python source equivalent to one pickle, bounded; "unavailable (...)" on any failure,
    including a pickle fickling could only follow with placeholders."""
    if len(data) > MAX_DECOMPILE_BYTES:
        return f"unavailable (pickle larger than {MAX_DECOMPILE_BYTES} bytes)"
    try:
        import ast

        from fickling.fickle import Pickled

        tree, warnings = _with_stderr_captured(lambda: Pickled.load(data).ast)
        unfaithful = [w for w in warnings if w.startswith(_UNFAITHFUL)]
        if unfaithful:
            reason = unfaithful[0].removeprefix("Warning: ").split(";", 1)[0]
            return f"unavailable (fickling: {reason[:200]})"
        if not _renders_within(tree, MAX_RENDER_COST):
            return f"unavailable (the decompiled text would exceed {MAX_RENDER_COST} units)"
        text = ast.unparse(tree)
    except Exception as exc:  # noqa: BLE001 - evidence only: any failure is "unavailable"
        return f"unavailable ({type(exc).__name__})"
    return text if len(text) <= MAX_VIEW_CHARS else text[:MAX_VIEW_CHARS] + "\n…"
