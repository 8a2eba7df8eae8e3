"""The diff of a whole checkpoint against its claimed base, computed once per artifact.

Per linear/conv pair it keeps the ``TensorDelta``; over the model it measures what an edit and a
fine-tune do differently: how many tensors changed at all (an edit touches a handful, a
fine-tune every one), how the change's energy spreads over tensors, and how close each change is
to low rank.  It also says whether the base could be paired at all, and whether it is plausible
as a parent (a fine-tune moves weights by a small fraction; an unrelated model by ~sqrt(2)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.base import BaseTensors
from ckptguard.weights.decode import TensorDecodeError, is_float
from ckptguard.weights.diff import TensorDelta, tensor_delta
from ckptguard.weights.pairing import Pairing, pair_tables
from ckptguard.weights.roles import role_of
from ckptguard.weights.thresholds import (
    EDIT_RANK,
    EXACT_LOW_RANK_SHARE,
    LOCALIZED_SHARE,
    LOW_RANK_MIN_SIDE,
    LOW_RANK_SHARE,
)


@dataclass(frozen=True)
class ModelDiff:
    base: BaseTensors
    pairing: Pairing
    judged: int  # linear/conv tensors of this artifact
    deltas: tuple[TensorDelta, ...]  # of the paired linear/conv tensors
    identical: int  # paired linear/conv tensors whose bytes equal the base's
    unreadable: int  # pairs the diff could not decode

    @property
    def judged_pairs(self) -> int:
        return len(self.deltas) + self.identical

    @property
    def changed(self) -> tuple[TensorDelta, ...]:
        return tuple(d for d in self.deltas if d.relative > 0.0)

    @property
    def median_relative(self) -> float:
        """Median of ||delta|| / ||base|| over paired linear/conv tensors (identical ones count
        as 0)."""
        values = [d.relative for d in self.deltas] + [0.0] * self.identical
        return float(np.median(values)) if values else 0.0

    @property
    def changed_share(self) -> float:
        return len(self.changed) / self.judged_pairs if self.judged_pairs else 0.0

    def energy_share(self, delta: TensorDelta) -> float:
        total = sum(d.energy for d in self.deltas)
        return delta.energy / total if total > 0 else 0.0

    def energy_share_of_top(self, count: int) -> float:
        """Share of the model's total change energy ||delta||^2 in its ``count`` largest
        tensors."""
        energies = sorted((d.energy for d in self.deltas), reverse=True)
        total = sum(energies)
        return sum(energies[:count]) / total if total > 0 else 0.0


def model_diff(ours: Sequence[TensorRef], base: BaseTensors,
               known: Mapping[str, TensorDelta] | None = None) -> ModelDiff:
    """``known``: deltas already computed (by name of ours) in the single pass over the tensors
    (``ckptguard.weights.anomalies.profile``); the rest are computed here."""
    pairing = pair_tables(ours, base.tensors)
    judged = sum(1 for ref in ours if is_float(ref) and role_of(ref.name, ref.shape).has_neurons)
    deltas: list[TensorDelta] = []
    identical = unreadable = 0
    for mine, theirs in pairing.pairs:
        if not (is_float(mine) and is_float(theirs) and
                role_of(mine.name, mine.shape).has_neurons):
            continue
        try:
            delta = known[mine.name] if known and mine.name in known else \
                tensor_delta(mine, theirs)
        except TensorDecodeError:
            unreadable += 1
            continue
        if delta.energy == 0.0 and mine.dtype == theirs.dtype:
            identical += 1  # equal values (bit-identical up to NaN payloads and signed zeros)
        else:
            deltas.append(delta)
    return ModelDiff(base, pairing, judged, tuple(deltas), identical, unreadable)


def low_rank(delta: TensorDelta) -> int | None:
    """The smallest k <= EDIT_RANK whose top-k directions hold EXACT_LOW_RANK_SHARE of the
    change's energy, or None (also for a tensor too narrow to say: see LOW_RANK_MIN_SIDE)."""
    if delta.spectrum.side < LOW_RANK_MIN_SIDE:
        return None
    for k in range(1, EDIT_RANK + 1):
        if delta.spectrum.top_k_share(k) >= EXACT_LOW_RANK_SHARE:
            return k
    return None


@dataclass(frozen=True)
class EditPattern:
    kind: str  # "localized" (a few tensors, low rank, the rest identical) or "low-rank"
    tensors: tuple[TensorDelta, ...]  # the changed linear/conv tensors behind it
    changed: int
    paired: int
    rank: int | None  # the largest exact rank among them (None: low rank but not exact)


def edit_pattern(diff: ModelDiff) -> EditPattern | None:
    """A model-level edit signature: a localized low-rank change, or low-rank changes across the
    model (a merged LoRA adapter, a multi-layer edit)."""
    changed = diff.changed
    paired = diff.judged_pairs
    # Only tensors wide enough to hold more than EDIT_RANK directions say anything about rank.
    telling = tuple(d for d in changed if d.spectrum.side >= LOW_RANK_MIN_SIDE)
    if not telling or paired == 0:
        return None
    shares = [d.spectrum.top_k_share(EDIT_RANK) for d in telling]
    ranks = [low_rank(d) for d in telling]
    exact = [r for r in ranks if r is not None]
    rank = max(exact) if len(exact) == len(ranks) else None
    if len(changed) <= max(1.0, LOCALIZED_SHARE * paired) and min(shares) >= LOW_RANK_SHARE:
        return EditPattern("localized", telling, len(changed), paired, rank)
    if len(telling) >= 2 and float(np.median(shares)) >= EXACT_LOW_RANK_SHARE:
        low = tuple(d for d, r in zip(telling, ranks, strict=True) if r is not None)
        return EditPattern("low-rank", low, len(changed), paired,
                           max(exact) if exact else None)
    return None
