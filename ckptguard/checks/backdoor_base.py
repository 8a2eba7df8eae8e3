"""Backdoor checks against a claimed base (``--base``): the table (BKD006), concentrated
per-tensor changes (BKD005) and model-level edit patterns (BKD012), all from one diff computed
once per artifact and shared through ``CheckContext.shared``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ckptguard.engine.checks import CheckContext, Hit
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.model import Confidence, Severity
from ckptguard.weights.thresholds import (
    BASE_UNIT_CHANGE,
    DIFF_MIN_RELATIVE,
    DIFF_ROW_SHARE,
    DIFF_TOP_SHARE,
    DIFF_TOP_SHARE_STRONG,
    DOMINANT_ENERGY_SHARE,
    EDIT_RANK,
    FULL_FINETUNE_SHARE,
    LOW_RANK_SHARE,
    MAX_TABLE_FINDINGS,
    NEURON_Z,
    PARENT_MAX_MEDIAN_RELATIVE,
    POOR_PAIRING_SHARE,
    RANK_ONE_MIN_SIDE,
)


def shared_memo(ctx: CheckContext, key: str, make: Callable[[], Any]) -> Any:
    """Work several backdoor rules need, done once per artifact (``CheckContext.shared``), with
    BLAS on one thread (small products: threads cost more than they save) and NumPy's
    floating-point warnings off (see ``quiet_float_errors``)."""
    full = f"backdoor.{key}"
    if full not in ctx.shared:
        from ckptguard.weights.spectrum import quiet_float_errors, single_threaded_blas

        with single_threaded_blas(), quiet_float_errors():
            ctx.shared[full] = make()
    return ctx.shared[full]


def _shape(ref: Any) -> str:
    return "x".join(str(d) for d in ref.shape) or "scalar"


def _base(ctx: CheckContext) -> str | None:
    base = ctx.options.get("base")
    return str(base) if base and ctx.tensors else None


def shared_layout(ctx: CheckContext) -> Any:
    from ckptguard.weights.layout import layout_for

    return shared_memo(ctx, "layout", lambda: layout_for(ctx.artifact,
                                                   [ref.name for ref in ctx.tensors]))


def _shared_base(ctx: CheckContext) -> Any:
    """The claimed base's tensor table (parsed once per artifact), or None."""
    base_path = _base(ctx)
    if base_path is None:
        return None

    def make() -> Any:
        from ckptguard.weights.base import read_base

        return read_base(base_path, DEFAULT_LIMITS)

    return shared_memo(ctx, "base", make)


def shared_profile(ctx: CheckContext) -> Any:
    """One pass over the linear/conv tensors (each read once): unit statistics, spectra and,
    with a usable base, each paired tensor's delta."""
    def make() -> Any:
        from ckptguard.weights.anomalies import profile
        from ckptguard.weights.pairing import pair_tables

        tensors = ctx.tensors if ctx.options.get("weights") else ()
        base = _shared_base(ctx)
        partners = None
        if base is not None and base.usable:
            pairs = pair_tables(tensors, base.tensors).pairs
            partners = {mine.name: theirs for mine, theirs in pairs}
        return profile(tensors, shared_layout(ctx), partners=partners,
                       workers=int(ctx.options.get("weight_threads", 1)))

    return shared_memo(ctx, "profile", make)


def shared_model_diff(ctx: CheckContext) -> Any:
    """The diff against ``--base`` (parsed and computed once per artifact), or None."""
    base = _shared_base(ctx)
    if base is None:
        return None

    def make() -> Any:
        from ckptguard.weights.model_diff import model_diff

        if not base.usable:
            return base
        known = shared_profile(ctx).deltas if ctx.options.get("weights") else None
        return model_diff(ctx.tensors, base, known)

    result = shared_memo(ctx, "diff", make)
    return result if hasattr(result, "pairing") else None


def present_in_base(item: Any, diff: Any, layout: Any) -> bool:
    """Whether the base already has this outlying unit, nearly unchanged."""
    from ckptguard.weights.stats import unit_change

    base_ref = next((theirs for ours, theirs in diff.pairing.pairs if ours is item.ref), None)
    if base_ref is None:
        return False
    change = unit_change(item.ref, base_ref, item.row, layout.transposed(item.ref.name,
                                                                         item.ref.shape))
    return change is not None and change.base_z >= NEURON_Z / 2 and \
        change.relative <= BASE_UNIT_CHANGE


