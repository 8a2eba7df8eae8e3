"""Compare a checkpoint's tensors with those of the base it claims to be fine-tuned from.

An honest fine-tune spreads its change over many directions and rows; a poisoned fine-tune or a
model edit concentrates it (low effective rank, a few rows).  Both tensors are streamed in row
blocks side by side; the delta's spectrum comes from the same bounded row/column sample of both.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import checked_layout, raw_array, to_float32
from ckptguard.weights.roles import Role, role_of
from ckptguard.weights.spectrum import (
    Spectrum,
    column_stride,
    evenly_spaced,
    finite_values,
    spectrum_of,
)
from ckptguard.weights.squares import column_squares, row_squares
from ckptguard.weights.thresholds import (
    BLOCK_BYTES,
    DELTA_OVERSAMPLE,
    DIFF_BLOCK_BYTES,
    EDIT_RANK,
    SPECTRAL_SAMPLE_COLS,
    SPECTRAL_SAMPLE_ROWS,
)


@dataclass(frozen=True)
class Mismatch:
    name: str
    kind: str  # "missing" (in base only), "extra" (in checkpoint only), "shape", "dtype",
    # "renamed" (paired with a base tensor of another name by shape alone)
    detail: str


@dataclass(frozen=True)
class TensorDelta:
    ref: TensorRef
    role: Role
    relative: float  # ||delta||_F / ||base||_F
    changed_fraction: float  # share of elements that differ at all (on the spectral sample)
    rows: int
    rows_changed: int
    top_row: int  # the row with the largest change
    top_rows_share: float  # share of the delta's energy in the top 1% of rows (at least one)
    spectrum: Spectrum  # of the delta (not centred)
    energy: float = 0.0  # ||delta||_F^2

    @property
    def top_share(self) -> float:
        return self.spectrum.top_share

    @property
    def effective_rank(self) -> float:
        return self.spectrum.stable_rank


def compare_tables(ours: Sequence[TensorRef],
                   base: Mapping[str, TensorRef]) -> tuple[list[tuple[TensorRef, TensorRef]],
                                                          list[Mismatch]]:
    """Pairs to diff and the tensors that do not line up.  ``base`` may hold more tensors than
    this artifact (a sharded checkpoint): only the names seen here are reported as extra."""
    pairs: list[tuple[TensorRef, TensorRef]] = []
    mismatches: list[Mismatch] = []
    for ref in ours:
        other = base.get(ref.name)
        if other is None:
            mismatches.append(Mismatch(ref.name, "extra", "not present in the base checkpoint"))
        elif tuple(other.shape) != tuple(ref.shape):
            mismatches.append(Mismatch(ref.name, "shape",
                                       f"shape {list(ref.shape)}, base {list(other.shape)}"))
        elif other.dtype != ref.dtype and (ref.dtype, other.dtype) != ("bfloat16", "float32"):
            pairs.append((ref, other))
            mismatches.append(Mismatch(ref.name, "dtype", f"{ref.dtype}, base {other.dtype}"))
        else:
            pairs.append((ref, other))
    return pairs, mismatches


def missing_from(ours: Sequence[TensorRef], base: Mapping[str, TensorRef]) -> list[Mismatch]:
    """Base tensors absent here (meaningful only when this artifact is the whole checkpoint)."""
    names = {ref.name for ref in ours}
    return [Mismatch(name, "missing", "present in the base checkpoint, absent here")
            for name in sorted(base) if name not in names]


def tensor_delta(ref: TensorRef, base: TensorRef, block_bytes: int = BLOCK_BYTES,
                 array: np.ndarray | None = None) -> TensorDelta:
    """How ``ref`` differs from ``base`` (same shape), in one pass over both: float32 element
    work, float64 sums.  ``array``: ``ref``'s ``raw_array`` when the caller already holds it."""
    return delta_pass(ref, base, block_bytes, array)[0]


