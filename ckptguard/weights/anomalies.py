"""Weight anomalies over a whole checkpoint: which tensors are judged, and what stands out.

Pure functions from ``TensorRef``s to frozen results; the checks in ``ckptguard.checks.backdoor``
turn them into findings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import TensorDecodeError, is_float
from ckptguard.weights.roles import Role, role_of
from ckptguard.weights.spectrum import Spectrum, tensor_spectrum
from ckptguard.weights.stats import (
    NonFinite,
    TensorStats,
    count_non_finite,
    robust_z_at,
    tensor_stats,
)
from ckptguard.weights.thresholds import (
    KURTOSIS_STRONG,
    NEURON_Z,
    NEURON_Z_STRONG,
    SPECTRAL_GAP,
    SPECTRAL_SHARE,
    SPECTRAL_SINGLE_ROW,
)


@dataclass(frozen=True)
class Unreadable:
    ref: TensorRef
    reason: str
    size_mismatch: bool


@dataclass(frozen=True)
class NonFiniteTensor:
    ref: TensorRef
    counts: NonFinite


@dataclass(frozen=True)
class NeuronOutlier:
    """One unit of a layer whose weights stand far out from its siblings'."""

    ref: TensorRef
    role: Role
    stats: TensorStats
    row: int
    z: float
    second_z: float
    max_abs_z: float  # robust z of the row's largest |weight|
    consumer: str | None  # a layer reading this unit whose column is also an outlier
    consumer_z: float

    @property
    def signals(self) -> tuple[str, ...]:
        """Independent signals that agree (the first is always the row itself)."""
        found = ["row-norm"]
        if self.consumer is not None and self.consumer_z >= NEURON_Z:
            found.append("consumer-column")
        if self.stats.excess_kurtosis >= KURTOSIS_STRONG and self.z >= NEURON_Z_STRONG:
            found.append("kurtosis")
        return tuple(found)


@dataclass(frozen=True)
class RankOneStructure:
    ref: TensorRef
    spectrum: Spectrum


def floats(refs: Iterable[TensorRef]) -> Iterator[TensorRef]:
    return (ref for ref in refs if is_float(ref))


def unreadable(refs: Iterable[TensorRef]) -> Iterator[Unreadable]:
    """Tensors whose bytes cannot be decoded: statistics could not examine them."""
    from ckptguard.weights.decode import checked_layout

    for ref in refs:
        try:
            checked_layout(ref)
        except TensorDecodeError as exc:
            yield Unreadable(ref, str(exc), "bytes stored" in str(exc))


def non_finite(refs: Iterable[TensorRef]) -> Iterator[NonFiniteTensor]:
    for ref in floats(refs):
        try:
            counts = count_non_finite(ref)
        except TensorDecodeError:
            continue
        if counts.total:
            yield NonFiniteTensor(ref, counts)


def neuron_tensors(refs: Iterable[TensorRef]) -> list[tuple[TensorRef, Role]]:
    judged = []
    for ref in floats(refs):
        role = role_of(ref.name, ref.shape)
        if role.has_neurons:
            judged.append((ref, role))
    return judged


def neuron_outliers(refs: Iterable[TensorRef]) -> Iterator[NeuronOutlier]:
    """Units of linear/conv layers whose weight norm is a robust outlier among their layer's."""
    judged: list[tuple[TensorRef, Role, TensorStats]] = []
    for ref, role in neuron_tensors(refs):
        try:
            judged.append((ref, role, tensor_stats(ref)))
        except TensorDecodeError:
            continue
    for ref, role, stats in judged:
        row = stats.row
        if row is None or row.z < NEURON_Z:
            continue
        consumer, consumer_z = _best_consumer(ref, row.index, judged)
        max_abs_z = stats.row_max_abs.z if stats.row_max_abs is not None and \
            stats.row_max_abs.index == row.index else 0.0
        yield NeuronOutlier(ref, role, stats, row.index, row.z, row.second_z, max_abs_z,
                            consumer, consumer_z)


def _best_consumer(producer: TensorRef, unit: int,
                   judged: list[tuple[TensorRef, Role, TensorStats]]) -> tuple[str | None, float]:
    """The layer (reading as many inputs as the producer has outputs) where input ``unit`` is
    most extreme."""
    best: tuple[str | None, float] = (None, 0.0)
    for ref, _, stats in judged:
        if ref is producer or len(ref.shape) < 2 or ref.shape[1] != producer.shape[0]:
            continue
        if stats.input_norms is None:
            continue
        z = robust_z_at(stats.input_norms, unit)
        if z > best[1]:
            best = (ref.name, z)
    return best


def rank_one_structures(refs: Iterable[TensorRef]) -> Iterator[RankOneStructure]:
    """Layers whose top singular direction towers over the rest: an inserted rank-one edit."""
    for ref, _ in neuron_tensors(refs):
        try:
            spectrum = tensor_spectrum(ref)
        except TensorDecodeError:
            continue
        if spectrum.gap >= SPECTRAL_GAP and spectrum.top_share >= SPECTRAL_SHARE and \
                spectrum.top_row_share < SPECTRAL_SINGLE_ROW:
            yield RankOneStructure(ref, spectrum)
