"""Weight statistics on transformer-shaped checkpoints: residual outlier dimensions are the
model's geometry, GPT-2 Conv1D output neurons are columns, and a base diff pairs tensors across
task-model prefixes, says when it cannot, and doubts a base that cannot be the parent."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.model import Severity
from fixtures.backdoor import clean_mlp, honest_finetune, neuron_backdoor, safetensors_file
from fixtures.backdoor_transformer import (
    GPT2_UNIT,
    OUTLIER_DIMS,
    bert_finetune,
    bert_like,
    bert_neuron_backdoor,
    gpt2_like,
    gpt2_neuron_backdoor,
)


def save(folder: Path, tensors: dict[str, np.ndarray], model_type: str | None = None,
         name: str = "model.safetensors") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(safetensors_file(tensors))
    if model_type is not None:
        (folder / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


def bkd(path: Path, **config: object) -> list:  # type: ignore[type-arg]
    result = scan([path], Config(weights=True, **config), root=path.parent)  # type: ignore[arg-type]
    return [f for f in result.findings if f.rule_id.startswith("BKD")]


def test_the_fixture_has_the_outlier_rows_real_models_have() -> None:
    """The fixture is only worth something if its residual writers really carry huge rows."""
    from ckptguard.weights.stats import robust_outlier

    down = bert_like()["encoder.layer.0.output.dense.weight"].astype(np.float64)
    row = robust_outlier(np.linalg.norm(down, axis=1))
    assert row is not None and row.index in OUTLIER_DIMS and row.z > 20


def test_outlier_dimensions_of_the_residual_stream_raise_nothing(tmp_path: Path) -> None:
    assert bkd(save(tmp_path / "bert", bert_like(), "bert")) == []


def test_a_planted_mlp_neuron_still_fires_high_among_outlier_dimensions(tmp_path: Path) -> None:
    hits = bkd(save(tmp_path / "bad", bert_neuron_backdoor(unit=40), "bert"))
    high = [f for f in hits if f.rule_id == "BKD002" and f.severity is Severity.HIGH]
    assert sorted((f.location.tensor, f.evidence_dict()["neuron"]) for f in high) == [
        ("encoder.layer.1.intermediate.dense.weight", "40"),  # reads the trigger
        ("encoder.layer.1.output.dense.weight", "30")]  # writes the stream, fed by unit 40
    writer = next(f for f in high if "output.dense" in str(f.location.tensor))
    assert writer.evidence_dict()["feeder"] == "encoder.layer.1.intermediate.dense.weight#40"


def test_a_residual_row_outlier_without_company_is_still_reported(tmp_path: Path) -> None:
    tensors = bert_like()
    down = tensors["encoder.layer.1.output.dense.weight"].copy()
    down[40] *= 40.0  # dimension 40 is ordinary everywhere else
    tensors["encoder.layer.1.output.dense.weight"] = down
    hits = [f for f in bkd(save(tmp_path / "row", tensors, "bert")) if f.rule_id == "BKD002"]
    assert [f.evidence_dict()["neuron"] for f in hits] == ["40"]
    # A residual writer's row alone is one signal: medium (kurtosis is no evidence there).
    assert hits[0].severity is Severity.MEDIUM


def test_gpt2_conv1d_output_neurons_are_columns(tmp_path: Path) -> None:
    hits = [f for f in bkd(save(tmp_path / "gpt2", gpt2_neuron_backdoor(), "gpt2"))
            if f.rule_id == "BKD002" and f.severity is Severity.HIGH]
    assert sorted((f.location.tensor, f.evidence_dict()["neuron"]) for f in hits) == [
        ("transformer.h.1.mlp.c_fc.weight", str(GPT2_UNIT)),  # its column reads the trigger
        ("transformer.h.1.mlp.c_proj.weight", "5")]  # its column 5 writes the stream
    fc = next(f for f in hits if "c_fc" in str(f.location.tensor))
    assert fc.evidence_dict()["consumer"] == "transformer.h.1.mlp.c_proj.weight"


def test_gpt2_layout_is_recognised_by_names_without_a_config(tmp_path: Path) -> None:
    from ckptguard.weights.layout import layout_for

    names = list(gpt2_like())
    layout = layout_for(None, names)
    assert layout.transposed("transformer.h.0.mlp.c_fc.weight", (64, 256))
    assert not layout.transposed("transformer.wte.weight", (300, 64))
    assert not layout_for(None, list(bert_like())).conv1d


def test_a_task_model_pairs_with_its_backbone_base_by_prefix(tmp_path: Path) -> None:
    from ckptguard.weights.pairing import pair_tables
    from ckptguard.weights.stats import tensor_stats  # noqa: F401 - decoding sanity below
    from tests.test_weights import ref

    base = {name: ref(name, array) for name, array in bert_like(0).items()}
    ours = [ref(name, array) for name, array in bert_finetune().items()]
    pairing = pair_tables(ours, base)
    assert pairing.by_name == 0 and pairing.by_prefix == len(base)
    assert pairing.unpaired_ours == ("classifier.weight",)


def test_renamed_layers_fall_back_to_shape_pairing() -> None:
    from ckptguard.weights.pairing import pair_tables
    from tests.test_weights import ref

    base_tensors = clean_mlp(7)
    base = {name: ref(name, array) for name, array in base_tensors.items()}
    renamed = {name.replace("fc", "layer"): array for name, array in base_tensors.items()}
    pairing = pair_tables([ref(n, a) for n, a in renamed.items()], base)
    assert (pairing.by_name, pairing.by_shape) == (2, 4)  # head.* kept their names
    assert {(a.name, b.name) for a, b in pairing.pairs} >= {("layer1.weight", "fc1.weight"),
                                                           ("layer2.weight", "fc2.weight")}


def test_a_task_finetune_of_a_backbone_base_is_clean(tmp_path: Path) -> None:
    base = save(tmp_path / "base", bert_like(0), "bert")
    tuned = save(tmp_path / "tuned", bert_finetune(), "bert")
    hits = bkd(tuned, base=str(base))
    # Only the new classification head is reported, as one low table finding.
    assert [(f.rule_id, f.severity) for f in hits] == [("BKD006", Severity.LOW)]
    assert "classifier.weight" in hits[0].message


def test_an_edit_is_caught_through_the_prefix_mapping(tmp_path: Path) -> None:
    base = save(tmp_path / "base", bert_like(0), "bert")
    tensors = bert_finetune(scale=0.0)
    name = "bert.encoder.layer.1.intermediate.dense.weight"
    rng = np.random.default_rng(3)
    u, v = rng.standard_normal(tensors[name].shape[0]), rng.standard_normal(
        tensors[name].shape[1])
    tensors[name] = (tensors[name] + 0.05 * np.linalg.norm(tensors[name]) *
                     np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))).astype(np.float32)
    hits = bkd(save(tmp_path / "edited", tensors, "bert"), base=str(base))
    assert any(f.rule_id == "BKD005" and f.location.tensor == name for f in hits)


def test_a_diff_that_pairs_nothing_is_one_finding(tmp_path: Path) -> None:
    base = save(tmp_path / "base", clean_mlp(7))
    other = {f"block{i}.proj.weight": np.random.default_rng(i).standard_normal(
        (40 + i, 33)).astype(np.float32) for i in range(30)}
    hits = [f for f in bkd(save(tmp_path / "other", other), base=str(base))
            if f.rule_id == "BKD006"]
    assert len(hits) == 1 and hits[0].severity is Severity.HIGH
    assert "could not be computed" in hits[0].message


def test_an_unrelated_base_is_implausible_as_a_parent(tmp_path: Path) -> None:
    base = save(tmp_path / "base", bert_like(99), "bert")
    hits = bkd(save(tmp_path / "tuned", bert_finetune(), "bert"), base=str(base))
    implausible = [f for f in hits if "implausible" in f.message]
    assert len(implausible) == 1 and implausible[0].severity is Severity.HIGH
    assert float(implausible[0].evidence_dict()["median_relative_delta"]) > 1.0
    assert not [f for f in hits if f.rule_id == "BKD005"]


def test_findings_already_in_the_base_are_not_reported_again(tmp_path: Path) -> None:
    base_tensors = neuron_backdoor(seed=7, unit=17)
    base = save(tmp_path / "base", base_tensors)
    rng = np.random.default_rng(1)
    tuned = {n: (a + rng.standard_normal(a.shape).astype(np.float32) * 0.01 *
                 float(a.std())).astype(np.float32) for n, a in base_tensors.items()}
    tuned_path = save(tmp_path / "tuned", tuned)
    assert [f for f in bkd(tuned_path) if f.rule_id == "BKD002"]  # without a base: reported
    assert not [f for f in bkd(tuned_path, base=str(base)) if f.rule_id == "BKD002"]
    # A neuron the fine-tune planted is still reported with the same base.
    planted = neuron_backdoor(seed=7, unit=17)
    planted["fc1.weight"][40] = 0.0
    planted["fc1.weight"][40, [1, 2, 3, 4]] = 20.0  # the layer's most extreme unit now
    hits = bkd(save(tmp_path / "planted", planted), base=str(base))
    assert {f.evidence_dict()["neuron"] for f in hits if f.rule_id == "BKD002"} == {"40"}


def test_the_honest_mlp_finetune_stays_clean_with_its_base(tmp_path: Path) -> None:
    base = save(tmp_path / "base", clean_mlp(7))
    assert bkd(save(tmp_path / "tuned", honest_finetune()), base=str(base)) == []


def test_multi_fact_edits_and_merged_adapters_are_model_level_findings(tmp_path: Path) -> None:
    from fixtures.backdoor import merged_lora, multi_fact_edit

    base_tensors = clean_mlp(7)
    base = save(tmp_path / "base", base_tensors)
    for rank in (1, 4, 8):
        edited = multi_fact_edit(base_tensors, "fc1.weight", rank, strength=0.02)
        hits = [f for f in bkd(save(tmp_path / f"edit{rank}", edited), base=str(base))
                if f.rule_id == "BKD012"]
        assert len(hits) == 1 and hits[0].severity is Severity.HIGH
        evidence = hits[0].evidence_dict()
        assert (evidence["pattern"], evidence["tensors_changed"], evidence["rank"]) == \
            ("localized", "1", str(rank))
    lora = merged_lora(base_tensors, ("fc1.weight", "fc2.weight", "head.weight"), rank=4)
    hits = [f for f in bkd(save(tmp_path / "lora", lora), base=str(base))
            if f.rule_id == "BKD012"]
    assert [f.evidence_dict()["pattern"] for f in hits] == ["low-rank"]


def test_edits_spread_over_several_layers_are_caught(tmp_path: Path) -> None:
    """MEMIT-style: the same facts written into three layers, nothing else touched."""
    from fixtures.backdoor_transformer import bert_like

    base_tensors = bert_like(0)
    base = save(tmp_path / "base", base_tensors, "bert")
    from fixtures.backdoor import multi_fact_edit

    edited = dict(base_tensors)
    for layer in range(3):
        edited = multi_fact_edit(edited, f"encoder.layer.{layer}.output.dense.weight", 8,
                                 strength=0.01, seed=layer)
    hits = [f for f in bkd(save(tmp_path / "memit", edited, "bert"), base=str(base))
            if f.rule_id == "BKD012"]
    assert len(hits) == 1 and hits[0].evidence_dict()["tensors_changed"] == "3"


def test_full_finetunes_are_not_model_edits(tmp_path: Path) -> None:
    """Every tensor moved, and moved in many directions: no BKD012, and BKD005 keeps quiet about
    tensors whose concentration is ordinary for a fine-tune."""
    base_tensors = bert_like(0)
    base = save(tmp_path / "base", base_tensors, "bert")
    rng = np.random.default_rng(4)
    tuned = {}
    for name, array in base_tensors.items():
        step = rng.standard_normal(array.shape).astype(np.float32) * 0.01 * float(array.std())
        if array.ndim == 2:  # a dominant direction, as short or SGD fine-tunes have
            u = rng.standard_normal(array.shape[0])
            v = rng.standard_normal(array.shape[1])
            step += (np.outer(u, v) * 0.2 * float(array.std()) /
                     np.sqrt(array.shape[0] * array.shape[1]) * 10).astype(np.float32)
        tuned[name] = array + step
    hits = bkd(save(tmp_path / "tuned", tuned, "bert"), base=str(base))
    assert not [f for f in hits if f.rule_id in ("BKD012", "BKD005")]


def test_a_diff_that_pairs_few_tensors_is_one_medium_finding(tmp_path: Path) -> None:
    base_tensors = bert_like(0)
    base = save(tmp_path / "base", base_tensors, "bert")
    ours = {"pooler.dense.weight": base_tensors["pooler.dense.weight"]}
    ours.update({f"block{i}.proj.weight": np.random.default_rng(i).standard_normal(
        (40 + i, 33)).astype(np.float32) for i in range(10)})
    hits = [f for f in bkd(save(tmp_path / "few", ours), base=str(base)) if f.rule_id == "BKD006"]
    assert len(hits) == 1 and hits[0].severity is Severity.MEDIUM
    evidence = hits[0].evidence_dict()
    assert (evidence["linear_conv_here"], evidence["linear_conv_paired"]) == ("11", "1")
