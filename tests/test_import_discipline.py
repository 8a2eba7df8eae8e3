"""The payload path imports neither torch nor onnx (nor other heavy optional libraries): a
pre-commit run on a pickle must not pay for them, and torch belongs to the probes stage only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fixtures.basic_formats import plain_data_pickle, safetensors_bytes
from fixtures.examples import malicious_pickle

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "onnx", "h5py", "sklearn", "distributed", "dask", "jinja2", "fickling")

PROBE = """
import json, sys
from ckptguard.api import scan
result = scan(sys.argv[1:])
print(json.dumps({"heavy": sorted(m for m in sys.modules if m.split('.')[0] in %r),
                  "failed": result.failed}))
"""


def _imported(paths: list[Path]) -> dict[str, object]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    completed = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *map(str, paths)],
                               capture_output=True, text=True, env=env, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_scanning_a_clean_pickle_imports_no_heavy_library(tmp_path: Path) -> None:
    clean = tmp_path / "clean.pkl"
    clean.write_bytes(plain_data_pickle())
    outcome = _imported([clean])
    assert outcome["failed"] is False
    assert outcome["heavy"] == []


def test_a_hostile_pickle_costs_at_most_the_decompiler(tmp_path: Path, canary: Path) -> None:
    # fickling renders the decompiled payload as evidence, only once a payload was found.
    hostile = tmp_path / "model.bin"
    hostile.write_bytes(malicious_pickle(f"touch {canary}"))
    outcome = _imported([hostile])
    assert outcome["failed"] is True
    assert {m.split(".")[0] for m in outcome["heavy"]} <= {"fickling"}  # type: ignore[attr-defined]


def test_scanning_safetensors_imports_no_heavy_library(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(safetensors_bytes({"w": ("F32", (2,), b"\0" * 8)}))
    assert _imported([weights])["heavy"] == []
