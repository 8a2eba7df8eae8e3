"""Weight anomalies over a whole checkpoint: which tensors are judged, and what stands out.

Pure functions from ``TensorRef``s to frozen results; the checks in ``ckptguard.checks.backdoor``
turn them into findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import TensorDecodeError, is_float, raw_array, to_float32
from ckptguard.weights.diff import TensorDelta, delta_pass
from ckptguard.weights.layout import Layout
from ckptguard.weights.outlier_dims import stream_votes
from ckptguard.weights.roles import Role, residual_writer, role_of
from ckptguard.weights.spectrum import Spectrum, quiet_float_errors, tensor_spectrum
from ckptguard.weights.stats import (
    NonFinite,
    TensorStats,
    column_norms,
    count_non_finite,
    light_stats,
    robust_z_at,
    tensor_stats,
    unit_norm_stats,
)
from ckptguard.weights.thresholds import (
    FEEDER_Z,
    KURTOSIS_STRONG,
    NEURON_Z,
    NEURON_Z_STRONG,
    RANK_ONE_MIN_SIDE,
    SIBLING_GAP_FLOOR,
    SIBLING_GAP_RATIO,
    SIBLING_GAP_RATIO_STRONG,
    SIBLING_MIN,
    SIBLING_SHARE_RATIO,
    SIBLING_SHARE_RATIO_STRONG,
    SPECTRAL_GAP,
    SPECTRAL_GAP_STRONG,
    SPECTRAL_SHARE,
    SPECTRAL_SINGLE_ROW,
    THREADED_MIN_ELEMENTS,
)

_BLOCK = re.compile(r"^(.*?\.\d+\.)")
_INDEX = re.compile(r"(?<=\.)\d+(?=\.)")


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
    residual: bool = False  # the layer writes a transformer's residual stream
    feeder: str | None = None  # residual writers: the same block's layer producing the input
    feeder_unit: int = 0  # that dominates this row ...
    feeder_z: float = 0.0  # ... and how far that unit stands out in its own layer

    @property
    def signals(self) -> tuple[str, ...]:
        """Independent signals that agree (the first is always the row itself).  A residual
        writer's unit is a stream dimension that every later layer reads, and trained
        transformers give such layers heavy tails: neither counts as a second signal there."""
        found = ["row-norm"]
        if self.residual:
            if self.feeder is not None and self.feeder_z >= FEEDER_Z:
                found.append("feeding-unit")
            return tuple(found)
        if self.consumer is not None and self.consumer_z >= NEURON_Z:
            found.append("consumer-column")
        if self.stats.excess_kurtosis >= KURTOSIS_STRONG and self.z >= NEURON_Z_STRONG:
            found.append("kurtosis")
        return tuple(found)


@dataclass(frozen=True)
class ExplainedOutlier:
    """A residual writer's row outlier at one of the stream's outlier dimensions."""

    ref: TensorRef
    row: int
    z: float
    company: tuple[str, ...]  # other tensors singling out the same dimension


@dataclass(frozen=True)
class RankOneStructure:
    ref: TensorRef
    spectrum: Spectrum
    siblings: int = 0  # sibling layers it was compared with (0: absolute thresholds)
    sibling_gap: float = 0.0  # their median sigma1/sigma2 ...
    sibling_share: float = 0.0  # ... and median top-direction energy share

    @property
    def share_ratio(self) -> float:
        return self.spectrum.top_share / self.sibling_share if self.sibling_share > 0 else \
            float("inf")

    @property
    def gap_ratio(self) -> float:
        return self.spectrum.gap / self.sibling_gap if self.sibling_gap > 0 else float("inf")

    @property
    def strong(self) -> bool:
        """Far out from its siblings on both statistics, or (without siblings) a towering gap."""
        if self.siblings:
            return self.share_ratio >= SIBLING_SHARE_RATIO_STRONG and \
                self.gap_ratio >= SIBLING_GAP_RATIO_STRONG
        return self.spectrum.gap >= SPECTRAL_GAP_STRONG


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


def non_finite(refs: Iterable[TensorRef],
               known: dict[str, NonFinite] | None = None) -> Iterator[NonFiniteTensor]:
    """Tensors holding NaN or Inf; ``known`` counts (from the statistics pass) are reused."""
    for ref in floats(refs):
        try:
            counts = known[ref.name] if known and ref.name in known else count_non_finite(ref)
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


@dataclass(frozen=True)
class Profile:
    """What one pass over every linear/conv tensor gives: each tensor is read once, and its
    unit statistics with either its delta against the base (when it has a partner there) or its
    own sampled spectrum come from that read."""

    judged: list[tuple[TensorRef, Role, TensorStats]]
    spectra: dict[str, Spectrum]  # tensors without a base partner
    deltas: dict[str, TensorDelta]  # tensors with one
    # 2-D embeddings, read once for both uses: their NaN/Inf counts (BKD001) and the L2 norm of
    # each column (the stream dimensions, for the outlier-dimension votes of BKD002).
    embedding_columns: dict[str, np.ndarray] = field(default_factory=dict)
    embedding_non_finite: dict[str, NonFinite] = field(default_factory=dict)


def profile(refs: Iterable[TensorRef], layout: Layout | None = None, *, spectra: bool = True,
            partners: Mapping[str, TensorRef] | None = None, workers: int = 1,
            threaded_min_elements: int = THREADED_MIN_ELEMENTS) -> Profile:
    """Statistics of every linear/conv tensor (output units read from the layout), and its
    delta against ``partners[name]`` (the paired base tensor) or, without one and when
    ``spectra``, its own spectrum: a paired tensor's edits show in its delta far more clearly,
    and what it shares with the base is the base's (``rank_one_structures`` computes the
    spectra it still needs).  ``workers`` > 1 spreads the tensors over that many threads (the
    numerical work releases the GIL) for the tensors of at least ``threaded_min_elements``; the
    result is the same for any number."""
    layout = layout or Layout()
    refs = list(refs)
    linear = neuron_tensors(refs)
    embeddings = [ref for ref in floats(refs)
                  if len(ref.shape) == 2 and role_of(ref.name, ref.shape) is Role.EMBEDDING]

    def measure_linear(item: tuple[TensorRef, Role]) -> _Measured | None:
        ref = item[0]
        with quiet_float_errors():  # per thread: the pool's threads start without it
            return _measure(ref, layout, partners.get(ref.name) if partners else None, spectra)

    def measure_embedding(ref: TensorRef) -> tuple[np.ndarray, NonFinite] | None:
        try:
            with quiet_float_errors():
                return column_norms(ref)
        except TensorDecodeError:
            return None

    if workers > 1 and len(linear) + len(embeddings) > 1:
        pool = ThreadPoolExecutor(max_workers=workers)
        try:
            # Embeddings first: they are usually the largest tensors, and a thread left alone
            # with the largest one at the end would keep the others waiting.  Small tensors are
            # measured here meanwhile (see THREADED_MIN_ELEMENTS).
            embedding_futures = _largest_first(pool, measure_embedding, embeddings,
                                               [_size(ref) for ref in embeddings],
                                               threaded_min_elements)
            linear_futures = _largest_first(pool, measure_linear, linear,
                                            [_size(ref) for ref, _ in linear],
                                            threaded_min_elements)
            # The small ones of both kinds first, while the pool works, then the pool's.
            small_embeddings = _measured_here(embedding_futures, measure_embedding, embeddings)
            small_linear = _measured_here(linear_futures, measure_linear, linear)
            embedded = _in_order(embedding_futures, small_embeddings)
            measured = _in_order(linear_futures, small_linear)
        finally:
            # An error or Ctrl-C stops the pass: the tensors not yet started are dropped, not
            # measured while the user waits.
            pool.shutdown(wait=True, cancel_futures=True)
    else:
        embedded = [measure_embedding(ref) for ref in embeddings]
        measured = [measure_linear(item) for item in linear]
    judged: list[tuple[TensorRef, Role, TensorStats]] = []
    found: dict[str, Spectrum] = {}
    deltas: dict[str, TensorDelta] = {}
    for (ref, role), result in zip(linear, measured, strict=True):
        if result is None:
            continue  # undecodable: BKD004 reports it
        stats, spectrum, delta = result
        judged.append((ref, role, stats))
        if spectrum is not None:
            found[ref.name] = spectrum
        if delta is not None:
            deltas[ref.name] = delta
    columns: dict[str, np.ndarray] = {}
    counts: dict[str, NonFinite] = {}
    for ref, pair in zip(embeddings, embedded, strict=True):
        if pair is not None:
            columns[ref.name], counts[ref.name] = pair
    return Profile(judged, found, deltas, columns, counts)


_Measured = tuple[TensorStats, "Spectrum | None", "TensorDelta | None"]
_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def _size(ref: TensorRef) -> int:
    return int(np.prod(ref.shape)) if ref.shape else 1


def _largest_first(pool: Executor, measure: Callable[[_Item], _Result], items: list[_Item],
                   sizes: list[int], min_size: int) -> list[Future[_Result] | None]:
    """``measure`` of every item of at least ``min_size`` submitted to ``pool``, the largest
    first; the futures in the order of ``items`` (None for the small ones, which the caller
    measures itself)."""
    futures: dict[int, Future[_Result]] = {}
    for index in sorted(range(len(items)), key=lambda i: -sizes[i]):
        if sizes[index] >= min_size:
            futures[index] = pool.submit(measure, items[index])
    return [futures.get(index) for index in range(len(items))]


def _measured_here(futures: list[Future[_Result] | None], measure: Callable[[_Item], _Result],
                   items: list[_Item]) -> dict[int, _Result]:
    """The items the pool did not take (no future), measured in this thread, by index."""
    return {index: measure(item) for index, (item, future) in
            enumerate(zip(items, futures, strict=True)) if future is None}


def _in_order(futures: list[Future[_Result] | None],
              here: dict[int, _Result]) -> list[_Result]:
    """Every item's result in the items' order, waiting for the pool's."""
    return [here[index] if future is None else future.result()
            for index, future in enumerate(futures)]


