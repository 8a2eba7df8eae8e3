"""Top singular values of a matrix from a bounded, evenly spaced sample of its rows and columns.

A rank-one edit ``W + u v^T`` stays rank one in any row/column sample, so the sample keeps the
signature while the cost stays bounded (randomized SVD with a few power iterations).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import raw_array, to_float32
from ckptguard.weights.thresholds import (
    SPECTRAL_OVERSAMPLE,
    SPECTRAL_POWER_ITERATIONS,
    SPECTRAL_RANK,
    SPECTRAL_SAMPLE_COLS,
    SPECTRAL_SAMPLE_ROWS,
)

# A matrix whose shorter side is at most this gets an exact SVD: it costs less than a
# millisecond there, and a small layer's values are then exact rather than estimated.
EXACT_SVD_MAX_SIDE = 64


@dataclass(frozen=True)
class Spectrum:
    singular_values: tuple[float, ...]  # largest first
    energy: float  # squared Frobenius norm of the (centred) sample
    sampled_rows: int
    sampled_cols: int
    top_row: int  # the row (in the full tensor) with the largest weight in the top direction
    top_row_share: float = 0.0  # share of the top left singular vector on that one row

    @property
    def side(self) -> int:
        """The smaller side of the measured matrix: the most directions it can hold."""
        return min(self.sampled_rows, self.sampled_cols)

    @property
    def gap(self) -> float:
        """sigma1 / sigma2: how far the top direction stands above the rest."""
        if len(self.singular_values) < 2 or self.singular_values[1] <= 0.0:
            return float("inf") if self.singular_values and self.singular_values[0] > 0 else 0.0
        return self.singular_values[0] / self.singular_values[1]

    @property
    def top_share(self) -> float:
        """Share of the energy in the top singular direction."""
        if self.energy <= 0.0 or not self.singular_values:
            return 0.0
        return min(1.0, self.singular_values[0] ** 2 / self.energy)

    def top_k_share(self, k: int) -> float:
        """Share of the energy in the top ``k`` singular directions (k <= the values estimated)."""
        if self.energy <= 0.0 or not self.singular_values:
            return 0.0
        return min(1.0, sum(v * v for v in self.singular_values[:k]) / self.energy)

    @property
    def stable_rank(self) -> float:
        """||M||_F^2 / sigma1^2: an effective rank (1 for a rank-one matrix)."""
        if not self.singular_values or self.singular_values[0] <= 0.0:
            return 0.0
        return self.energy / self.singular_values[0] ** 2


def evenly_spaced(total: int, wanted: int) -> np.ndarray:
    if total <= wanted:
        return np.arange(total)
    # Steps of more than one row: the rounded positions are strictly increasing (no unique()).
    positions: np.ndarray = np.linspace(0, total - 1, wanted).round().astype(np.int64)
    return positions


def column_stride(total: int, wanted: int) -> int:
    """The step between sampled columns: every ``step``-th column gives between ``wanted`` and
    twice as many (a strided copy costs a fraction of gathering scattered columns)."""
    return max(1, total // max(1, wanted))


def sample_matrix(ref: TensorRef, max_rows: int = SPECTRAL_SAMPLE_ROWS,
                  max_cols: int = SPECTRAL_SAMPLE_COLS,
                  array: np.ndarray | None = None,
                  finite: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An evenly spaced float32 sample of the tensor's matrix view, and the rows it took
    (``array``: the tensor's ``raw_array`` when the caller already holds it; ``finite``: the
    tensor is known to hold no NaN/Inf, so the sample is not cleaned)."""
    array = raw_array(ref) if array is None else array
    rows = evenly_spaced(array.shape[0], max_rows)
    stride = column_stride(array.shape[1], max_cols)
    # The whole tensor is read in place (the products never write to it); a sample is one copy.
    sample = array if rows.size == array.shape[0] and stride == 1 else array[rows, ::stride]
    values = to_float32(np.ascontiguousarray(sample), ref.dtype)
    return (values if finite else finite_values(values)), rows


def finite_values(values: np.ndarray) -> np.ndarray:
    """float32 ``values`` with NaN/Inf set to 0 (no copy when every value is finite)."""
    values = values.astype(np.float32, copy=False)
    flat = values.reshape(-1)
    if np.isfinite(np.dot(flat, flat)):
        return values  # a NaN or Inf would reach the sum of squares
    return np.where(np.isfinite(values), values, np.float32(0.0))


