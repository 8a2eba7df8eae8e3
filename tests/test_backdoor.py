"""Backdoor rules end to end: safetensors files through ckptguard.scan with weights on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.model import Category, Severity
from fixtures.backdoor import clean_mlp, neuron_backdoor, rank_one_edit, safetensors_file


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def findings(path: Path, **config: object) -> list:  # type: ignore[type-arg]
    result = scan([path], Config(**config), root=path.parent)  # type: ignore[arg-type]
    return [f for f in result.findings if f.rule_id.startswith("BKD")]


def test_hand_crafted_neuron_is_high_with_its_evidence(tmp_path: Path) -> None:
    path = write(tmp_path, "model.safetensors",
                 safetensors_file(neuron_backdoor(unit=17, target=3)))
    hits = [f for f in findings(path, weights=True) if f.rule_id == "BKD002"]
    first = next(f for f in hits if f.location.tensor == "fc1.weight")
    evidence = first.evidence_dict()
    assert first.severity is Severity.HIGH and first.category is Category.BACKDOOR
    assert evidence["neuron"] == "17" and evidence["consumer"] == "fc2.weight"
    assert float(evidence["z"]) > float(evidence["threshold"])
    assert "Neuron 17" in first.message and "ckptguard probe" in first.message


def test_weights_off_means_no_weight_findings(tmp_path: Path) -> None:
    path = write(tmp_path, "model.safetensors", safetensors_file(neuron_backdoor()))
    assert findings(path) == []


def test_bfloat16_nan_is_an_integrity_finding(tmp_path: Path) -> None:
    values = clean_mlp()["fc1.weight"]
    values[2, 3] = np.nan
    bf16 = (values.view(np.uint32) >> 16).astype(np.uint16)
    data = safetensors_file({}, extra={"fc1.weight": ("BF16", bf16.tobytes(), values.shape)})
    hits = findings(write(tmp_path, "model.safetensors", data), weights=True)
    nan = [f for f in hits if f.rule_id == "BKD001"]
    assert len(nan) == 1 and nan[0].category is Category.INTEGRITY
    assert nan[0].evidence_dict()["nan"] == "1"
    assert nan[0].evidence_dict()["first_flat_index"] == str(2 * 64 + 3)


def test_missing_base_fails_closed(tmp_path: Path) -> None:
    path = write(tmp_path, "model.safetensors", safetensors_file(clean_mlp()))
    hits = findings(path, weights=True, base=str(tmp_path / "nowhere.safetensors"))
    assert [(f.rule_id, f.severity) for f in hits] == [("BKD006", Severity.HIGH)]


def test_identical_to_base_is_silent(tmp_path: Path) -> None:
    base = write(tmp_path, "base.safetensors", safetensors_file(clean_mlp(3)))
    path = write(tmp_path, "model.safetensors", safetensors_file(clean_mlp(3)))
    assert findings(path, weights=True, base=str(base)) == []


def test_edit_of_one_row_is_concentrated(tmp_path: Path) -> None:
    tensors = clean_mlp(3)
    base = write(tmp_path, "base.safetensors", safetensors_file(tensors))
    edited = dict(tensors)
    edited["fc2.weight"] = tensors["fc2.weight"].copy()
    edited["fc2.weight"][11] += 0.5
    path = write(tmp_path, "model.safetensors", safetensors_file(edited))
    hits = [f for f in findings(path, weights=True, base=str(base)) if f.rule_id == "BKD005"]
    assert [f.location.tensor for f in hits] == ["fc2.weight"]
    assert hits[0].severity is Severity.HIGH
    assert hits[0].evidence_dict()["most_changed_row"] == "11"
    assert hits[0].evidence_dict()["rows_changed"] == "1/64"


def test_the_scan_never_imports_torch(tmp_path: Path) -> None:
    path = write(tmp_path, "model.safetensors", safetensors_file(neuron_backdoor()))
    code = ("import sys; from ckptguard.api import scan; from ckptguard.config import Config; "
            f"r = scan([{str(path)!r}], Config(weights=True)); "
            "assert any(f.rule_id == 'BKD002' for f in r.findings); "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(tmp_path))


def _npy(path: Path) -> Path:
    target = path / "fc1.npy"
    np.save(target, neuron_backdoor()["fc1.weight"])
    return target


def _npz(path: Path) -> Path:
    target = path / "model.npz"
    np.savez(target, **{k.replace(".", "_"): v for k, v in neuron_backdoor().items()})
    return target


def _onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    tensors = neuron_backdoor()
    graph = helper.make_graph(
        [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["y"], transB=1)], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 128])],
        [numpy_helper.from_array(v, k) for k, v in tensors.items()])
    target = path / "model.onnx"
    onnx.save(helper.make_model(graph), str(target))
    return target


def _torch_zip(path: Path) -> Path:
    torch = pytest.importorskip("torch")
    target = path / "model.pt"
    torch.save({k: torch.from_numpy(v).to(torch.bfloat16) for k, v in
                neuron_backdoor().items()}, str(target))
    return target


@pytest.mark.parametrize("writer", [_npy, _npz, _onnx, _torch_zip],
                         ids=["npy", "npz", "onnx", "torch-zip-bf16"])
def test_every_tensor_format_reaches_the_statistics(tmp_path: Path, writer) -> None:  # type: ignore[no-untyped-def]
    path = writer(tmp_path)
    hits = findings(path, weights=True)
    assert any(f.rule_id == "BKD002" and f.severity is Severity.HIGH for f in hits), hits
    # The neuron is one row: a rank-one structure, but reported once, as a neuron.
    assert not [f for f in hits if f.rule_id == "BKD003"]


def test_a_rank_one_structure_the_base_shares_is_the_base_s(tmp_path: Path) -> None:
    """BKD003 (no-base edit detection) judges only tensors without a partner once a plausible
    base is given: a structure the base holds too is not this checkpoint's doing, and its own
    edits show in the delta.  An implausible base proves nothing, so BKD003 still judges."""
    structured = rank_one_edit(clean_mlp(3), "fc2.weight", strength=1.5)
    rng = np.random.default_rng(9)
    tuned = {name: (w + rng.standard_normal(w.shape).astype(np.float32) * np.float32(1e-3))
             for name, w in structured.items()}
    path = write(tmp_path, "model.safetensors", safetensors_file(tuned))
    alone = [f.location.tensor for f in findings(path, weights=True) if f.rule_id == "BKD003"]
    assert alone == ["fc2.weight"]
    parent = write(tmp_path, "parent.safetensors", safetensors_file(structured))
    assert not [f for f in findings(path, weights=True, base=str(parent))
                if f.rule_id in ("BKD003", "BKD005", "BKD012")]
    stranger = write(tmp_path, "stranger.safetensors", safetensors_file(clean_mlp(8)))
    hits = findings(path, weights=True, base=str(stranger))
    assert "BKD006" in {f.rule_id for f in hits}  # the implausible parent is named
    assert [f.location.tensor for f in hits if f.rule_id == "BKD003"] == ["fc2.weight"]
