"""Per-tensor statistics, streamed in bounded blocks: non-finite counts, moments, extremes, and
per-row / per-column norms for robust outlier scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import checked_layout, iter_blocks
from ckptguard.weights.squares import column_squares, row_squares
from ckptguard.weights.thresholds import BLOCK_BYTES, LIGHT_BLOCK_BYTES, MAD_TO_SIGMA


@dataclass(frozen=True)
class NonFinite:
    nan: int
    posinf: int
    neginf: int
    first_index: int | None  # flat index of the first non-finite value

    @property
    def total(self) -> int:
        return self.nan + self.posinf + self.neginf


@dataclass(frozen=True)
class Outlier:
    """The most extreme unit (row or column) of a tensor by a robust z-score of its norm."""

    index: int
    value: float  # the unit's L2 norm
    median: float
    z: float  # (value - median) / (1.4826 * MAD)
    second_z: float  # the next most extreme unit, to show how alone the first one is


@dataclass(frozen=True)
class TensorStats:
    name: str
    count: int
    non_finite: NonFinite
    max_abs: float
    mean: float
    std: float
    excess_kurtosis: float
    row: Outlier | None
    column: Outlier | None
    row_max_abs: Outlier | None  # the row whose largest |weight| is most extreme
    # L2 norm of the weights reading each input unit (columns of a linear layer, input channels
    # of a convolution): lets a producer's outlier row be matched with its consumer's column.
    input_norms: np.ndarray | None = field(default=None, compare=False, repr=False)
    # L2 norm of each output unit's weights (rows; columns of a transposed Conv1D tensor).
    unit_norms: np.ndarray | None = field(default=None, compare=False, repr=False)
    transposed: bool = False  # output units are the columns (GPT-2 Conv1D, stored (in, out))
    # False for the light pass (unit norms and non-finite counts only): the moments, the row
    # maxima and the input norms are then unknown, and ``tensor_stats`` must be run for them.
    complete: bool = True


def count_non_finite(ref: TensorRef, block_bytes: int = BLOCK_BYTES) -> NonFinite:
    """Counts of NaN, +Inf and -Inf (zero for integer tensors)."""
    nan = posinf = neginf = 0
    first: int | None = None
    cols = checked_layout(ref)[1].cols
    for block in iter_blocks(ref, block_bytes):
        values = block.values
        flat = values.reshape(-1)  # a block is whole rows or part of one row: no copy
        with np.errstate(over="ignore"):  # huge finite values: the exact check below decides
            quick = np.dot(flat, flat)
        if np.isfinite(quick):
            # NaN and Inf would reach the sum of squares: none here.  A BLAS dot, not einsum,
            # whose setup dominated the check of a transformer's ~100 biases and norm vectors
            # (GPT-2 small: 8.5 ms of its scan, 6.4 ms with the dot; most of the rest is mapping
            # the file for each tensor).
            continue
        bad = ~np.isfinite(values)
        if not bad.any():
            continue
        n = int(np.isnan(values).sum())
        pos = int(np.isposinf(values).sum())
        nan += n
        posinf += pos
        neginf += int(bad.sum()) - n - pos
        if first is None:
            r, c = np.unravel_index(int(np.argmax(bad)), values.shape)
            first = (block.first_row + int(r)) * cols + block.first_col + int(c)
    return NonFinite(nan, posinf, neginf, first)


def median_of(values: np.ndarray) -> float:
    """``np.median`` of a 1-D array, the same value (the middle one, or the mean of the two
    middle ones in the array's dtype; NaN when any value is NaN) from one partition: NumPy's
    reduction machinery costs 15 us per call, most of a 384-value median, and the statistics take
    hundreds of them per checkpoint (two per robust score)."""
    size = values.size
    if size == 0 or np.isnan(values).any():
        return float("nan")
    middle = size // 2
    if size % 2:
        return float(np.partition(values, middle)[middle])
    both = np.partition(values, (middle - 1, middle))
    return float((both[middle - 1] + both[middle]) / 2)


def robust_scale(values: np.ndarray) -> tuple[float, float]:
    """The median of ``values`` and the scale robust z-scores divide by: 1.4826 times the median
    absolute deviation, or, when over half the values are identical (MAD 0), their standard
    deviation, or 1 when that is not positive either."""
    median = median_of(values)
    scale = MAD_TO_SIGMA * median_of(np.abs(values - median))
    if scale <= 0.0:
        spread = float(np.std(values))
        scale = spread if spread > 0.0 else 1.0
    return median, scale


def robust_outlier(values: np.ndarray) -> Outlier | None:
    """The unit whose value is most above the median, scored by a MAD-based robust z."""
    if values.size < 3:
        return None
    median, scale = robust_scale(values)
    order = np.argsort(values)
    top = int(order[-1])
    second = float(values[order[-2]])
    return Outlier(index=top, value=float(values[top]), median=median,
                   z=(float(values[top]) - median) / scale, second_z=(second - median) / scale)


def input_norms(ref: TensorRef, block_bytes: int = BLOCK_BYTES) -> np.ndarray:
    """The L2 norm of each column (each input feature of a linear layer or embedding), in one
    light pass; non-finite values count as 0."""
    _, shape = checked_layout(ref)
    col_sq = np.zeros(shape.cols, dtype=np.float64)
    for block in iter_blocks(ref, block_bytes):
        values = block.values
        sums = column_squares(values)
        if not np.isfinite(sums).all():
            clean = np.where(np.isfinite(values), values, np.float32(0.0))
            sums = column_squares(clean)
        col_sq[block.first_col:block.first_col + values.shape[1]] += sums
    return np.asarray(np.sqrt(col_sq), dtype=np.float64)


def column_norms(ref: TensorRef, block_bytes: int = BLOCK_BYTES) -> tuple[np.ndarray, NonFinite]:
    """Each column's L2 norm (non-finite values count as 0) and the tensor's NaN/Inf counts, in
    one pass when every value is finite (they would reach the column sums)."""
    _, shape = checked_layout(ref)
    col_sq = np.zeros(shape.cols, dtype=np.float64)
    for block in iter_blocks(ref, block_bytes):
        col_sq[block.first_col:block.first_col + block.values.shape[1]] += \
            column_squares(block.values)
    if np.isfinite(col_sq).all():
        return np.sqrt(col_sq), NonFinite(0, 0, 0, None)
    return input_norms(ref, block_bytes), count_non_finite(ref, block_bytes)


def unit_norm_stats(ref: TensorRef, block_bytes: int = LIGHT_BLOCK_BYTES,
                    array: np.ndarray | None = None, transposed: bool = False) -> TensorStats:
    """The light pass every linear/conv tensor gets: each row's sum of squares (and each
    column's when ``transposed``: a 2-D tensor stored (in, out), whose output units are its
    columns), in float32 over blocks small enough to stay in the CPU cache.  The sums also prove
    there is no NaN or Inf (they would reach them).  Tensors whose sums are not finite, and
    tensors the checks single out, get the full ``tensor_stats``."""
    _, shape = checked_layout(ref)
    transposed = transposed and len(ref.shape) == 2
    row_sq = np.zeros(shape.rows, dtype=np.float64)
    col_sq = np.zeros(shape.cols, dtype=np.float64) if transposed else None
    for block in iter_blocks(ref, block_bytes, array):
        values = block.values
        row_sq[block.first_row:block.first_row + values.shape[0]] += \
            row_squares(values)
        if col_sq is not None:
            col_sq[block.first_col:block.first_col + values.shape[1]] += \
                column_squares(values)
    return light_stats(ref, row_sq, col_sq, array)


def light_stats(ref: TensorRef, row_sq: np.ndarray, col_sq: np.ndarray | None,
                array: np.ndarray | None = None) -> TensorStats:
    """The light statistics from each row's sum of squares and, for a tensor stored (in, out),
    each column's (``col_sq``: its output units; the rows are then its inputs), computed by
    whichever pass read the tensor.  Sums that are not finite mean NaN/Inf, and get the full
    ``tensor_stats``."""
    transposed = col_sq is not None
    if not (np.isfinite(row_sq).all() and (col_sq is None or np.isfinite(col_sq).all())):
        return tensor_stats(ref, transposed=transposed, array=array)
    units = np.sqrt(col_sq if col_sq is not None else row_sq)
    return TensorStats(name=ref.name, count=checked_layout(ref)[1].count,
                       non_finite=NonFinite(0, 0, 0, None),
                       max_abs=0.0, mean=0.0, std=0.0, excess_kurtosis=0.0,
                       row=robust_outlier(units) if units.size >= 3 else None, column=None,
                       row_max_abs=None, unit_norms=units,
                       input_norms=np.sqrt(row_sq) if transposed else None,
                       transposed=transposed, complete=False)


def tensor_stats(ref: TensorRef, block_bytes: int = BLOCK_BYTES,
                 transposed: bool = False, array: np.ndarray | None = None) -> TensorStats:
    """Everything about one tensor that the neuron check needs, in one streaming pass.
    ``transposed``: the output units are the columns (a 2-D tensor stored (in, out))."""
    _, shape = checked_layout(ref)
    rows, cols = shape.rows, shape.cols
    row_sq = np.zeros(rows, dtype=np.float64)
    row_max = np.zeros(rows, dtype=np.float64)
    col_sq = np.zeros(cols, dtype=np.float64)
    col_max = np.zeros(cols, dtype=np.float64) if transposed else None
    moments = np.zeros(4, dtype=np.float64)  # sums of x, x^2, x^3, x^4 over finite values
    finite_count = 0
    nan = posinf = neginf = 0
    first_bad: int | None = None
    max_abs = 0.0
    for block in iter_blocks(ref, block_bytes, array):
        values = block.values
        finite = np.isfinite(values)
        all_finite = bool(finite.all())
        if not all_finite:
            bad = ~finite
            n = int(np.isnan(values).sum())
            pos = int(np.isposinf(values).sum())
            nan, posinf = nan + n, posinf + pos
            neginf += int(bad.sum()) - n - pos
            if first_bad is None:
                r, c = np.unravel_index(int(np.argmax(bad)), values.shape)
                first_bad = (block.first_row + int(r)) * cols + block.first_col + int(c)
            values = np.where(finite, values, np.float32(0.0))
        # float32 element work, float64 accumulation: one squared array serves every statistic.
        squares = np.square(values)
        end = block.first_row + values.shape[0]
        block_rows = squares.sum(axis=1, dtype=np.float64)
        if not np.isfinite(block_rows).all():
            # Finite values past 1.8e19 square to Inf in float32: redone in float64, where even
            # the fourth power of float32's largest value is finite (norms, not "inf" z-scores).
            values = values.astype(np.float64)
            squares = np.square(values)
            block_rows = squares.sum(axis=1)
        row_sq[block.first_row:end] += block_rows
        block_max = np.abs(values).max(axis=1)
        np.maximum(row_max[block.first_row:end], block_max, out=row_max[block.first_row:end])
        col_sq[block.first_col:block.first_col + values.shape[1]] += \
            squares.sum(axis=0, dtype=np.float64)
        if col_max is not None and values.size:
            span = col_max[block.first_col:block.first_col + values.shape[1]]
            np.maximum(span, np.abs(values).max(axis=0), out=span)
        moments += (values.sum(dtype=np.float64), squares.sum(dtype=np.float64),
                    np.vdot(squares, values).astype(np.float64),
                    np.vdot(squares, squares).astype(np.float64))
        finite_count += values.size if all_finite else int(finite.sum())
        if block_max.size:
            max_abs = max(max_abs, float(block_max.max()))
    mean, std, kurt = _moments(moments, finite_count)
    if transposed and len(ref.shape) == 2 and col_max is not None:
        units, inputs, unit_max = np.sqrt(col_sq), np.sqrt(row_sq), col_max
    else:
        units, inputs, unit_max = np.sqrt(row_sq), np.sqrt(col_sq), row_max
        transposed = False
    several = units.size >= 3
    return TensorStats(
        name=ref.name, count=shape.count,
        non_finite=NonFinite(nan, posinf, neginf, first_bad),
        max_abs=max_abs, mean=mean, std=std, excess_kurtosis=kurt,
        row=robust_outlier(units) if several else None,
        column=robust_outlier(inputs) if several else None,
        row_max_abs=robust_outlier(unit_max) if several else None,
        input_norms=np.asarray(inputs, dtype=np.float64) if transposed else
        _input_norms(col_sq, ref.shape),
        unit_norms=units, transposed=transposed,
    )


def _input_norms(col_sq: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    if len(shape) < 2 or shape[1] == 0:
        return None
    per_input = col_sq.reshape(shape[1], -1).sum(axis=1)
    return np.asarray(np.sqrt(per_input), dtype=np.float64)


def robust_z_at(values: np.ndarray, index: int) -> float:
    """The robust z-score of ``values[index]`` within ``values``."""
    if values.size < 3 or not 0 <= index < values.size:
        return 0.0
    median, scale = robust_scale(values)
    return (float(values[index]) - median) / scale


def _moments(sums: np.ndarray, n: int) -> tuple[float, float, float]:
    """Mean, standard deviation and excess kurtosis from raw power sums."""
    if n == 0:
        return 0.0, 0.0, 0.0
    m1, m2, m3, m4 = (float(s) / n for s in sums)
    var = max(m2 - m1 * m1, 0.0)
    if var <= 0.0:
        return m1, 0.0, 0.0
    central4 = m4 - 4 * m1 * m3 + 6 * m1 * m1 * m2 - 3 * m1**4
    return m1, var**0.5, central4 / (var * var) - 3.0


@dataclass(frozen=True)
class UnitChange:
    base_z: float  # robust z of the unit's norm within the base's layer
    relative: float  # ||unit - base unit|| / ||base unit||


def unit_change(ref: TensorRef, base: TensorRef, unit: int,
                transposed: bool = False) -> UnitChange | None:
    """How unit ``unit`` (a row; a column when ``transposed``) of ``ref`` differs from the base's,
    and how far it already stood out there."""
    from ckptguard.weights.decode import raw_array, to_float32

    if tuple(ref.shape) != tuple(base.shape):
        return None
    stats = tensor_stats(base, transposed=transposed)
    if stats.unit_norms is None or not 0 <= unit < stats.unit_norms.size:
        return None
    ours_raw, base_raw = raw_array(ref), raw_array(base)
    ours_unit = ours_raw[:, unit] if transposed else ours_raw[unit]
    base_unit = base_raw[:, unit] if transposed else base_raw[unit]
    ours = to_float32(np.ascontiguousarray(ours_unit), ref.dtype).astype(np.float64)
    theirs = to_float32(np.ascontiguousarray(base_unit), base.dtype).astype(np.float64)
    ours, theirs = np.nan_to_num(ours), np.nan_to_num(theirs)
    norm = float(np.linalg.norm(theirs))
    relative = float(np.linalg.norm(ours - theirs)) / norm if norm > 0 else float("inf")
    return UnitChange(robust_z_at(stats.unit_norms, unit), relative)
