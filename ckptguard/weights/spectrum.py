"""Top singular values of a matrix from a bounded, evenly spaced sample of its rows and columns.

A rank-one edit ``W + u v^T`` stays rank one in any row/column sample, so the sample keeps the
signature while the cost stays bounded (randomized SVD with a few power iterations).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import raw_array, to_float32
from ckptguard.weights.thresholds import (
    SPECTRAL_POWER_ITERATIONS,
    SPECTRAL_RANK,
    SPECTRAL_SAMPLE_COLS,
    SPECTRAL_SAMPLE_ROWS,
)


@dataclass(frozen=True)
class Spectrum:
    singular_values: tuple[float, ...]  # largest first
    energy: float  # squared Frobenius norm of the (centred) sample
    sampled_rows: int
    sampled_cols: int
    top_row: int  # the row (in the full tensor) with the largest weight in the top direction
    top_row_share: float = 0.0  # share of the top left singular vector on that one row

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
    return np.unique(np.linspace(0, total - 1, wanted).round().astype(np.int64))


def sample_matrix(ref: TensorRef, max_rows: int = SPECTRAL_SAMPLE_ROWS,
                  max_cols: int = SPECTRAL_SAMPLE_COLS,
                  array: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """An evenly spaced float32 sample of the tensor's matrix view, and the rows it took
    (``array``: the tensor's ``raw_array`` when the caller already holds it)."""
    array = raw_array(ref) if array is None else array
    rows = evenly_spaced(array.shape[0], max_rows)
    cols = evenly_spaced(array.shape[1], max_cols)
    sample = array[rows][:, cols] if cols.size < array.shape[1] else array[rows]  # one copy
    values = to_float32(np.ascontiguousarray(sample), ref.dtype)
    return np.where(np.isfinite(values), values, np.float32(0.0)), rows


def single_threaded_blas() -> AbstractContextManager[object]:
    """BLAS on one thread for the small products and factorisations here: a multi-threaded BLAS
    spends more on waking threads than on a 512 x 16 QR, and on a busy machine (oversubscribed
    cores) many times more.  Uses threadpoolctl when it is installed; otherwise does nothing."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        return nullcontext()
    return threadpool_limits(limits=1, user_api="blas")  # type: ignore[no-any-return]


def top_singular_values(matrix: np.ndarray, rank: int = SPECTRAL_RANK,
                        iterations: int = SPECTRAL_POWER_ITERATIONS,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The ``rank`` largest singular values and the top left singular vector (randomized SVD).
    Callers doing many of these hold ``single_threaded_blas()`` around them (setting the limit
    costs milliseconds, more than one small spectrum)."""
    return _top_singular_values(matrix, rank, iterations, seed)


def _top_singular_values(matrix: np.ndarray, rank: int, iterations: int,
                         seed: int) -> tuple[np.ndarray, np.ndarray]:
    rows, cols = matrix.shape
    k = min(rank, rows, cols)
    if k == 0:
        return np.zeros(0), np.zeros(rows)
    if min(rows, cols) <= 4 * (k + 8):
        u, s, _ = np.linalg.svd(matrix, full_matrices=False)
        return s[:k], u[:, 0]
    rng = np.random.default_rng(seed)
    probe = rng.standard_normal((cols, k + 8)).astype(matrix.dtype)
    basis = _orthonormal(matrix @ probe, rounds=1)
    for _ in range(iterations):
        basis = _orthonormal(matrix.T @ basis, rounds=1)  # only steers the next product
        basis = _orthonormal(matrix @ basis)
    small = basis.T @ matrix  # (k + 8, cols): its singular values are the estimates
    gram = (small @ small.T).astype(np.float64)  # a tiny symmetric matrix: eigh, not an SVD
    eigenvalues, vectors = np.linalg.eigh(gram)
    order = np.argsort(eigenvalues)[::-1]
    s = np.sqrt(np.clip(eigenvalues[order], 0.0, None))
    return s[:k], basis @ vectors[:, order[0]].astype(basis.dtype)


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
                centre: bool = True) -> Spectrum:
    """Singular values of ``matrix`` (mean-centred unless told otherwise)."""
    data = matrix - matrix.dtype.type(matrix.mean(dtype=np.float64)) if centre and matrix.size \
        else matrix
    values, top_vector = top_singular_values(data)
    picked = rows if rows is not None else np.arange(matrix.shape[0])
    top_row = int(picked[int(np.argmax(np.abs(top_vector)))]) if top_vector.size else 0
    weights = np.square(top_vector.astype(np.float64))
    concentration = float(weights.max() / weights.sum()) if weights.size and weights.sum() > 0 \
        else 0.0
    flat = data.reshape(-1)
    return Spectrum(tuple(float(v) for v in values), float(np.dot(flat, flat)),
                    matrix.shape[0], matrix.shape[1], top_row, concentration)


def tensor_spectrum(ref: TensorRef, array: np.ndarray | None = None) -> Spectrum:
    sample, rows = sample_matrix(ref, array=array)
    return spectrum_of(sample, rows)