def base_mismatch(ctx: CheckContext) -> Iterator[Hit]:
    base_path = _base(ctx)
    if base_path is None:
        return
    where = ctx.artifact.location
    shared_model_diff(ctx)
    found: Any = ctx.shared.get("backdoor.diff")
    base: Any = found.base if hasattr(found, "pairing") else found
    if base is None:
        return
    if not base.usable or base.problems:
        yield Hit(message=(f"The base checkpoint {base_path!r} could not be read in full "
                           f"({'; '.join(base.problems)[:300]}), so the diff is incomplete: "
                           "check the --base path and format"),
                  location=where, subject=f"base-unreadable:{base_path}",
                  evidence={"base": base_path, "problems": "; ".join(base.problems)},
                  severity=Severity.HIGH if not base.usable else Severity.MEDIUM)
        if not base.usable:
            return
    diff: Any = found
    pairing = diff.pairing
    judged_pairs = diff.judged_pairs + diff.unreadable
    if diff.judged and judged_pairs < POOR_PAIRING_SHARE * diff.judged:
        nothing = judged_pairs == 0
        yield Hit(
            message=(f"The diff against the base {base_path!r} "
                     + ("could not be computed: no" if nothing else f"covers only "
                        f"{judged_pairs} of {diff.judged}")
                     + " linear/convolution tensors could be paired with the base's (by name, "
                     "by name without wrapper prefixes such as 'bert.' or 'model.', or by shape). "
                     "Edits outside the paired tensors are invisible: check that --base is this "
                     "checkpoint's real parent"),
            location=where, subject=f"base-unpaired:{base_path}",
            evidence={"base": base_path, "tensors_here": pairing.ours,
                      "linear_conv_here": diff.judged, "linear_conv_paired": judged_pairs,
                      "paired_by_name": pairing.by_name, "paired_by_prefix": pairing.by_prefix,
                      "paired_by_shape": pairing.by_shape,
                      "unpaired_examples": ", ".join(pairing.unpaired_ours[:5]),
                      "base_unpaired_examples": ", ".join(pairing.unpaired_base[:5])},
            severity=Severity.HIGH if nothing else Severity.MEDIUM,
            confidence=Confidence.HIGH)
        return
    if diff.deltas and diff.median_relative >= PARENT_MAX_MEDIAN_RELATIVE:
        yield Hit(
            message=(f"The claimed base {base_path!r} is implausible as this checkpoint's "
                     f"parent: the median linear/convolution tensor differs from it by "
                     f"{diff.median_relative:.2f} of its norm (a fine-tune moves weights by a "
                     f"few percent; unrelated models differ by about 1.4; threshold "
                     f"{PARENT_MAX_MEDIAN_RELATIVE:g}). The diff says nothing about this model: "
                     "find its real base"),
            location=where, subject=f"base-implausible:{base_path}",
            evidence={"base": base_path, "median_relative_delta": f"{diff.median_relative:.4g}",
                      "threshold": PARENT_MAX_MEDIAN_RELATIVE,
                      "tensors_compared": diff.judged_pairs},
            severity=Severity.HIGH, confidence=Confidence.HIGH)
    from ckptguard.weights.diff import Mismatch

    mismatches = list(pairing.mismatches)
    if pairing.paired * 2 >= len(base.tensors):  # this artifact is the checkpoint, not a shard
        mismatches += [Mismatch(name, "missing", "present in the base checkpoint, absent here")
                       for name in pairing.unpaired_base]
    for item in mismatches[:MAX_TABLE_FINDINGS]:
        yield Hit(message=(f"Tensor {item.name!r} does not line up with the base "
                           f"{base_path!r} ({item.kind}: {item.detail}); a fine-tune keeps the "
                           "base's tensors — confirm the claimed base is the real one"),
                  location=where.within(tensor=item.name), subject=f"{item.kind}:{item.name}",
                  evidence={"tensor": item.name, "kind": item.kind, "detail": item.detail,
                            "base": base_path})
    if len(mismatches) > MAX_TABLE_FINDINGS:
        rest = mismatches[MAX_TABLE_FINDINGS:]
        yield Hit(message=(f"{len(rest)} more tensors do not line up with the base "
                           f"{base_path!r} (first: {rest[0].name!r}, {rest[0].kind})"),
                  location=where, subject=f"table-more:{base_path}",
                  evidence={"base": base_path, "count": len(rest),
                            "examples": ", ".join(m.name for m in rest[:5])})


