"""Prove a hostile fixture live: run its real loader in a subprocess whose working directory is
the fixture's folder (so a module planted beside the checkpoint is importable, as it is for a
loader run from there), then report whether the canary file appeared.

This is the only place a payload is allowed to run, and every payload only creates the canary.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Loader:
    name: str
    requires: tuple[str, ...]
    load: str  # Python statements; ``path`` is the checkpoint, the loaded object goes in ``obj``
    after: str = ""  # statements run after loading (e.g. a forward pass); ``obj`` is the result

    @property
    def imports(self) -> tuple[str, ...]:
        """The loader's own library (imported before loading, as the user's program would)."""
        return tuple(mod for mod in self.requires if mod in ("torch", "joblib"))


LOADERS = {
    "pickle.load": Loader("pickle.load", (),
                          "with open(path, 'rb') as f:\n    obj = pickle.load(f)"),
    "torch.load": Loader("torch.load(weights_only=False)", ("torch",),
                         "obj = torch.load(path, weights_only=False)"),
    "torch.load+forward": Loader("torch.load(weights_only=False) then forward", ("torch",),
                                 "obj = torch.load(path, weights_only=False)",
                                 "obj(torch.zeros(2))"),
    "joblib.load": Loader("joblib.load", ("joblib", "sklearn"), "obj = joblib.load(path)"),
    "torch.package": Loader("torch.package.PackageImporter.load_pickle", ("torch",),
                            "from torch.package import PackageImporter\n"
                            "obj = PackageImporter(path).load_pickle('res', 'model.pkl')"),
    "torch.jit.load": Loader("torch.jit.load", ("torch",), "obj = torch.jit.load(path)"),
}

SCRIPT = '''
import json, os, pickle, sys, warnings
warnings.simplefilter("ignore")
path, canary = sys.argv[1], sys.argv[2]
report = {{"loaded": None, "after": None}}
{imports}
try:
{load}
    report["loaded"] = "ok"
except Exception as exc:
    report["loaded"] = type(exc).__name__ + ": " + str(exc)[:200]
report["at_load"] = os.path.exists(canary)
if {has_after}:
    try:
{after}
        report["after"] = "ok"
    except Exception as exc:
        report["after"] = type(exc).__name__ + ": " + str(exc)[:200]
report["canary"] = os.path.exists(canary)
print(json.dumps(report))
'''


@dataclass(frozen=True)
class Proof:
    loaded: str  # "ok" or the exception the loader raised (after the payload ran)
    at_load: bool  # the canary existed right after loading
    after: str | None  # outcome of the post-load step, if any
    canary: bool  # the canary existed at the end


def missing(loader: Loader) -> list[str]:
    return [mod for mod in loader.requires if importlib.util.find_spec(mod) is None]


def skip_unless_installed(loader: Loader) -> None:
    absent = missing(loader)
    if absent:
        pytest.skip(f"{loader.name} needs {', '.join(absent)}, not installed")


def run_loader(loader: Loader, path: Path, canary: Path) -> Proof:
    """Run ``loader`` on ``path`` in a fresh interpreter with the fixture folder as working
    directory; ``canary`` must not exist beforehand."""
    assert not canary.exists()
    imports = "".join(f"import {mod}\n" for mod in loader.imports)
    script = SCRIPT.format(imports=imports, load=textwrap.indent(loader.load, " " * 4),
                           after=textwrap.indent(loader.after or "pass", " " * 8),
                           has_after=bool(loader.after))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONSAFEPATH", "PYTHONPATH")}
    completed = subprocess.run(
        [sys.executable, "-c", script, str(path), str(canary)], cwd=path.parent, env=env,
        capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    return Proof(report["loaded"], report["at_load"], report["after"], report["canary"])
