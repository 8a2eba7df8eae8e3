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
from ckptguard.weights.spectrum import Spectrum, evenly_spaced, spectrum_of
from ckptguard.weights.thresholds import (
    BLOCK_BYTES,
    DIFF_CHANGED_ATOL,
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
    changed_fraction: float  # share of elements that changed
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


def tensor_delta(ref: TensorRef, base: TensorRef, block_bytes: int = BLOCK_BYTES) -> TensorDelta:
    """How ``ref`` differs from ``base`` (same shape)."""
    _, shape = checked_layout(ref)
    checked_layout(base)
    ours, theirs = raw_array(ref), raw_array(base)
    rows, cols = shape.rows, shape.cols
    row_delta = np.zeros(rows, dtype=np.float64)
    base_energy = 0.0
    changed = 0
    step = max(1, block_bytes // max(1, cols * 8))
    blocks: list[tuple[int, np.ndarray, np.ndarray]] = [
        (first, ours[first:first + step], theirs[first:first + step])
        for first in range(0, rows, step)]
    rms_base = _rms(theirs, base.dtype, step)
    tolerance = DIFF_CHANGED_ATOL * max(rms_base, 1e-12)
    for first, a_raw, b_raw in blocks:
        a = _finite(to_float32(a_raw, ref.dtype))
        b = _finite(to_float32(b_raw, base.dtype))
        delta = a - b
        squares = delta * delta
        row_delta[first:first + a.shape[0]] = squares.sum(axis=1)
        base_energy += float((b * b).sum())
        changed += int((np.abs(delta) > tolerance).sum())
    delta_energy = float(row_delta.sum())
    order = np.argsort(row_delta)[::-1]
    top_count = max(1, rows // 100)
    top_share = float(row_delta[order[:top_count]].sum()) / delta_energy if delta_energy else 0.0
    sample_rows = evenly_spaced(rows, SPECTRAL_SAMPLE_ROWS)
    sample_cols = evenly_spaced(cols, SPECTRAL_SAMPLE_COLS)
    sample = (_finite(to_float32(np.ascontiguousarray(ours[sample_rows][:, sample_cols]),
                                 ref.dtype))
              - _finite(to_float32(np.ascontiguousarray(theirs[sample_rows][:, sample_cols]),
                                   base.dtype)))
    return TensorDelta(
        ref=ref, role=role_of(ref.name, ref.shape),
        relative=(delta_energy / base_energy) ** 0.5 if base_energy > 0 else
        (float("inf") if delta_energy > 0 else 0.0),
        changed_fraction=changed / shape.count if shape.count else 0.0,
        rows=rows, rows_changed=int((row_delta > 0).sum()),
        top_row=int(order[0]) if rows else 0, top_rows_share=top_share,
        spectrum=spectrum_of(sample, sample_rows, centre=False), energy=delta_energy)


def _finite(values: np.ndarray) -> np.ndarray:
    wide = values.astype(np.float64)
    return np.where(np.isfinite(wide), wide, 0.0)


def _rms(array: np.ndarray, dtype: str, step: int) -> float:
    total = 0.0
    for first in range(0, array.shape[0], step):
        block = _finite(to_float32(array[first:first + step], dtype))
        total += float((block * block).sum())
    return (total / array.size) ** 0.5 if array.size else 0.0


def deltas(pairs: Sequence[tuple[TensorRef, TensorRef]]) -> Iterator[TensorDelta]:
    for ours, base in pairs:
        yield tensor_delta(ours, base)
