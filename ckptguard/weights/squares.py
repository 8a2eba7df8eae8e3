"""Sums of squares of a float32 block's rows and columns, the innermost work of every weight
pass (each tensor's light pass, the base diff), on the fastest kernel NumPy has for each."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# ``np.vecdot`` (NumPy 2.0 and later) takes each row's dot product with a SIMD inner loop:
# on a 1 MiB float32 block it is 3x faster than ``einsum("ij,ij->i")`` (21 us against 61 us on
# 113 x 2304; faster than ``ndarray.sum`` of the same block).  It holds the GIL, so the weight
# pass's threads take turns on it, and it still wins there: 19.6 us per block on two threads
# against einsum's 29.4 us (which releases the GIL).  Older NumPy keeps einsum.
_VECDOT: Callable[..., np.ndarray] | None = getattr(np, "vecdot", None)


def row_squares(values: np.ndarray) -> np.ndarray:
    """Each row's sum of squares of a 2-D float block (float32 sums for float32 values; NaN or
    Inf in a row makes its sum not finite)."""
    if _VECDOT is not None:
        return _VECDOT(values, values)
    sums: np.ndarray = np.einsum("ij,ij->i", values, values)
    return sums


def column_squares(values: np.ndarray) -> np.ndarray:
    """Each column's sum of squares of a 2-D float block (einsum: no kernel beats it for
    columns, and it needs no temporary array)."""
    sums: np.ndarray = np.einsum("ij,ij->j", values, values)
    return sums
