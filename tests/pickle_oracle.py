"""A safe oracle for tests and fuzzing (never used by the scanner): CPython's own C unpickler runs
the stream, with a ``find_class`` that returns inert recording stubs instead of real globals, so
the loader's VM itself reports which globals a stream imports and which it calls.

It runs in a child process (``python -I``) with an address-space and CPU limit.  Nothing real is
ever imported or called: every global is a freshly made stub class whose construction, calls
and method calls only append to a list.  Two readings are run, as loaders differ:

* ``memory``: the stream read in order, as ``pickle.loads`` does (a file object whose ``peek``
  hands over everything that is left keeps the C unpickler's buffer equal to the whole stream);
* ``file``: over an ``io.BytesIO``, as ``torch.load`` reads ``data.pkl`` and ``pickle.load``
  reads a file, where FRAME bodies are buffered.

Up to ``pickles`` pickles are read one after another from the same stream (torch's legacy
format reads five).  The result is JSON: for each reading, the raw ``"module name"`` of every
global imported, of every global called, and the error that stopped it (if any).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from dataclasses import dataclass

MEMORY_LIMIT = 1 << 30
CPU_SECONDS = 20

_CHILD = r'''
import io, json, pickle, sys

imports, calls = [], []

class _Meta(type):
    def __call__(cls, *args, **kwargs):
        calls.append(cls._stub_name)
        return _Value()

class _Value:
    """What a stub call returns: absorbs whatever the unpickler does to an object."""
    def __setstate__(self, state): pass
    def append(self, item): pass
    def extend(self, items): pass
    def add(self, item): pass
    def __setitem__(self, key, value): pass
    def __call__(self, *args, **kwargs):
        calls.append("<result of a call>")
        return _Value()

def _stub(module, name):
    imports.append(f"{module} {name}")
    cls = _Meta(f"Stub_{len(imports)}", (_Value,), {"_stub_name": f"{module} {name}"})
    def _new(klass, *args, **kwargs):
        calls.append(klass._stub_name)
        return object.__new__(klass)
    cls.__new__ = staticmethod(_new)
    return cls

class Oracle(pickle.Unpickler):
    def find_class(self, module, name):
        return _stub(module, name)
    def persistent_load(self, pid):
        return _Value()

class WholePeek(io.BytesIO):
    """peek() returns everything left: the C unpickler then reads the stream in order."""
    def peek(self, size=0):
        return self.getvalue()[self.tell():]

def run(stream, pickles):
    del imports[:], calls[:]
    error = None
    for _ in range(pickles):
        if stream.tell() >= len(stream.getvalue()):
            break
        try:
            Oracle(stream).load()
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            break
    return {"imports": list(imports), "calls": list(calls), "error": error}

data = sys.stdin.buffer.read()
pickles = int(sys.argv[1])
result = {"memory": run(WholePeek(data), pickles), "file": run(io.BytesIO(data), pickles)}
sys.stdout.write(json.dumps(result))
'''


@dataclass(frozen=True)
class Reading:
    imports: tuple[str, ...]  # raw "module name" of each global, in order
    calls: tuple[str, ...]  # raw "module name" of each global called (constructed or reduced)
    error: str | None


def _limits() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (CPU_SECONDS, CPU_SECONDS))


def run_oracle(data: bytes, *, pickles: int = 1,
               timeout: float = 60.0) -> dict[str, Reading] | None:
    """The loader's own reading of ``data`` (``memory`` and ``file``), or None when the child
    died (memory or CPU limit, timeout): the C unpickler itself could not finish."""
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _CHILD, str(pickles)], input=data,
                              capture_output=True, timeout=timeout, preexec_fn=_limits,
                              check=False)
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        return None
    raw = json.loads(done.stdout)
    return {mode: Reading(tuple(r["imports"]), tuple(r["calls"]), r["error"])
            for mode, r in raw.items()}
