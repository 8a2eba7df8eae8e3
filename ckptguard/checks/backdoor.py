"""Backdoor checks: weight statistics, base diff and activation-probe results as findings.

Weight checks run only when weight statistics were asked for (``Config.weights``; the parsers
then hand over ``TensorRef``s); the base diff also needs ``Config.base``.  Probe facts come from
``ckptguard probe`` (``ckptguard.probes``), which evaluates the same rules over them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from ckptguard.engine.checks import CheckContext, Hit
from ckptguard.facts import TensorRef
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.model import Confidence, Severity
from ckptguard.weights.roles import role_of
from ckptguard.weights.thresholds import (
    DIFF_MIN_RELATIVE,
    DIFF_ROW_SHARE,
    DIFF_TOP_SHARE,
    DIFF_TOP_SHARE_STRONG,
    NEURON_Z,
    NEURON_Z_STRONG,
    SPECTRAL_GAP,
    SPECTRAL_GAP_STRONG,
    SPECTRAL_SHARE,
)


def _tensors(ctx: CheckContext) -> tuple[TensorRef, ...]:
    return ctx.tensors if ctx.options.get("weights") else ()


def _anomalies() -> Any:
    """The statistics module, imported only when there are tensors to judge: it needs numpy,
    which a scan without --weights (every pre-commit run) should not pay for."""
    from ckptguard.weights import anomalies

    return anomalies


def _shape(ref: TensorRef) -> str:
    return "x".join(str(d) for d in ref.shape) or "scalar"


def non_finite_weights(ctx: CheckContext) -> Iterator[Hit]:
    tensors = _tensors(ctx)
    if not tensors:
        return
    anomalies = _anomalies()
    for item in anomalies.non_finite(tensors):
        counts = item.counts
        yield Hit(
            message=(f"Tensor {item.ref.name!r} ({item.ref.dtype} {_shape(item.ref)}) holds "
                     f"{counts.total} non-finite value(s) ({counts.nan} NaN, {counts.posinf} "
                     f"+Inf, {counts.neginf} -Inf); the model's outputs are undefined — "
                     "re-export it from a known-good training run"),
            location=item.ref.location, subject=item.ref.name,
            evidence={"tensor": item.ref.name, "nan": counts.nan, "posinf": counts.posinf,
                      "neginf": counts.neginf, "elements": _count(item.ref),
                      "first_flat_index": counts.first_index})


def _count(ref: TensorRef) -> int:
    total = 1
    for dim in ref.shape:
        total *= dim
    return total


def unreadable_tensors(ctx: CheckContext) -> Iterator[Hit]:
    tensors = _tensors(ctx)
    if not tensors:
        return
    anomalies = _anomalies()
    for item in anomalies.unreadable(tensors):
        yield Hit(
            message=(f"Tensor {item.ref.name!r} was not examined by the weight statistics: "
                     f"{item.reason}; review it by other means or convert it to a supported "
                     "dtype"),
            location=item.ref.location, subject=item.ref.name,
            evidence={"tensor": item.ref.name, "dtype": item.ref.dtype,
                      "shape": _shape(item.ref), "reason": item.reason},
            severity=Severity.MEDIUM if item.size_mismatch else None)


def neuron_outliers(ctx: CheckContext) -> Iterator[Hit]:
    tensors = _tensors(ctx)
    if not tensors:
        return
    anomalies = _anomalies()
    for item in anomalies.neuron_outliers(tensors):
        signals = item.signals
        strong = len(signals) >= 2 and item.z >= NEURON_Z
        consumer = (f"; layer {item.consumer!r} also reads this unit with outlying weights "
                    f"(z={item.consumer_z:.1f})" if "consumer-column" in signals else "")
        yield Hit(
            message=(f"Neuron {item.row} of {item.role.value} layer {item.ref.name!r} has a weight "
                     f"norm {item.z:.1f} robust standard deviations above its layer's median "
                     f"(threshold {NEURON_Z:g}; next most extreme unit: {item.second_z:.1f})"
                     f"{consumer}. A single neuron with extreme weights is the signature of a "
                     "hand-crafted backdoor: compare with the original model or run "
                     "`ckptguard probe`"),
            location=item.ref.location, subject=f"{item.ref.name}#{item.row}",
            evidence={"tensor": item.ref.name, "shape": _shape(item.ref), "neuron": item.row,
                      "statistic": "robust z of row L2 norm (median/MAD)",
                      "z": f"{item.z:.2f}", "threshold": NEURON_Z,
                      "strong_threshold": NEURON_Z_STRONG,
                      "row_norm": f"{item.stats.row.value:.4g}" if item.stats.row else "?",
                      "median_row_norm": f"{item.stats.row.median:.4g}" if item.stats.row
                      else "?",
                      "next_unit_z": f"{item.second_z:.2f}",
                      "row_max_abs_z": f"{item.max_abs_z:.2f}",
                      "excess_kurtosis": f"{item.stats.excess_kurtosis:.1f}",
                      "consumer": item.consumer or "none",
                      "consumer_column_z": f"{item.consumer_z:.2f}",
                      "agreeing_signals": ", ".join(signals)},
            severity=Severity.HIGH if strong else None,
            confidence=Confidence.HIGH if strong else None)


def rank_one_edits(ctx: CheckContext) -> Iterator[Hit]:
    tensors = _tensors(ctx)
    if not tensors:
        return
    anomalies = _anomalies()
    for item in anomalies.rank_one_structures(tensors):
        spec = item.spectrum
        strong = spec.gap >= SPECTRAL_GAP_STRONG
        yield Hit(
            message=(f"Layer {item.ref.name!r} ({_shape(item.ref)}) is dominated by one "
                     f"direction: sigma1/sigma2 = {spec.gap:.1f} (threshold {SPECTRAL_GAP:g}), "
                     f"holding {spec.top_share:.0%} of the layer's energy. A rank-one update is "
                     "what model-editing attacks (ROME-style) insert: diff the layer against "
                     "the base model (`--base`) before use"),
            location=item.ref.location, subject=item.ref.name,
            evidence={"tensor": item.ref.name, "shape": _shape(item.ref),
                      "statistic": "sigma1/sigma2 of the mean-centred layer (randomized SVD)",
                      "gap": f"{spec.gap:.2f}", "threshold": SPECTRAL_GAP,
                      "strong_threshold": SPECTRAL_GAP_STRONG,
                      "top_share": f"{spec.top_share:.3f}", "share_threshold": SPECTRAL_SHARE,
                      "singular_values": ", ".join(f"{v:.4g}" for v in spec.singular_values[:4]),
                      "most_affected_row": spec.top_row,
                      "sampled": f"{spec.sampled_rows}x{spec.sampled_cols}"},
            confidence=Confidence.MEDIUM if strong else None)


def _base(ctx: CheckContext) -> str | None:
    base = ctx.options.get("base")
    return str(base) if base and ctx.tensors else None


def base_mismatch(ctx: CheckContext) -> Iterator[Hit]:
    base_path = _base(ctx)
    if base_path is None:
        return
    from ckptguard.weights.base import read_base
    from ckptguard.weights.diff import compare_tables, missing_from

    base = read_base(base_path, DEFAULT_LIMITS)
    where = ctx.artifact.location
    if not base.usable or base.problems:
        yield Hit(message=(f"The base checkpoint {base_path!r} could not be read in full "
                           f"({'; '.join(base.problems)[:300]}), so the diff is incomplete: "
                           "check the --base path and format"),
                  location=where, subject=f"base-unreadable:{base_path}",
                  evidence={"base": base_path, "problems": "; ".join(base.problems)},
                  severity=Severity.HIGH if not base.usable else Severity.MEDIUM)
        if not base.usable:
            return
    _, mismatches = compare_tables(ctx.tensors, base.tensors)
    shared = sum(1 for ref in ctx.tensors if ref.name in base.tensors)
    if shared * 2 >= len(base.tensors):  # this artifact is the checkpoint, not one shard of it
        mismatches += missing_from(ctx.tensors, base.tensors)
    for item in mismatches:
        yield Hit(message=(f"Tensor {item.name!r} does not line up with the base "
                           f"{base_path!r} ({item.kind}: {item.detail}); a fine-tune keeps the "
                           "base's tensors — confirm the claimed base is the real one"),
                  location=where.within(tensor=item.name), subject=f"{item.kind}:{item.name}",
                  evidence={"tensor": item.name, "kind": item.kind, "detail": item.detail,
                            "base": base_path})


def concentrated_changes(ctx: CheckContext) -> Iterator[Hit]:
    base_path = _base(ctx)
    if base_path is None:
        return
    from ckptguard.weights.base import read_base
    from ckptguard.weights.decode import is_float
    from ckptguard.weights.diff import compare_tables

    base = read_base(base_path, DEFAULT_LIMITS)
    if not base.usable:
        return
    pairs, _ = compare_tables(ctx.tensors, base.tensors)
    judged = [(ours, theirs) for ours, theirs in pairs
              if is_float(ours) and role_of(ours.name, ours.shape).has_neurons]
    yield from _delta_hits(judged, base_path)


def _delta_hits(pairs: Iterable[tuple[TensorRef, TensorRef]], base_path: str) -> Iterator[Hit]:
    from ckptguard.weights.diff import deltas

    for delta in deltas(list(pairs)):
        if delta.relative < DIFF_MIN_RELATIVE:
            continue
        low_rank = delta.top_share >= DIFF_TOP_SHARE
        few_rows = delta.top_rows_share >= DIFF_ROW_SHARE and delta.rows >= 20
        if not (low_rank or few_rows):
            continue
        strong = (low_rank and few_rows) or delta.top_share >= DIFF_TOP_SHARE_STRONG
        shape = []
        if low_rank:
            shape.append(f"{delta.top_share:.0%} of it lies in one direction "
                         f"(effective rank {delta.effective_rank:.1f})")
        if few_rows:
            shape.append(f"{delta.top_rows_share:.0%} of it sits in the top 1% of rows "
                         f"(row {delta.top_row} changed most)")
        yield Hit(
            message=(f"The change to {delta.ref.name!r} relative to the base {base_path!r} is "
                     f"concentrated: {' and '.join(shape)}, relative size "
                     f"{delta.relative:.3g}. An honest fine-tune spreads its change; a poisoned "
                     "fine-tune or a model edit concentrates it — review where this layer's "
                     "update came from"),
            location=delta.ref.location, subject=delta.ref.name,
            evidence={"tensor": delta.ref.name, "shape": _shape(delta.ref),
                      "relative_delta_norm": f"{delta.relative:.4g}",
                      "changed_fraction": f"{delta.changed_fraction:.4f}",
                      "rows_changed": f"{delta.rows_changed}/{delta.rows}",
                      "top_direction_share": f"{delta.top_share:.3f}",
                      "top_share_threshold": DIFF_TOP_SHARE,
                      "effective_rank": f"{delta.effective_rank:.2f}",
                      "top_rows_share": f"{delta.top_rows_share:.3f}",
                      "row_share_threshold": DIFF_ROW_SHARE, "most_changed_row": delta.top_row},
            severity=Severity.HIGH if strong else None,
            confidence=Confidence.HIGH if strong else None)


# --- activation probes (facts emitted by ckptguard.probes) ----------------------------------------


def _corroborated(ctx: CheckContext) -> Iterator[Hit]:
    for fact in ctx.facts:
        agree = bool(fact.get("corroborated", False))
        yield Hit(message=str(fact.get("message", "activation probe result")),
                  location=fact.location, subject=str(fact.get("subject", fact.kind)),
                  evidence={k: v for k, v in fact.attrs.items() if k not in ("message",
                                                                              "subject")},
                  severity=Severity.HIGH if agree else None,
                  confidence=Confidence.HIGH if agree else None)


def probe_margin_outlier(ctx: CheckContext) -> Iterator[Hit]:
    return _corroborated(ctx)


def probe_neuron_flip(ctx: CheckContext) -> Iterator[Hit]:
    return _corroborated(ctx)


def probe_trigger_outlier(ctx: CheckContext) -> Iterator[Hit]:
    return _corroborated(ctx)


CHECKS = {
    "BKD001": non_finite_weights,
    "BKD002": neuron_outliers,
    "BKD003": rank_one_edits,
    "BKD004": unreadable_tensors,
    "BKD005": concentrated_changes,
    "BKD006": base_mismatch,
    "BKD007": probe_margin_outlier,
    "BKD008": probe_neuron_flip,
    "BKD010": probe_trigger_outlier,
}
