"""A decompiled Python view of a pickle, from fickling, as evidence for payload findings.

Only evidence, never a verdict: the input is bounded, any failure reads "unavailable", and it is
computed only for pickles that import a name from a module that can run code.  fickling is LGPL;
ckptguard depends on it and calls it, nothing more.
"""

from __future__ import annotations

MAX_DECOMPILE_BYTES = 64 * 1024
MAX_VIEW_CHARS = 1500
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


def decompiled_view(data: bytes) -> str:
    """Python source equivalent to one pickle, bounded; "unavailable (...)" on any failure."""
    if len(data) > MAX_DECOMPILE_BYTES:
        return f"unavailable (pickle larger than {MAX_DECOMPILE_BYTES} bytes)"
    try:
        import ast

        from fickling.fickle import Pickled

        text = ast.unparse(Pickled.load(data).ast)
    except Exception as exc:  # noqa: BLE001 - evidence only: any failure is "unavailable"
        return f"unavailable ({type(exc).__name__})"
    return text if len(text) <= MAX_VIEW_CHARS else text[:MAX_VIEW_CHARS] + "\n…"
