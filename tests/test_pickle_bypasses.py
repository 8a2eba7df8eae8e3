"""Regression tests named after published bypasses of pickle scanners: each gadget, called from a
pickle, must be reported as critical.  Built from opcodes; nothing is ever loaded."""

from __future__ import annotations

import pytest

from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.parser import parse
from ckptguard.model import Severity
from ckptguard.source import MemorySource
from fixtures.pickle_asm import STOP, binunicode, call, glob, proto, stack_global, text

RULES = RuleSet.load()

# (test id, module, name): gadgets that reached code execution past some scanner's denylist.
GADGETS = [
    ("torch_jit_execwrapper", "torch.jit.unsupported_tensor_ops", "execWrapper"),
    ("asyncio_subprocess_transport", "asyncio.unix_events", "_UnixSubprocessTransport._start"),
    ("pip_main", "pip", "main"),
    ("bdb_run", "bdb", "Bdb.run"),
    ("numpy_runstring", "numpy.testing._private.utils", "runstring"),
    ("idlelib_runcode", "idlelib.pyshell", "ModifiedInterpreter.runcode"),
    ("code_interactive_runcode", "code", "InteractiveInterpreter.runcode"),
    ("timeit_timer", "timeit", "timeit"),
    ("cprofile_run", "cProfile", "run"),
    ("pydoc_pipepager", "pydoc", "pipepager"),
    ("torch_inductor_compile", "torch._inductor.codecache", "compile_file"),
    ("ctypes_util_find_library", "ctypes.util", "find_library"),
    ("io_fileio", "_io", "FileIO"),
    ("pty_spawn", "pty", "spawn"),
    ("runpy_run_path", "runpy", "run_path"),
    ("webbrowser_open", "webbrowser", "open"),
    ("shutil_rmtree", "shutil", "rmtree"),
    ("multiprocessing_util_spawnv_passfds", "multiprocessing.util", "spawnv_passfds"),
]


def _critical(stream: bytes) -> list[str]:
    artifact = Artifact(("gadget.pkl",), MemorySource(stream))
    output = parse(artifact, ParseContext())
    return [f.message for f in RULES.evaluate("pickle", artifact, output)
            if f.severity == Severity.CRITICAL]


@pytest.mark.parametrize(("module", "name"), [g[1:] for g in GADGETS], ids=[g[0] for g in GADGETS])
def test_gadget_is_critical(module: str, name: str) -> None:
    by_global = proto(2) + call(glob(module, name), binunicode("x")) + STOP
    assert _critical(by_global), f"{module}.{name} via GLOBAL"
    by_stack_global = proto(4) + stack_global(module, name) + text("x") + b"\x85R" + STOP
    assert _critical(by_stack_global), f"{module}.{name} via STACK_GLOBAL"


def test_torchscript_helpers_stay_allowed() -> None:
    stream = proto(2) + call(glob("torch.jit._pickle", "build_intlist"), b"]") + STOP
    assert not _critical(stream)


def test_no_allowlisted_name_is_also_denylisted() -> None:
    """The denylist wins over the allowlist, so an overlap would fail ordinary files."""
    denied = RULES.lists["dangerous_callables"]
    overlap = [e.pattern for e in RULES.lists["safe_globals"].entries()
               if denied.lookup(e.pattern.replace("*", "x")) is not None]
    assert not overlap


@pytest.mark.parametrize("list_file", ["builtins.yaml", "python_stdlib.yaml"])
def test_stdlib_allowlist_names_exist(list_file: str) -> None:
    """Every exact name in the stdlib allowlists is importable (no typos, no Python 2 names:
    those are normalized before matching)."""
    import importlib
    from pathlib import Path

    from ckptguard.engine.namelists import load_list_file
    from ckptguard.engine.ruleset import rules_directory

    names = load_list_file(Path(rules_directory()) / "lists" / "safe_globals" / list_file)
    missing = []
    for entry in names.entries():
        module, _, attribute = entry.pattern.rpartition(".")
        try:
            getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            missing.append(entry.pattern)
    assert not missing
