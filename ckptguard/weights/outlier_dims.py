"""Outlier dimensions of a transformer's residual stream, measured on the checkpoint itself.

Trained transformers carry a few massive dimensions in their residual stream (Kovaleva et al.
2021, "BERT busters"; Dettmers et al. 2022): the same index stands out in the normalisation
scales and shifts, the embeddings' columns, the columns of the layers that read the stream and the
rows of the layers that write to it.  A row outlier of a residual writer at such an index is the
model's own geometry, not a planted neuron.  A dimension counts as an outlier dimension when
at least ``DIM_VOTES`` *other* tensors single it out (robust z >= ``DIM_Z``): a neuron planted in
one layer has no such company.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import TensorDecodeError, is_float, raw_array, to_float32
from ckptguard.weights.roles import Role, norm_vector, residual_writer, role_of
from ckptguard.weights.stats import TensorStats, input_norms, robust_scale
from ckptguard.weights.thresholds import DIM_VOTES, DIM_Z


def robust_z_all(values: np.ndarray, two_sided: bool = False) -> np.ndarray:
    """Robust z of every value (median/MAD); two-sided scores distance from the median."""
    if values.size < 3:
        return np.zeros(values.shape)
    median, scale = robust_scale(values)
    z = (values - median) / scale
    return np.abs(z) if two_sided else z


@dataclass
class StreamVotes:
    """For each stream width, which tensors single out which dimension."""

    votes: dict[int, dict[int, set[str]]] = field(default_factory=dict)

    def add(self, width: int, scores: np.ndarray, name: str) -> None:
        per_dim = self.votes.setdefault(width, {})
        for dim in np.flatnonzero(scores >= DIM_Z):
            per_dim.setdefault(int(dim), set()).add(name)

    def expected(self, width: int, dim: int, judged: str) -> tuple[str, ...]:
        """Tensors other than ``judged`` that single out ``dim`` (empty unless there are
        ``DIM_VOTES`` of them)."""
        others = sorted(self.votes.get(width, {}).get(dim, set()) - {judged})
        return tuple(others) if len(others) >= DIM_VOTES else ()


def stream_votes(refs: Iterable[TensorRef], judged: Mapping[str, TensorStats],
                 widths: set[int],
                 columns: Mapping[str, np.ndarray] | None = None) -> StreamVotes:
    """Votes for outlier dimensions of streams of the given ``widths``: norm vectors (two-sided
    z of their values), embeddings (column norms; ``columns`` holds those already read),
    residual writers (row norms) and the layers reading the stream (column norms)."""
    found = StreamVotes()
    for ref in refs:
        if not is_float(ref) or not ref.shape:
            continue
        stats = judged.get(ref.name)
        try:
            if norm_vector(ref.name, ref.shape) and ref.shape[0] in widths:
                values = to_float32(raw_array(ref), ref.dtype).reshape(-1).astype(np.float64)
                values = np.where(np.isfinite(values), values, 0.0)
                found.add(ref.shape[0], robust_z_all(values, two_sided=True), ref.name)
            elif len(ref.shape) == 2 and role_of(ref.name, ref.shape) is Role.EMBEDDING and \
                    ref.shape[1] in widths:
                norms = columns.get(ref.name) if columns else None
                found.add(ref.shape[1], robust_z_all(input_norms(ref) if norms is None
                                                     else norms), ref.name)
            elif stats is not None:
                if residual_writer(ref.name) and stats.unit_norms is not None and \
                        stats.unit_norms.size in widths:
                    found.add(stats.unit_norms.size, robust_z_all(stats.unit_norms), ref.name)
                if stats.input_norms is not None and stats.input_norms.size in widths:
                    found.add(stats.input_norms.size, robust_z_all(stats.input_norms), ref.name)
        except TensorDecodeError:
            continue
    return found
