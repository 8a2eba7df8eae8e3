"""BKD003 without a base: each layer's spectrum judged against its sibling layers (the same role
at other layer indices) instead of absolute thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from ckptguard.facts import TensorRef
from ckptguard.model import Location, Severity
from ckptguard.source import MemorySource
from ckptguard.weights import anomalies
from ckptguard.weights.anomalies import sibling_key
from fixtures.backdoor import rank_one_edit
from fixtures.backdoor_transformer import LAYERS, bert_like, gpt2_like

EDITED = "encoder.layer.4.output.dense.weight"


def refs(tensors: dict[str, np.ndarray]) -> list[TensorRef]:
    return [TensorRef(name, str(a.dtype), tuple(a.shape),
                      MemorySource(np.ascontiguousarray(a).tobytes()),
                      Location(("m.safetensors",), tensor=name)) for name, a in tensors.items()]


def deep_bert(seeds: tuple[int, ...] = (0, 1)) -> dict[str, np.ndarray]:
    """A BERT-style table of len(seeds) * LAYERS layers (the fixture's blocks, renumbered)."""
    table: dict[str, np.ndarray] = {}
    for i, seed in enumerate(seeds):
        for name, array in bert_like(seed).items():
            parts = name.split(".")
            if name.startswith("encoder.layer."):
                parts[2] = str(int(parts[2]) + i * LAYERS)
            elif i:
                continue
            table[".".join(parts)] = array
    return table


def test_sibling_key_replaces_every_layer_index() -> None:
    assert sibling_key("encoder.layer.11.output.dense.weight", (384, 1536)) == \
        ("encoder.layer.#.output.dense.weight", (384, 1536))
    assert sibling_key("model.layers.3.mlp.experts.7.w1.weight", (8, 4)) == \
        ("model.layers.#.mlp.experts.#.w1.weight", (8, 4))
    assert sibling_key("0.weight", (8, 4)) is None  # a Sequential's top level: no role
    assert sibling_key("fc2.weight", (8, 4)) is None


@pytest.mark.parametrize("seeds", [(0, 1), (2, 3), (4, 5, 6)])
def test_clean_deep_transformers_are_silent(seeds: tuple[int, ...]) -> None:
    assert not list(anomalies.rank_one_structures(refs(deep_bert(seeds))))


def test_the_shipped_transformer_fixtures_are_silent() -> None:
    for table in (bert_like(0), bert_like(1, prefix="bert."), gpt2_like(0)):
        assert not list(anomalies.rank_one_structures(refs(table)))


@pytest.mark.parametrize("strength", [0.7, 1.0, 1.5])
def test_a_rank_one_edit_stands_out_from_its_siblings(strength: float) -> None:
    found = list(anomalies.rank_one_structures(refs(rank_one_edit(deep_bert(), EDITED,
                                                                  strength=strength))))
    assert [item.ref.name for item in found] == [EDITED]
    item = found[0]
    assert item.siblings == 2 * LAYERS - 1
    assert item.share_ratio >= 4.0 and item.gap_ratio >= 1.5
    assert item.strong == (strength >= 1.5)


def test_edits_below_the_absolute_thresholds_are_seen_against_siblings() -> None:
    from ckptguard.weights.thresholds import SPECTRAL_GAP

    found = list(anomalies.rank_one_structures(refs(rank_one_edit(deep_bert(), EDITED,
                                                                  strength=1.0))))
    assert len(found) == 1 and found[0].spectrum.gap < SPECTRAL_GAP


def test_a_direction_every_sibling_shares_is_the_role_not_an_edit() -> None:
    """Every layer of one role carrying a strong top direction (as some trained roles do):
    absolute thresholds would report each one; the siblings explain it."""
    table = deep_bert()
    names = [n for n in table if n.endswith("attention.output.dense.weight")]
    for i, name in enumerate(names):
        table = rank_one_edit(table, name, strength=1.5, seed=10 + i)
    assert not list(anomalies.rank_one_structures(refs(table)))
    alone = {names[0]: table[names[0]]}  # no siblings: the absolute test still reports it
    assert [item.ref.name for item in anomalies.rank_one_structures(refs(alone))] == [names[0]]


def test_the_check_reports_the_sibling_comparison() -> None:
    import tempfile
    from pathlib import Path

    from ckptguard.api import scan
    from ckptguard.config import Config
    from fixtures.backdoor import safetensors_file

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.safetensors"
        path.write_bytes(safetensors_file(rank_one_edit(deep_bert(), EDITED, strength=1.5)))
        result = scan([path], Config(weights=True), root=path.parent)
    hits = [f for f in result.findings if f.rule_id == "BKD003"]
    assert len(hits) == 1
    evidence = hits[0].evidence_dict()
    assert evidence["tensor"] == EDITED and "sibling" in evidence["compared_with"]
    assert "sibling layers" in hits[0].message
    assert hits[0].severity == Severity.HIGH
