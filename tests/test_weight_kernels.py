"""The innermost kernels of the weight passes: sums of squares per row and column, and the
evenly spaced sample rows, against plain definitions."""

from __future__ import annotations

import numpy as np
import pytest

from ckptguard.weights import squares
from ckptguard.weights.spectrum import evenly_spaced
from ckptguard.weights.stats import median_of


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (113, 2304), (2, 262_145)])
def test_sums_of_squares_match_the_definition(shape: tuple[int, int]) -> None:
    values = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    wide = values.astype(np.float64)
    assert squares.row_squares(values).dtype == np.float32
    np.testing.assert_allclose(squares.row_squares(values), (wide * wide).sum(axis=1),
                               rtol=1e-5)
    np.testing.assert_allclose(squares.column_squares(values), (wide * wide).sum(axis=0),
                               rtol=1e-5)


def test_a_non_finite_value_makes_only_its_own_row_and_column_not_finite() -> None:
    values = np.ones((4, 5), dtype=np.float32)
    values[2, 3] = np.nan
    values[0, 1] = np.inf
    rows, cols = squares.row_squares(values), squares.column_squares(values)
    assert np.isfinite(rows).tolist() == [False, True, False, True]
    assert np.isfinite(cols).tolist() == [True, False, True, False, True]


def test_without_vecdot_the_einsum_kernel_gives_the_same_sums(
        monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(1).standard_normal((64, 300)).astype(np.float32)
    fast = squares.row_squares(values)
    monkeypatch.setattr(squares, "_VECDOT", None)  # NumPy 1.x has no vecdot
    np.testing.assert_allclose(squares.row_squares(values), fast, rtol=1e-6)


@pytest.mark.parametrize("wanted", [2, 3, 512, 2048])
def test_evenly_spaced_rows_are_distinct_ordered_and_span_the_tensor(wanted: int) -> None:
    for total in [*range(1, 2 * wanted + 3), 3 * wanted - 1, 10 * wanted + 7, 50_257]:
        rows = evenly_spaced(total, wanted)
        assert rows.size == min(total, wanted)
        assert rows[0] == 0 and rows[-1] == total - 1
        assert (np.diff(rows) > 0).all()
        # As even as rounding allows: no gap more than one row wider than the ideal step.
        if total > wanted:
            assert np.diff(rows).max() <= (total - 1) / (wanted - 1) + 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_median_of_is_numpys_median(dtype: type) -> None:
    rng = np.random.default_rng(3)
    for size in [*range(1, 40), 384, 1537]:
        values = rng.standard_normal(size).astype(dtype)
        assert median_of(values) == float(np.median(values)), size
        ties = np.round(values * 2).astype(dtype)  # many equal values
        assert median_of(ties) == float(np.median(ties)), size
    with_nan = np.array([1.0, np.nan, 3.0], dtype=dtype)
    assert np.isnan(median_of(with_nan)) and np.isnan(np.median(with_nan))
    assert np.isnan(median_of(np.zeros(0, dtype=dtype)))
