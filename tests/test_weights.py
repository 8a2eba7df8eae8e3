"""Weight statistics: decoding, streaming, robust scores, spectra, roles and base diffs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from ckptguard.facts import TensorRef
from ckptguard.model import Location
from ckptguard.source import MemorySource
from ckptguard.weights import anomalies
from ckptguard.weights.decode import TensorDecodeError, iter_blocks, raw_array, to_float32
from ckptguard.weights.diff import compare_tables, missing_from, tensor_delta
from ckptguard.weights.roles import Role, role_of
from ckptguard.weights.spectrum import spectrum_of, tensor_spectrum
from ckptguard.weights.stats import count_non_finite, robust_outlier, tensor_stats
from ckptguard.weights.thresholds import SPECTRAL_RANK
from fixtures.backdoor import clean_mlp, llm_like, neuron_backdoor, rank_one_edit


def ref(name: str, array: np.ndarray, dtype: str | None = None) -> TensorRef:
    return TensorRef(name, dtype or str(array.dtype), tuple(array.shape),
                     MemorySource(np.ascontiguousarray(array).tobytes()),
                     Location(("m.safetensors",), tensor=name))


def refs(tensors: dict[str, np.ndarray]) -> list[TensorRef]:
    return [ref(name, array) for name, array in tensors.items()]


def test_bfloat16_is_widened_by_bit_shift() -> None:
    values = np.array([1.0, -2.5, 3.140625, np.inf], dtype=np.float32)
    upper = (values.view(np.uint32) >> 16).astype(np.uint16)  # exact bf16 of these values
    tensor = ref("w", upper, dtype="bfloat16")
    np.testing.assert_array_equal(to_float32(raw_array(tensor), "bfloat16")[0], values)


@pytest.mark.parametrize("dtype", ["float16", "float64", "int8"])
def test_other_dtypes_decode_to_float32(dtype: str) -> None:
    array = np.arange(-6, 6, dtype=dtype).reshape(3, 4)
    decoded = to_float32(raw_array(ref("w", array)), dtype)
    assert decoded.dtype == np.float32
    np.testing.assert_array_equal(decoded, array.astype(np.float32))


def test_size_disagreeing_with_shape_is_an_error() -> None:
    bad = TensorRef("w", "float32", (4, 4), MemorySource(b"\0" * 60), Location(("m",)))
    with pytest.raises(TensorDecodeError, match="60 bytes stored"):
        raw_array(bad)


def test_unknown_dtype_is_an_error_not_a_guess() -> None:
    odd = TensorRef("w", "float8_e4m3fn", (4,), MemorySource(b"\0" * 4), Location(("m",)))
    with pytest.raises(TensorDecodeError, match="not supported"):
        raw_array(odd)
    assert [u.ref.name for u in anomalies.unreadable([odd])] == ["w"]


def test_tiny_blocks_split_rows_and_give_the_same_statistics() -> None:
    rng = np.random.default_rng(3)
    array = rng.standard_normal((12, 50)).astype(np.float32)
    array[7] *= 30
    tensor = ref("layer.weight", array)
    pieces = list(iter_blocks(tensor, block_bytes=64))  # 16 floats: rows come in pieces
    assert sum(p.values.size for p in pieces) == array.size
    small, large = tensor_stats(tensor, block_bytes=64), tensor_stats(tensor)
    assert small.row is not None and large.row is not None
    assert small.row.index == large.row.index == 7
    assert small.row.z == pytest.approx(large.row.z)
    assert small.excess_kurtosis == pytest.approx(large.excess_kurtosis, rel=1e-6)
    assert small.input_norms is not None and large.input_norms is not None
    np.testing.assert_allclose(small.input_norms, large.input_norms)


def test_non_finite_values_are_counted_with_the_first_position() -> None:
    array = np.zeros((4, 5), dtype=np.float32)
    array[1, 2] = np.nan
    array[3, 0] = np.inf
    array[3, 4] = -np.inf
    counts = count_non_finite(ref("w", array), block_bytes=8)
    assert (counts.nan, counts.posinf, counts.neginf, counts.first_index) == (1, 1, 1, 7)
    stats = tensor_stats(ref("w", array))
    assert stats.non_finite == counts


def test_finite_values_whose_squares_overflow_are_not_counted_as_non_finite() -> None:
    # The quick check sums squares in float32: 1e30 squared overflows, and only the exact check
    # after it may decide.
    array = np.full((3, 4), 1e30, dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no RuntimeWarning reaches the terminal
        for block_bytes in (8, 1 << 20):
            assert count_non_finite(ref("w", array), block_bytes=block_bytes).total == 0


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_a_non_finite_value_of_a_vector_is_counted(dtype: str) -> None:
    values = np.ones(7, dtype=np.float32)
    values[5] = -np.inf
    stored = (values.view(np.uint32) >> 16).astype(np.uint16) if dtype == "bfloat16" else values
    counts = count_non_finite(ref("b", stored, dtype=dtype))
    assert (counts.nan, counts.posinf, counts.neginf, counts.first_index) == (0, 0, 1, 5)


def test_gaussian_moments() -> None:
    rng = np.random.default_rng(0)
    stats = tensor_stats(ref("w", rng.standard_normal((400, 500)).astype(np.float32)))
    assert stats.std == pytest.approx(1.0, abs=0.01)
    assert abs(stats.excess_kurtosis) < 0.1
    assert stats.row is not None and stats.row.z < 5


def test_robust_outlier_survives_identical_majorities() -> None:
    values = np.array([1.0] * 20 + [1.5, 9.0])
    outlier = robust_outlier(values)
    assert outlier is not None and outlier.index == 21 and outlier.z > 3


@pytest.mark.parametrize(("name", "shape", "role"), [
    ("model.embed_tokens.weight", (32000, 4096), Role.EMBEDDING),
    ("transformer.wpe.weight", (1024, 768), Role.EMBEDDING),
    ("model.layers.3.input_layernorm.weight", (4096,), Role.NORM),
    ("encoder.layer.0.attention.output.LayerNorm.weight", (768,), Role.NORM),
    ("fc1.bias", (128,), Role.BIAS),
    ("bn1.running_mean", (64,), Role.STATE),
    ("model.layers.0.self_attn.q_proj.weight", (4096, 4096), Role.LINEAR),
    ("encoder.layer.0.attention.output.dense.weight", (768, 768), Role.LINEAR),
    ("features.0.weight", (64, 3, 3, 3), Role.CONV),
    ("head.weight", (2, 16), Role.TINY),
    ("lm_head.weight", (32000, 4096), Role.EMBEDDING),
    # A training checkpoint's optimizer state: gradient statistics, not layers.
    ("optimizer.state.4.momentum_buffer", (10, 7200), Role.STATE),
    ("opt.state.12.exp_avg_sq", (4096, 4096), Role.STATE),
    ("optimizer.state.0.exp_avg_sq_row", (4096, 1), Role.STATE),
    ("encoder.state.0.weight", (256, 256), Role.LINEAR),
])
def test_roles_from_name_and_shape(name: str, shape: tuple[int, ...], role: Role) -> None:
    assert role_of(name, shape) is role


def test_rank_one_structure_is_found_even_in_a_sample() -> None:
    rng = np.random.default_rng(1)
    clean = (rng.standard_normal((1500, 4500)) * 0.02).astype(np.float32)
    assert tensor_spectrum(ref("big.weight", clean)).gap < 1.3
    u, v = rng.standard_normal(1500), rng.standard_normal(4500)
    edited = clean + (np.outer(u, v) / np.linalg.norm(u) / np.linalg.norm(v)
                      * np.linalg.norm(clean)).astype(np.float32)
    spectrum = tensor_spectrum(ref("big.weight", edited))
    # a sample, not the whole matrix: 512 rows, every other column (at most twice 2048)
    assert spectrum.sampled_rows == 512 and 2048 <= spectrum.sampled_cols <= 2 * 2048
    assert spectrum.sampled_cols < 4500
    assert spectrum.gap > 10 and spectrum.top_share > 0.4


def test_spectrum_of_exact_rank_one_has_stable_rank_one() -> None:
    matrix = np.outer(np.arange(1.0, 41.0), np.linspace(-1, 1, 30))
    spectrum = spectrum_of(matrix, centre=False)
    assert spectrum.stable_rank == pytest.approx(1.0)
    assert spectrum.top_share == pytest.approx(1.0)


def test_hand_crafted_neuron_is_found_with_its_consumer() -> None:
    found = list(anomalies.neuron_outliers(refs(neuron_backdoor(unit=17, target=3))))
    rows = {(item.ref.name, item.row) for item in found}
    assert ("fc1.weight", 17) in rows
    first = next(item for item in found if item.ref.name == "fc1.weight")
    assert first.consumer == "fc2.weight" and "consumer-column" in first.signals


@pytest.mark.parametrize("tensors", [clean_mlp(0), clean_mlp(5), llm_like(0), llm_like(2)],
                         ids=["mlp0", "mlp5", "llm0", "llm2"])
def test_benign_models_raise_nothing(tensors: dict[str, np.ndarray]) -> None:
    items = refs(tensors)
    assert not list(anomalies.neuron_outliers(items))
    assert not list(anomalies.rank_one_structures(items))
    assert not list(anomalies.non_finite(items))


def test_rank_one_edit_is_found() -> None:
    found = list(anomalies.rank_one_structures(refs(rank_one_edit(clean_mlp(), "fc2.weight",
                                                                  strength=1.5))))
    assert [item.ref.name for item in found] == ["fc2.weight"]


def test_delta_of_an_edit_is_concentrated_and_of_noise_is_spread() -> None:
    base = clean_mlp(7)
    edited = rank_one_edit(base, "fc1.weight", strength=0.3)
    rng = np.random.default_rng(4)
    noisy = base["fc1.weight"] + rng.standard_normal((128, 64)).astype(np.float32) * 0.01
    edit = tensor_delta(ref("fc1.weight", edited["fc1.weight"]), ref("fc1.weight",
                                                                      base["fc1.weight"]))
    honest = tensor_delta(ref("fc1.weight", noisy), ref("fc1.weight", base["fc1.weight"]))
    assert edit.top_share > 0.99 and edit.effective_rank == pytest.approx(1.0, abs=0.01)
    assert edit.relative == pytest.approx(0.3, rel=0.05)
    assert honest.top_share < 0.2 and honest.changed_fraction > 0.9
    same = tensor_delta(ref("fc1.weight", base["fc1.weight"]),
                        ref("fc1.weight", base["fc1.weight"]))
    assert same.relative == 0.0 and same.rows_changed == 0


def test_tables_that_do_not_line_up() -> None:
    base = {r.name: r for r in refs(clean_mlp())}
    ours = refs({"fc1.weight": clean_mlp()["fc1.weight"],
                 "fc2.weight": np.zeros((3, 3), dtype=np.float32),
                 "extra.weight": np.zeros((2, 2), dtype=np.float32)})
    pairs, mismatches = compare_tables(ours, base)
    assert [p[0].name for p in pairs] == ["fc1.weight"]
    assert {(m.name, m.kind) for m in mismatches} == {("fc2.weight", "shape"),
                                                      ("extra.weight", "extra")}
    assert {m.name for m in missing_from(ours, base)} == {"fc1.bias", "fc2.bias", "head.weight",
                                                          "head.bias"}


@pytest.mark.parametrize("shape", [(40, 30), (600, 3000)], ids=["exact", "sketched"])
def test_an_all_zero_matrix_has_an_all_zero_spectrum(shape: tuple[int, int]) -> None:
    zeros = np.zeros(shape, dtype=np.float32)
    spectrum = spectrum_of(zeros, np.arange(5, 5 + shape[0]), centre=False)
    assert spectrum.singular_values == (0.0,) * len(spectrum.singular_values)
    assert len(spectrum.singular_values) == min(SPECTRAL_RANK, *shape)
    assert (spectrum.energy, spectrum.top_share, spectrum.gap, spectrum.stable_rank) == \
        (0.0, 0.0, 0.0, 0.0)
    assert spectrum.top_row == 5 and spectrum.sampled_rows == shape[0]