def _measure(ref: TensorRef, layout: Layout, partner: TensorRef | None,
             spectra: bool) -> _Measured | None:
    """One linear/conv tensor, read once: its light statistics with its delta against
    ``partner`` or (without one, when ``spectra``) its own spectrum; None when undecodable."""
    try:
        array = raw_array(ref)
        transposed = layout.transposed(ref.name, ref.shape)
        stats, delta = None, None
        if partner is not None and is_float(partner):
            try:
                delta, rows_sq, cols_sq = delta_pass(ref, partner, array=array,
                                                     transposed=transposed)
                stats = light_stats(ref, rows_sq, cols_sq, array)
            except TensorDecodeError:
                pass  # counted as unreadable by model_diff
        if stats is None:
            stats = unit_norm_stats(ref, array=array, transposed=transposed)
        spectrum = tensor_spectrum(ref, array, finite=not stats.non_finite.total) \
            if spectra and delta is None else None
        return stats, spectrum, delta
    except TensorDecodeError:
        return None


def judged_stats(refs: Iterable[TensorRef],
                 layout: Layout | None = None) -> list[tuple[TensorRef, Role, TensorStats]]:
    """Statistics of every linear/conv tensor, with output units read from the layout."""
    return profile(refs, layout, spectra=False).judged


def _complete(judged: list[tuple[TensorRef, Role, TensorStats]], index: int,
              layout: Layout) -> TensorStats:
    """The full statistics of ``judged[index]`` (computed once, stored back in the list)."""
    ref, role, stats = judged[index]
    if not stats.complete:
        stats = tensor_stats(ref, transposed=layout.transposed(ref.name, ref.shape))
        judged[index] = (ref, role, stats)
    return stats


