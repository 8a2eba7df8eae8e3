"""Backdoor checks: weight statistics, base diff and activation-probe results as findings.

Weight checks run only when weight statistics were asked for (``Config.weights``; the parsers
then hand over ``TensorRef``s); the base diff also needs ``Config.base``.  Probe facts come from
``ckptguard probe`` (``ckptguard.probes``), which evaluates the same rules over them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ckptguard.checks.backdoor_base import (
    judgeable_diff,
    present_in_base,
    shared_layout,
    shared_memo,
    shared_model_diff,
    shared_profile,
)
from ckptguard.engine.checks import CheckContext, Hit
from ckptguard.facts import TensorRef
from ckptguard.model import Confidence, Severity
from ckptguard.weights.thresholds import (
    NEURON_Z,
    NEURON_Z_STRONG,
    SIBLING_GAP_RATIO,
    SIBLING_SHARE_RATIO,
    SPECTRAL_GAP,
    SPECTRAL_GAP_STRONG,
    SPECTRAL_SHARE,
)


def _z(value: float) -> str:
    """A robust z for a message: one decimal, or three digits and an exponent when a weight far
    past any trained value makes it astronomical (1e20 weights give z ~ 1e22)."""
    return f"{value:.1f}" if abs(value) < 1e6 else f"{value:.2e}"


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
    known = {ref.name: stats.non_finite for ref, _, stats in _judged(ctx)}
    known.update(shared_profile(ctx).embedding_non_finite)
    for item in anomalies.non_finite(tensors, known):
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


def _layout(ctx: CheckContext) -> Any:
    return shared_layout(ctx)


def _judged(ctx: CheckContext) -> Any:
    """Per-tensor statistics of the linear/conv tensors: one streaming pass (which also takes
    each tensor's spectrum and base delta), shared by BKD001 (non-finite counts), BKD002 (unit
    norms), BKD003 (spectra) and the base diff."""
    return shared_profile(ctx).judged


def neuron_outliers(ctx: CheckContext) -> Iterator[Hit]:
    tensors = _tensors(ctx)
    if not tensors:
        return
    anomalies = _anomalies()
    layout = _layout(ctx)
    diff = shared_model_diff(ctx)
    judged = _judged(ctx)
    outliers = shared_memo(ctx, "neurons", lambda: list(anomalies.neuron_outliers(
        tensors, layout, judged=judged, columns=shared_profile(ctx).embedding_columns)))
    for item in outliers:
        if diff is not None and present_in_base(item, diff, layout):
            continue  # the base has the same unit: not this checkpoint's doing
        signals = item.signals
        strong = len(signals) >= 2 and item.z >= NEURON_Z
        consumer = (f"; layer {item.consumer!r} also reads this unit with outlying weights "
                    f"(z={_z(item.consumer_z)})" if "consumer-column" in signals else "")
        if "feeding-unit" in signals:
            consumer = (f"; it is fed by unit {item.feeder_unit} of {item.feeder!r}, itself an "
                        f"outlier there (z={_z(item.feeder_z)})")
        yield Hit(
            message=(f"Neuron {item.row} of {item.role.value} layer {item.ref.name!r} has a weight "
                     f"norm {_z(item.z)} robust standard deviations above its layer's median "
                     f"(threshold {NEURON_Z:g}; next most extreme unit: {_z(item.second_z)})"
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
                      "residual_writer": item.residual,
                      "feeder": f"{item.feeder}#{item.feeder_unit}" if item.feeder else "none",
                      "feeder_z": f"{item.feeder_z:.2f}",
                      "agreeing_signals": ", ".join(signals)},
            severity=Severity.HIGH if strong else None,
            confidence=Confidence.HIGH if strong else None)


def rank_one_edits(ctx: CheckContext) -> Iterator[Hit]:
    tensors = _tensors(ctx)
    if not tensors:
        return
    anomalies = _anomalies()
    found = shared_memo(ctx, "rank-one", lambda: list(anomalies.rank_one_structures(
        tensors, shared_profile(ctx).spectra, _judged_without_base(ctx))))
    for item in found:
        spec = item.spectrum
        if item.siblings:
            measure = (f"sigma1/sigma2 = {spec.gap:.1f} and {spec.top_share:.0%} of the energy in "
                       f"the top direction, {item.gap_ratio:.1f}x and {item.share_ratio:.1f}x the "
                       f"median of its {item.siblings} sibling layers (thresholds "
                       f"{SIBLING_GAP_RATIO:g}x and {SIBLING_SHARE_RATIO:g}x)")
        else:
            measure = (f"sigma1/sigma2 = {spec.gap:.1f} (threshold {SPECTRAL_GAP:g}), holding "
                       f"{spec.top_share:.0%} of the layer's energy")
        evidence: dict[str, object] = {
            "tensor": item.ref.name, "shape": _shape(item.ref),
            "statistic": "sigma1/sigma2 of the mean-centred layer (randomized SVD)",
            "gap": f"{spec.gap:.2f}", "top_share": f"{spec.top_share:.3f}",
            "singular_values": ", ".join(f"{v:.4g}" for v in spec.singular_values[:4]),
            "most_affected_row": spec.top_row,
            "sampled": f"{spec.sampled_rows}x{spec.sampled_cols}"}
        if item.siblings:
            evidence.update({"compared_with": f"{item.siblings} sibling layers of the same role",
                             "sibling_median_gap": f"{item.sibling_gap:.2f}",
                             "sibling_median_share": f"{item.sibling_share:.3f}",
                             "gap_ratio": f"{item.gap_ratio:.2f}",
                             "share_ratio": f"{item.share_ratio:.2f}",
                             "gap_ratio_threshold": SIBLING_GAP_RATIO,
                             "share_ratio_threshold": SIBLING_SHARE_RATIO})
        else:
            evidence.update({"threshold": SPECTRAL_GAP, "strong_threshold": SPECTRAL_GAP_STRONG,
                             "share_threshold": SPECTRAL_SHARE})
        yield Hit(
            message=(f"Layer {item.ref.name!r} ({_shape(item.ref)}) is dominated by one "
                     f"direction: {measure}. A rank-one update is what model-editing attacks "
                     "(ROME-style) insert: diff the layer against the base model (`--base`) "
                     "before use"),
            location=item.ref.location, subject=item.ref.name, evidence=evidence,
            severity=Severity.HIGH if item.siblings and item.strong else None,
            confidence=Confidence.MEDIUM if item.strong else None)


def _judged_without_base(ctx: CheckContext) -> set[str] | None:
    """With a base the diff can be judged against, the tensors BKD003 still judges: those
    without a partner there.  A paired tensor's edits show in its delta (BKD005, BKD012) at any
    size, and a structure it shares with the base is the base's.  None: judge every tensor."""
    if judgeable_diff(ctx) is None:
        return None
    paired = shared_profile(ctx).deltas
    return {ref.name for ref in _tensors(ctx) if ref.name not in paired}


# --- activation probes (facts emitted by ckptguard.probes) ----------------------------------------


def _corroborated(ctx: CheckContext) -> Iterator[Hit]:
    """Probe results: high when another probe names the same class, or when the result is
    decisive on its own (a token trigger absent from clean data that no other class matches)."""
    for fact in ctx.facts:
        agree = bool(fact.get("corroborated", False)) or bool(fact.get("decisive", False))
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
    "BKD007": probe_margin_outlier,
    "BKD008": probe_neuron_flip,
    "BKD010": probe_trigger_outlier,
}
