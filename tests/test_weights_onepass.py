"""The weight checks read each tensor once: statistics, spectrum and base delta come from one
view of its bytes, and a tensor of a memory-mapped file is viewed without a copy."""

from __future__ import annotations

import mmap
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from ckptguard.facts import TensorRef
from ckptguard.model import Location
from ckptguard.source import FileSource
from ckptguard.weights import anomalies
from ckptguard.weights.decode import raw_array
from ckptguard.weights.diff import tensor_delta
from ckptguard.weights.layout import Layout
from ckptguard.weights.spectrum import tensor_spectrum
from ckptguard.weights.stats import unit_norm_stats
from fixtures.backdoor import rank_one_edit
from fixtures.backdoor_transformer import bert_like, gpt2_like


@dataclass
class CountingSource:
    data: bytes
    views: list[int] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset:offset + length]

    def view(self) -> memoryview:
        self.views.append(1)
        return memoryview(self.data)


def counted(tensors: dict[str, np.ndarray]) -> list[TensorRef]:
    return [TensorRef(name, str(a.dtype), tuple(a.shape),
                      CountingSource(np.ascontiguousarray(a).tobytes()),  # type: ignore[arg-type]
                      Location(("m.safetensors",), tensor=name)) for name, a in tensors.items()]


def test_profile_reads_each_tensor_once_and_matches_the_separate_passes() -> None:
    ours = counted(rank_one_edit(bert_like(0), "encoder.layer.1.output.dense.weight",
                                 strength=0.5))
    base = {ref.name: ref for ref in counted(bert_like(0))}
    result = anomalies.profile(ours, partners=base)
    judged = [ref for ref, _, _ in result.judged]
    assert judged and all(len(ref.source.views) == 1 for ref in judged)  # type: ignore[attr-defined]
    # Every tensor has a partner: its delta is computed, its own spectrum is not (the delta
    # shows an edit far more clearly, and what it shares with the base is the base's).
    assert set(result.deltas) == {ref.name for ref in judged}
    assert result.spectra == {}
    for ref, _, stats in result.judged:
        expected = unit_norm_stats(ref).unit_norms
        assert stats.unit_norms is not None and expected is not None
        np.testing.assert_allclose(stats.unit_norms, expected, rtol=1e-6)
        assert result.deltas[ref.name].energy == pytest.approx(
            tensor_delta(ref, base[ref.name]).energy, rel=1e-9)
    edited = result.deltas["encoder.layer.1.output.dense.weight"]
    assert edited.relative == pytest.approx(0.5, rel=0.05)
    assert all(d.energy == 0.0 for name, d in result.deltas.items() if "layer.1.output" not in name)


def test_profile_computes_spectra_for_the_tensors_without_a_partner() -> None:
    ours = counted(bert_like(0))
    alone = "encoder.layer.1.output.dense.weight"
    base = {ref.name: ref for ref in counted(bert_like(0)) if ref.name != alone}
    result = anomalies.profile(ours, partners=base)
    judged = {ref.name: ref for ref, _, _ in result.judged}
    assert set(result.spectra) == {alone}
    assert set(result.deltas) == set(judged) - {alone}
    assert result.spectra[alone] == tensor_spectrum(judged[alone])
    without_base = anomalies.profile(counted(bert_like(0)))
    assert set(without_base.spectra) == set(judged) and without_base.deltas == {}


def test_transposed_tensors_are_judged_through_their_columns_in_both_passes() -> None:
    tensors = gpt2_like(0)
    name = next(n for n in tensors if n.endswith("mlp.c_fc.weight"))
    tensors[name] = tensors[name].copy()
    tensors[name][:, 5] *= 40.0  # one output unit (a column of the (in, out) storage)
    layout = Layout("gpt2", conv1d=True)
    base = {ref.name: ref for ref in counted(gpt2_like(0))}
    for partners in (None, base):
        result = anomalies.profile(counted(tensors), layout, partners=partners)
        stats = next(stats for ref, _, stats in result.judged if ref.name == name)
        assert stats.transposed and stats.unit_norms is not None
        assert stats.input_norms is not None
        np.testing.assert_allclose(stats.unit_norms, np.linalg.norm(tensors[name], axis=0),
                                   rtol=1e-5)
        np.testing.assert_allclose(stats.input_norms, np.linalg.norm(tensors[name], axis=1),
                                   rtol=1e-5)
        assert stats.row is not None and stats.row.index == 5


def test_profile_reads_embeddings_once_for_their_columns_and_non_finite_counts() -> None:
    tensors = bert_like(0)
    name = next(n for n in tensors if n.endswith("word_embeddings.weight"))
    tensors[name] = tensors[name].copy()
    tensors[name][2, 3] = np.nan
    tensors[name][4, 1] = np.inf
    refs = counted(tensors)
    result = anomalies.profile(refs)
    assert set(result.embedding_columns) == set(result.embedding_non_finite)
    assert name in result.embedding_columns
    clean = np.where(np.isfinite(tensors[name]), tensors[name], 0.0)
    np.testing.assert_allclose(result.embedding_columns[name], np.linalg.norm(clean, axis=0),
                               rtol=1e-5)
    counts = result.embedding_non_finite[name]
    assert (counts.nan, counts.posinf, counts.neginf) == (1, 1, 0)
    others = [n for n in result.embedding_non_finite if n != name]
    assert others and all(result.embedding_non_finite[n].total == 0 for n in others)