def neuron_outliers(refs: Iterable[TensorRef], layout: Layout | None = None,
                    explained: list[ExplainedOutlier] | None = None,
                    judged: list[tuple[TensorRef, Role, TensorStats]] | None = None,
                    columns: Mapping[str, np.ndarray] | None = None,
                    ) -> Iterator[NeuronOutlier]:
    """Units of linear/conv layers whose weight norm is a robust outlier among their layer's.
    A residual writer's outlier at one of the stream's outlier dimensions is not reported (it is
    appended to ``explained`` when given).  ``columns``: embeddings' column norms already read
    (``Profile.embedding_columns``)."""
    refs = list(refs)
    layout = layout or Layout()
    if judged is None:
        judged = judged_stats(refs, layout)
    flagged = [i for i, (_, _, stats) in enumerate(judged)
               if stats.row is not None and stats.row.z >= NEURON_Z]
    candidates = [(judged[i][0], judged[i][1], _complete(judged, i, layout)) for i in flagged]
    if any(not residual_writer(ref.name) for ref, _, _ in candidates):
        widths = {stats.unit_norms.size for ref, _, stats in candidates
                  if stats.unit_norms is not None}
        for i, (ref, _, _) in enumerate(judged):  # possible consumers need their input norms
            if len(ref.shape) >= 2 and ref.shape[1] in widths:
                _complete(judged, i, layout)
    widths = {stats.unit_norms.size for ref, _, stats in candidates
              if residual_writer(ref.name) and stats.unit_norms is not None}
    votes = stream_votes(refs, {ref.name: stats for ref, _, stats in judged}, widths,
                         columns) if widths else None
    for ref, role, stats in candidates:
        row = stats.row
        assert row is not None
        residual = residual_writer(ref.name)
        if residual and votes is not None and stats.unit_norms is not None:
            company = votes.expected(stats.unit_norms.size, row.index, ref.name)
            if company:
                if explained is not None:
                    explained.append(ExplainedOutlier(ref, row.index, row.z, company))
                continue
        consumer, consumer_z = _best_consumer(ref, row.index, judged)
        max_abs_z = stats.row_max_abs.z if stats.row_max_abs is not None and \
            stats.row_max_abs.index == row.index else 0.0
        feeder: tuple[str | None, int, float] = (None, 0, 0.0)
        if residual:
            feeder = _feeder(ref, stats, row.index, judged)
        yield NeuronOutlier(ref, role, stats, row.index, row.z, row.second_z, max_abs_z,
                            consumer, consumer_z, residual, *feeder)