def quiet_float_errors() -> AbstractContextManager[object]:
    """NumPy's overflow/invalid/divide warnings off: a tensor of huge finite values (3e19 squared
    overflows float32) made every statistic print RuntimeWarnings on the user's terminal.  The
    statistics test their sums with ``isfinite`` and rescale where they must; the warnings said
    nothing the findings do not.  NumPy keeps this per thread: the weight pass's threads enter
    it themselves."""
    return np.errstate(over="ignore", invalid="ignore", divide="ignore")


def single_threaded_blas() -> AbstractContextManager[object]:
    """BLAS on one thread for the small products and factorisations here: a multi-threaded BLAS
    spends more on waking threads than on a 512 x 16 QR, on a busy machine (oversubscribed
    cores) many times more, and under the weight pass's own threads (``--jobs``) it
    oversubscribes every core (GPT-2 small with -j 0 on 2 CPUs: 3.8x the NumPy pass without this
    limit, 2.4x with it).  threadpoolctl is a dependency; without it (a vendored install) this
    does nothing."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")  # type: ignore[no-any-return]


def top_singular_values(matrix: np.ndarray, rank: int = SPECTRAL_RANK,
                        iterations: int = SPECTRAL_POWER_ITERATIONS,
                        seed: int = 0, shift: float = 0.0,
                        oversample: int = SPECTRAL_OVERSAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """The ``rank`` largest singular values and the top left singular vector of
    ``matrix - shift`` (randomized SVD, ``oversample`` extra sketch columns; the shifted matrix
    is never formed).  Callers doing many of these hold ``single_threaded_blas()`` around them
    (setting the limit costs milliseconds, more than one small spectrum)."""
    rows, cols = matrix.shape
    k = min(rank, rows, cols)
    if k == 0:
        return np.zeros(0), np.zeros(rows)
    width = k + oversample
    if min(rows, cols) <= max(4 * width, EXACT_SVD_MAX_SIDE):  # cheap enough to be exact
        data = matrix - matrix.dtype.type(shift) if shift else matrix
        u, s, _ = np.linalg.svd(data, full_matrices=False)
        return s[:k], u[:, 0]
    step = _Shifted(matrix, shift)
    basis = _orthonormal(step.times(gaussian_probe(cols, width, matrix.dtype.str, seed)),
                         rounds=1)
    for _ in range(iterations):
        basis = _orthonormal(step.transposed_times(basis), rounds=1)  # steers the next product
        basis = _orthonormal(step.times(basis))
    small = step.transposed_times(basis)  # (cols, width): (basis^T M)^T
    gram = (small.T @ small).astype(np.float64)  # width x width, symmetric: eigh, not an SVD
    eigenvalues, vectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    s = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    return s[:k], basis @ vectors[:, order[0]].astype(basis.dtype)


@lru_cache(maxsize=32)
def gaussian_probe(cols: int, width: int, dtype: str, seed: int = 0) -> np.ndarray:
    """The sketch's Gaussian test matrix (``cols`` x ``width``, from ``seed``), read-only.  A
    pure function of its arguments, kept because drawing it costs a tenth of a spectrum
    (0.2 ms of 3.6 ms on 512 x 3072; 0.5 ms 16 wide) and a checkpoint's layers share a few
    shapes."""
    probe = np.random.default_rng(seed).standard_normal((cols, width)).astype(dtype)
    probe.flags.writeable = False
    return probe


@dataclass(frozen=True)
class _Shifted:
    """Products with ``matrix - shift`` (every entry) without forming it: the shift's share of
    ``M x`` is ``shift`` times the column sums of ``x``, on every row."""

    matrix: np.ndarray
    shift: float

    def times(self, block: np.ndarray) -> np.ndarray:
        product: np.ndarray = self.matrix @ block
        if self.shift:
            product -= block.dtype.type(self.shift) * block.sum(axis=0)
        return product

    def transposed_times(self, block: np.ndarray) -> np.ndarray:
        product: np.ndarray = self.matrix.T @ block
        if self.shift:
            product -= block.dtype.type(self.shift) * block.sum(axis=0)
        return product


def _orthonormal(block: np.ndarray, rounds: int = 2) -> np.ndarray:
    """An orthonormal basis of a tall, thin ``block``'s columns: Cholesky QR (a 16 x 16
    factorisation) twice, which is as accurate as Householder QR here at a fraction of its cost
    (once for the intermediate bases of the power iteration, whose products need only a
    well-conditioned basis, not an exactly orthonormal one); Householder QR when the block is
    rank deficient."""
    try:
        basis = block
        for _ in range(rounds):
            gram = (basis.T @ basis).astype(np.float64)
            inverse = np.linalg.inv(np.linalg.cholesky(gram))  # 16 x 16
            basis = basis @ inverse.T.astype(block.dtype)
        return basis
    except np.linalg.LinAlgError:
        q, _ = np.linalg.qr(block)
        return q


def spectrum_of(matrix: np.ndarray, rows: np.ndarray | None = None, *,
                centre: bool = True, rank: int = SPECTRAL_RANK,
                oversample: int = SPECTRAL_OVERSAMPLE) -> Spectrum:
    """The ``rank`` top singular values of ``matrix`` (mean-centred unless told otherwise)."""
    flat = matrix.reshape(-1)
    energy = float(np.dot(flat, flat)) if flat.size else 0.0  # float32 BLAS, blocked sums
    if not np.isfinite(energy):
        return _rescaled(matrix, rows, centre, rank, oversample)
    shift = 0.0
    if centre and flat.size:
        # The sum as a BLAS matrix-vector product: 2.7x faster than ndarray.sum on a 512 x 3072
        # float32 sample (which costs as much as a sketch product), and as accurate.
        row_sums = matrix @ np.ones(matrix.shape[1], dtype=matrix.dtype)
        mean = float(row_sums.sum()) / flat.size
        centred = energy - flat.size * mean * mean
        if centred >= 0.5 * energy:
            shift, energy = mean, centred
        else:  # the mean dominates: subtracting it from the sum of squares would cancel
            matrix = matrix - matrix.dtype.type(mean)
            flat = matrix.reshape(-1)
            energy = float(np.dot(flat, flat))
    picked = rows if rows is not None else np.arange(matrix.shape[0])
    if energy == 0.0:  # all zero (a tensor the fine-tune left untouched): nothing to estimate
        count = min(rank, *matrix.shape)
        return Spectrum((0.0,) * count, 0.0, matrix.shape[0], matrix.shape[1],
                        int(picked[0]) if picked.size else 0, 0.0)
    values, top_vector = top_singular_values(matrix, rank, shift=shift, oversample=oversample)
    top_row = int(picked[int(np.argmax(np.abs(top_vector)))]) if top_vector.size else 0
    weights = np.square(top_vector.astype(np.float64))
    concentration = float(weights.max() / weights.sum()) if weights.size and weights.sum() > 0 \
        else 0.0
    return Spectrum(tuple(float(v) for v in values), energy,
                    matrix.shape[0], matrix.shape[1], top_row, concentration)


def _rescaled(matrix: np.ndarray, rows: np.ndarray | None, centre: bool, rank: int,
              oversample: int) -> Spectrum:
    """The spectrum of a matrix whose sum of squares overflows float32 (values past 1.8e19, or
    NaN/Inf the caller did not clean): measured on ``matrix / max|value|`` (NaN/Inf as 0) and
    scaled back in float64, instead of products that overflow and a factorisation that fails."""
    values = finite_values(matrix)
    largest = float(np.abs(values).max()) if values.size else 0.0
    if largest == 0.0:
        return spectrum_of(values, rows, centre=centre, rank=rank, oversample=oversample)
    scaled = spectrum_of(values / values.dtype.type(largest), rows, centre=centre, rank=rank,
                         oversample=oversample)
    return replace(scaled, singular_values=tuple(v * largest for v in scaled.singular_values),
                   energy=scaled.energy * largest * largest)


def tensor_spectrum(ref: TensorRef, array: np.ndarray | None = None,
                    finite: bool = False) -> Spectrum:
    """The spectrum of the tensor's evenly spaced sample (``finite``: known to hold no NaN/Inf,
    as the unit-norm pass proves)."""
    sample, rows = sample_matrix(ref, array=array, finite=finite)
    return spectrum_of(sample, rows)