def judgeable_diff(ctx: CheckContext) -> tuple[str, Any] | None:
    """The base's path and the model diff, when the diff can be judged: enough tensors paired,
    and the base plausible as the parent (otherwise BKD006 says so, and per-tensor or
    model-level verdicts on the diff would be noise)."""
    base_path = _base(ctx)
    if base_path is None:
        return None
    diff = shared_model_diff(ctx)
    if diff is None or diff.judged_pairs + diff.unreadable < POOR_PAIRING_SHARE * diff.judged:
        return None
    if diff.deltas and diff.median_relative >= PARENT_MAX_MEDIAN_RELATIVE:
        return None
    return base_path, diff


def concentrated_changes(ctx: CheckContext) -> Iterator[Hit]:
    judged = judgeable_diff(ctx)
    if judged is None:
        return
    base_path, diff = judged
    yield from _delta_hits([d for d in diff.deltas if _worth_reporting(d, diff)], base_path)


def _worth_reporting(delta: Any, diff: Any) -> bool:
    """In a full fine-tune (nearly every tensor changed) short or SGD runs concentrate many
    layers' changes in a few directions; there a tensor is singled out only when its change is
    exactly low rank (an edit or adapter on top) or dominates the model's change energy."""
    from ckptguard.weights.model_diff import low_rank

    if diff.changed_share < FULL_FINETUNE_SHARE:
        return True
    return low_rank(delta) is not None or diff.energy_share(delta) >= DOMINANT_ENERGY_SHARE


def edit_patterns(ctx: CheckContext) -> Iterator[Hit]:
    judged = judgeable_diff(ctx)
    if judged is None:
        return
    base_path, diff = judged
    from ckptguard.weights.model_diff import edit_pattern

    pattern = edit_pattern(diff)
    if pattern is None:
        return
    names = [d.ref.name for d in pattern.tensors]
    rank = f"rank {pattern.rank}" if pattern.rank is not None else \
        f"rank <= {EDIT_RANK} in {LOW_RANK_SHARE:.0%} of its energy"
    if pattern.kind == "localized":
        what = (f"only {pattern.changed} of {pattern.paired} linear/convolution tensors changed "
                f"(the other {pattern.paired - pattern.changed} are bit-identical to the base) "
                f"and each change is low rank ({rank}): the signature of a model edit (ROME, "
                "MEMIT) or of tampering with a few tensors, not of training")
    else:
        what = (f"{len(pattern.tensors)} of the {pattern.changed} changed linear/convolution "
                f"tensors changed by an exactly low-rank matrix ({rank}): a merged low-rank "
                "adapter (LoRA) or a multi-layer edit; training on data does not do that")
    yield Hit(
        message=(f"Relative to the base {base_path!r}, {what}. Changed: "
                 f"{', '.join(names[:4])}{' ...' if len(names) > 4 else ''}. Ask the publisher "
                 "what changed these tensors; an undeclared edit or adapter is a reason to use "
                 "the base instead"),
        location=ctx.artifact.location, subject=f"edit-pattern:{pattern.kind}",
        evidence={"base": base_path, "pattern": pattern.kind,
                  "tensors_changed": pattern.changed, "tensors_paired": pattern.paired,
                  "tensors_identical": diff.identical,
                  "rank": pattern.rank if pattern.rank is not None else "?",
                  "energy_share_top3": f"{diff.energy_share_of_top(3):.3f}",
                  "tensors": ", ".join(names[:10]),
                  "top8_energy_shares": ", ".join(
                      f"{d.spectrum.top_k_share(EDIT_RANK):.4f}" for d in pattern.tensors[:10]),
                  "relative_deltas": ", ".join(f"{d.relative:.3g}" for d in pattern.tensors[:10])})


def _delta_hits(deltas: Iterable[Any], base_path: str) -> Iterator[Hit]:
    for delta in deltas:
        if delta.relative < DIFF_MIN_RELATIVE:
            continue
        # One direction means something only where the matrix could hold several.
        wide = delta.spectrum.side >= RANK_ONE_MIN_SIDE
        low_rank = wide and delta.top_share >= DIFF_TOP_SHARE
        few_rows = delta.top_rows_share >= DIFF_ROW_SHARE and delta.rows >= 20
        if not (low_rank or few_rows):
            continue
        strong = low_rank and (few_rows or delta.top_share >= DIFF_TOP_SHARE_STRONG)
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


CHECKS = {
    "BKD005": concentrated_changes,
    "BKD006": base_mismatch,
    "BKD012": edit_patterns,
}