def test_delta_blocks_smaller_than_a_row_group_agree_with_numpy() -> None:
    rng = np.random.default_rng(3)
    a = rng.standard_normal((300, 1000)).astype(np.float32)
    b = a + rng.standard_normal((300, 1000)).astype(np.float32) * np.float32(0.01)
    a[7, 3] = np.nan  # the non-finite fallback inside a block
    [ra, rb] = counted({"w.weight": a})[0], counted({"w.weight": b})[0]
    delta = tensor_delta(ra, rb, block_bytes=3 * 1000 * 4)  # 3 rows a block
    clean = np.where(np.isfinite(a), a, 0.0).astype(np.float64) - b
    assert delta.energy == pytest.approx(float(np.sum(clean * clean)), rel=1e-4)
    assert delta.relative == pytest.approx(float(np.linalg.norm(clean) / np.linalg.norm(b)),
                                           rel=1e-4)


def _owner(array: np.ndarray) -> object:
    """What finally holds an array's memory (through views and memoryviews)."""
    owner: object = array
    while isinstance(owner, np.ndarray) and owner.base is not None:
        owner = owner.base
    return owner.obj if isinstance(owner, memoryview) else owner


def test_a_tensor_of_a_mapped_file_is_viewed_without_a_copy(tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    values = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    path = tmp_path / "w.bin"
    path.write_bytes(b"H" * 24 + values.tobytes() + b"T" * 8)
    source = FileSource(str(path)).slice(24, values.nbytes)
    ref = TensorRef("w", "float32", (64, 32), source, Location(("w.bin",), tensor="w"))
    copied = raw_array(ref)  # a small file: read into memory (the SIGBUS policy)
    np.testing.assert_array_equal(copied, values)
    assert not isinstance(_owner(copied), mmap.mmap)
    monkeypatch.setattr("ckptguard.source.SNAPSHOT_BYTES", 1024)  # the file now counts as large
    mapped = raw_array(ref)
    np.testing.assert_array_equal(mapped, values)
    assert isinstance(_owner(mapped), mmap.mmap)


def _same_profile(one: anomalies.Profile, other: anomalies.Profile) -> None:
    assert [ref.name for ref, _, _ in one.judged] == [ref.name for ref, _, _ in other.judged]
    for (_, _, a), (_, _, b) in zip(one.judged, other.judged, strict=True):
        assert a == b
        assert a.unit_norms is not None and b.unit_norms is not None
        np.testing.assert_array_equal(a.unit_norms, b.unit_norms)
    assert one.spectra == other.spectra
    assert {name: d.energy for name, d in one.deltas.items()} == \
        {name: d.energy for name, d in other.deltas.items()}
    assert {name: d.spectrum for name, d in one.deltas.items()} == \
        {name: d.spectrum for name, d in other.deltas.items()}
    assert one.embedding_non_finite == other.embedding_non_finite
    assert one.embedding_columns.keys() == other.embedding_columns.keys()
    for name, columns in one.embedding_columns.items():
        np.testing.assert_array_equal(columns, other.embedding_columns[name])


@pytest.mark.parametrize("workers", [2, 3, 16])
def test_profile_on_threads_gives_the_same_result_in_the_same_order(workers: int) -> None:
    ours = rank_one_edit(bert_like(0), "encoder.layer.1.output.dense.weight", strength=0.5)
    alone = "encoder.layer.0.intermediate.dense.weight"
    base = {ref.name: ref for ref in counted(bert_like(0)) if ref.name != alone}
    serial = anomalies.profile(counted(ours), partners=base)
    # Every tensor on the pool (these are small), and the default split by size.
    for threaded_min in (0, anomalies.THREADED_MIN_ELEMENTS):
        threaded = anomalies.profile(counted(ours), partners=base, workers=workers,
                                     threaded_min_elements=threaded_min)
        assert threaded.spectra and threaded.deltas and threaded.embedding_columns
        _same_profile(serial, threaded)


def test_only_large_tensors_go_to_the_weight_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small tensors are measured by the calling thread (their work holds the GIL), large ones
    on the pool, and the profile keeps the tensors' order."""
    import threading

    small = np.ones((16, 16), dtype=np.float32)  # 256 elements: the smallest judged
    large = np.ones((32, 32), dtype=np.float32)
    tensors = {"layers.0.mlp.weight": small, "layers.1.mlp.weight": large,
               "layers.2.mlp.weight": small, "layers.3.mlp.weight": large}
    threads: dict[str, str] = {}
    real = anomalies._measure

    def measure(ref: TensorRef, *args: object) -> object:
        threads[ref.name] = threading.current_thread().name
        return real(ref, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(anomalies, "_measure", measure)
    found = anomalies.profile(counted(tensors), workers=2, threaded_min_elements=large.size)
    here = threading.current_thread().name
    assert [name for name, thread in sorted(threads.items()) if thread == here] == [
        "layers.0.mlp.weight", "layers.2.mlp.weight"]
    assert all(threads[name] != here for name in ("layers.1.mlp.weight", "layers.3.mlp.weight"))
    assert [ref.name for ref, _, _ in found.judged] == sorted(tensors)


def test_an_interrupted_threaded_pass_drops_the_tensors_not_started(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    tensors = {f"layers.{i}.mlp.weight": np.ones((40, 40), dtype=np.float32) for i in range(40)}
    tensors["layers.0.mlp.weight"] = np.ones((80, 80), dtype=np.float32)  # the first started
    calls: list[str] = []

    def measure(ref: TensorRef, *args: object) -> None:
        calls.append(ref.name)
        if ref.name == "layers.0.mlp.weight":
            raise KeyboardInterrupt
        time.sleep(0.2)

    monkeypatch.setattr(anomalies, "_measure", measure)
    with pytest.raises(KeyboardInterrupt):
        anomalies.profile(counted(tensors), workers=2, threaded_min_elements=0)
    assert calls[0] == "layers.0.mlp.weight"
    assert len(calls) < len(tensors)  # without the cancel, all 40 would run (4 s here)