def delta_pass(ref: TensorRef, base: TensorRef, block_bytes: int = BLOCK_BYTES,
               array: np.ndarray | None = None,
               transposed: bool = False,
               ) -> tuple[TensorDelta, np.ndarray, np.ndarray | None]:
    """``tensor_delta`` and, from the same read, the sums of squares of ``ref``'s rows and (when
    ``transposed``, a 2-D tensor stored (in, out)) its columns: what ``light_stats`` needs (not
    finite where ``ref`` holds NaN/Inf).  Both tensors are read once, in
    blocks small enough that the difference and every sum over it stay in the CPU cache; the
    delta's spectral sample is copied out of those blocks as they pass."""
    _, shape = checked_layout(ref)
    checked_layout(base)
    ours, theirs = raw_array(ref) if array is None else array, raw_array(base)
    rows, cols = shape.rows, shape.cols
    sample_rows = evenly_spaced(rows, SPECTRAL_SAMPLE_ROWS)
    stride = column_stride(cols, SPECTRAL_SAMPLE_COLS)
    sample = np.empty((sample_rows.size, len(range(0, cols, stride))), dtype=np.float32)
    row_delta = np.zeros(rows, dtype=np.float64)
    own_rows = np.zeros(rows, dtype=np.float64)
    own_cols = np.zeros(cols, dtype=np.float64) if transposed and len(ref.shape) == 2 else None
    base_energy = 0.0
    step = max(1, min(block_bytes, DIFF_BLOCK_BYTES) // max(1, cols * 4))
    buffer = np.empty((min(step, rows), cols), dtype=np.float32)
    taken = changed = 0  # sample rows copied so far, and their elements that differ
    for first in range(0, rows, step):
        a = to_float32(ours[first:first + step], ref.dtype)
        b = to_float32(theirs[first:first + step], base.dtype)
        end = first + a.shape[0]
        own_rows[first:end] = row_squares(a)
        if own_cols is not None:
            own_cols += column_squares(a)
        delta = np.subtract(a, b, out=buffer[:a.shape[0]])
        energies = row_squares(delta)
        flat = b.reshape(-1)
        block_base = float(np.dot(flat, flat))  # float32 per block, float64 across blocks
        if not (np.isfinite(energies).all() and np.isfinite(block_base)):
            a, b = finite_values(a), finite_values(b)  # NaN/Inf count as 0 (BKD001 reports them)
            delta = a - b
            energies = row_squares(delta)
            flat = b.reshape(-1)
            block_base = float(np.dot(flat, flat))
        row_delta[first:end] = energies
        base_energy += block_base
        upto = int(np.searchsorted(sample_rows, end))
        if upto > taken:
            picked = delta[sample_rows[taken:upto] - first]
            piece = sample[taken:upto]
            piece[...] = picked[:, ::stride]
            changed += int(np.count_nonzero(piece != 0))  # in the cache; 6x count_nonzero(float)
            taken = upto
    delta_energy = float(row_delta.sum())
    changed_share = changed / sample.size if sample.size else 0.0
    order = np.argsort(row_delta)[::-1]
    top_count = max(1, rows // 100)
    top_share = float(row_delta[order[:top_count]].sum()) / delta_energy if delta_energy else 0.0
    found = TensorDelta(
        ref=ref, role=role_of(ref.name, ref.shape),
        relative=(delta_energy / base_energy) ** 0.5 if base_energy > 0 else
        (float("inf") if delta_energy > 0 else 0.0),
        changed_fraction=changed_share,
        rows=rows, rows_changed=int((row_delta > 0).sum()),
        top_row=int(order[0]) if rows else 0, top_rows_share=top_share,
        spectrum=spectrum_of(sample, sample_rows, centre=False, rank=EDIT_RANK,
                             oversample=DELTA_OVERSAMPLE),
        energy=delta_energy)
    return found, own_rows, own_cols


def deltas(pairs: Sequence[tuple[TensorRef, TensorRef]]) -> Iterator[TensorDelta]:
    for ours, base in pairs:
        yield tensor_delta(ours, base)
