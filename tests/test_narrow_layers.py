"""Layers too narrow to say anything about rank: a Linear(1, 512) weight (a diffusion model's
time projection, a scalar input) is rank one by its shape, and so is every change to it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.weights.thresholds import LOW_RANK_MIN_SIDE, RANK_ONE_MIN_SIDE
from tests.test_extreme_weights import write_safetensors


def model(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {f"blocks.{i}.time_proj.weight": rng.standard_normal((512, 1)) for i in range(4)}
    tensors["head.weight"] = rng.standard_normal((512, 2))
    tensors["scalar_in.weight"] = rng.standard_normal((300, 3))
    tensors.update({f"blocks.{i}.mlp.weight": rng.standard_normal((256, 128)) for i in range(4)})
    return {name: (array * 0.02).astype(np.float32) for name, array in tensors.items()}


def fine_tuned(base: dict[str, np.ndarray], seed: int = 1) -> dict[str, np.ndarray]:
    """Every tensor moved by small independent noise: an honest full fine-tune."""
    rng = np.random.default_rng(seed)
    return {name: array + (rng.standard_normal(array.shape) * 0.002).astype(np.float32)
            for name, array in base.items()}


def backdoor_findings(folder: Path, base: Path | None) -> list[tuple[str, str]]:
    result = scan([folder / "model.safetensors"],
                  Config(weights=True, base=str(base) if base else None), root=folder, jobs=1)
    return sorted((f.rule_id, f.severity.label) for f in result.findings
                  if f.rule_id.startswith("BKD"))


def test_the_thresholds_leave_room_above_the_ranks_they_test() -> None:
    assert RANK_ONE_MIN_SIDE >= 4  # share >= 0.3 of sigma1 is trivial below 4 directions
    assert LOW_RANK_MIN_SIDE > 8  # the top-8 share is 1 for any matrix of 8 columns or fewer


def test_an_honest_fine_tune_of_narrow_layers_is_quiet(tmp_path: Path) -> None:
    base = model()
    write_safetensors(tmp_path / "base.safetensors", base)
    write_safetensors(tmp_path / "model.safetensors", fine_tuned(base))
    assert backdoor_findings(tmp_path, tmp_path / "base.safetensors") == []
    assert backdoor_findings(tmp_path, None) == []


def test_a_narrow_layer_alone_is_no_rank_one_edit(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    write_safetensors(tmp_path / "model.safetensors",
                      {"proj.weight": (rng.standard_normal((512, 1)) * 0.02).astype(np.float32)})
    assert backdoor_findings(tmp_path, None) == []


def test_an_edit_of_a_wide_layer_beside_them_is_still_caught(tmp_path: Path) -> None:
    base = model()
    write_safetensors(tmp_path / "base.safetensors", base)
    edited = {name: array.copy() for name, array in base.items()}
    target = edited["blocks.2.mlp.weight"]
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(target.shape[0]), rng.standard_normal(target.shape[1])
    target += (0.05 * np.linalg.norm(target) * np.outer(u / np.linalg.norm(u),
                                                        v / np.linalg.norm(v))).astype(np.float32)
    write_safetensors(tmp_path / "model.safetensors", edited)
    found = backdoor_findings(tmp_path, tmp_path / "base.safetensors")
    assert ("BKD005", "high") in found and ("BKD012", "high") in found, found