def _block(name: str) -> str:
    """The name up to its first layer index (``encoder.layer.2.``), or '' when it has none."""
    found = _BLOCK.match(name)
    return found.group(1) if found else ""


def _feeder(writer: TensorRef, stats: TensorStats, unit: int,
            judged: list[tuple[TensorRef, Role, TensorStats]]) -> tuple[str | None, int, float]:
    """For a residual writer's outlying unit: the input that dominates it, and how far the unit
    producing that input (in a layer of the same block) stands out in its own layer.  A planted
    MLP neuron writes the stream through exactly such a pair."""
    block = _block(writer.name)
    if not block:
        return None, 0, 0.0
    try:
        array = raw_array(writer)
        values = to_float32(np.ascontiguousarray(array[:, unit] if stats.transposed
                                                 else array[unit]), writer.dtype)
    except (TensorDecodeError, IndexError):
        return None, 0, 0.0
    magnitudes = np.nan_to_num(np.abs(values.reshape(-1).astype(np.float64)))
    inputs = stats.input_norms.size if stats.input_norms is not None else 0
    if magnitudes.size == 0 or inputs == 0:
        return None, 0, 0.0
    per_input = magnitudes.reshape(inputs, -1).max(axis=1) if magnitudes.size % inputs == 0 \
        else magnitudes
    source = int(np.argmax(per_input))
    best: tuple[str | None, int, float] = (None, source, 0.0)
    for ref, _, other in judged:
        if ref is writer or other.unit_norms is None or other.unit_norms.size != inputs or \
                _block(ref.name) != block:
            continue
        z = robust_z_at(other.unit_norms, source)
        if z > best[2]:
            best = (ref.name, source, z)
    return best


def _best_consumer(producer: TensorRef, unit: int,
                   judged: list[tuple[TensorRef, Role, TensorStats]]) -> tuple[str | None, float]:
    """The layer (reading as many inputs as the producer has outputs) where input ``unit`` is
    most extreme."""
    best: tuple[str | None, float] = (None, 0.0)
    width = next((stats.unit_norms.size for ref, _, stats in judged
                  if ref is producer and stats.unit_norms is not None), producer.shape[0])
    for ref, _, stats in judged:
        if ref is producer or stats.input_norms is None or stats.input_norms.size != width:
            continue
        z = robust_z_at(stats.input_norms, unit)
        if z > best[1]:
            best = (ref.name, z)
    return best


def sibling_key(name: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...]] | None:
    """The role of a tensor repeated across layers: its name with every index replaced
    (``encoder.layer.#.output.dense.weight``) and its shape; None for a name without an index."""
    pattern = _INDEX.sub("#", name)
    return (pattern, tuple(shape)) if pattern != name else None


def rank_one_structures(refs: Iterable[TensorRef],
                        known: Mapping[str, Spectrum] | None = None,
                        judge: Container[str] | None = None,
                        ) -> Iterator[RankOneStructure]:
    """Layers whose top singular direction towers over the rest: an inserted rank-one edit.
    A layer with siblings (the same role in other layers) is judged against them; one without,
    against the absolute thresholds.  ``known``: spectra from ``profile``; ``judge``: the names
    to judge (default: every linear/conv tensor); spectra are computed for those and their
    siblings only."""
    tensors = [ref for ref, _ in neuron_tensors(refs)]
    judged_names = {ref.name for ref in tensors if judge is None or ref.name in judge}
    wanted_keys = {sibling_key(ref.name, ref.shape) for ref in tensors
                   if ref.name in judged_names} - {None}
    spectra: list[tuple[TensorRef, Spectrum]] = []
    for ref in tensors:
        if ref.name not in judged_names and sibling_key(ref.name, ref.shape) not in wanted_keys:
            continue  # neither judged nor a sibling of a judged tensor
        if known is not None and ref.name in known:
            spectra.append((ref, known[ref.name]))
            continue
        try:
            spectra.append((ref, tensor_spectrum(ref)))
        except TensorDecodeError:
            continue
    groups: dict[tuple[str, tuple[int, ...]], list[Spectrum]] = {}
    for ref, spectrum in spectra:
        key = sibling_key(ref.name, ref.shape)
        if key is not None:
            groups.setdefault(key, []).append(spectrum)
    for ref, spectrum in spectra:
        if ref.name not in judged_names:
            continue  # a sibling, measured only to compare with
        if spectrum.top_row_share >= SPECTRAL_SINGLE_ROW:
            continue  # one outlying neuron: BKD002's case
        if spectrum.side < RANK_ONE_MIN_SIDE:
            continue  # (512, 1): rank one by its shape, not by an edit
        key = sibling_key(ref.name, ref.shape)
        others = [s for s in groups.get(key, []) if s is not spectrum] if key else []
        if len(others) >= SIBLING_MIN:
            found = RankOneStructure(ref, spectrum, len(others),
                                     float(np.median([s.gap for s in others])),
                                     float(np.median([s.top_share for s in others])))
            if spectrum.gap >= SIBLING_GAP_FLOOR and found.gap_ratio >= SIBLING_GAP_RATIO and \
                    found.share_ratio >= SIBLING_SHARE_RATIO:
                yield found
        elif spectrum.gap >= SPECTRAL_GAP and spectrum.top_share >= SPECTRAL_SHARE:
            yield RankOneStructure(ref, spectrum)
