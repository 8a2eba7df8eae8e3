"""Run both probes under one time budget and turn their results into facts for the rules
(BKD007 margin outlier, BKD008 single-neuron flip, BKD009 incomplete probe)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptguard.facts import ParseOutput
from ckptguard.model import Location
from ckptguard.probes.margin import MarginResult, optimise_margins
from ckptguard.probes.network import ProbeNetwork
from ckptguard.probes.stimulate import StimulationResult, stimulate
from ckptguard.probes.thresholds import (
    FEW_CLASS_RATIO,
    FLIP_EASE,
    FLIP_RATE,
    MIN_CLASSES,
    STIMULUS_INPUTS,
    TOKEN_TRIGGER_RIVAL_MAX,
    TOKEN_TRIGGER_SUCCESS,
)
from ckptguard.probes.trigger import TriggerResult, reverse_engineer

if TYPE_CHECKING:
    from collections.abc import Callable

    import torch

    from ckptguard.probes.text_trigger import TokenTriggerResult


@dataclass(frozen=True)
class ProbeReport:
    margin: MarginResult | None
    stimulation: StimulationResult | None
    device: str
    seconds: float
    problems: tuple[str, ...] = ()
    # only with clean data (--data): a mask and pattern, or tokens for a text classifier
    trigger: TriggerResult | TokenTriggerResult | None = None
    notes: tuple[str, ...] = ()  # how the model was adapted or judged (reported, not failing)


def run_probes(network: ProbeNetwork, *, seed: int, time_budget: float, device: str,
               data: torch.Tensor | None = None,
               token_search: Callable[[float], TokenTriggerResult] | None = None) -> ProbeReport:
    """MM-BD margins, then single-neuron stimulation on typical inputs (``data`` when given,
    uniform inputs over the domain otherwise), both bounded by ``time_budget`` seconds.  With
    data, trigger reverse-engineering: ``token_search(deadline)`` for a text classifier (token
    ids), a continuous mask and pattern otherwise."""

    started = time.monotonic()
    problems: list[str] = []
    # A text classifier's token trigger search is its strongest probe: it gets half the budget.
    shares = (0.25, 0.5) if token_search is not None and data is not None else (0.6, 0.85)
    margin, prototypes = optimise_margins(network, seed, started + time_budget * shares[0])
    notes = list(network.notes)
    if not margin.enough_classes:
        notes.append(f"margin probe judged target-vs-rest over {len(margin.margins)} classes "
                     f"(best margin over the runner-up's, threshold {FEW_CLASS_RATIO:g}): a weak "
                     f"test; the outlier score over classes needs at least {MIN_CLASSES}")
    if not margin.complete:
        problems.append(f"margin optimisation stopped after {margin.steps} steps "
                        "(time budget)")
    inputs = data.to(network.device)[:STIMULUS_INPUTS] if data is not None else \
        typical_inputs(network, prototypes, seed)
    share = shares[1] if data is not None else 1.0
    stimulation = stimulate(network, inputs, started + time_budget * share)
    if not stimulation.complete:
        problems.append(f"single-neuron stimulation covered {len(stimulation.layers)} of "
                        f"{len(network.hidden)} hidden layers (time budget)")
    trigger: TriggerResult | TokenTriggerResult | None = None
    if data is not None and token_search is not None:
        trigger = token_search(started + time_budget)
        if not trigger.complete:
            problems.append("token trigger search stopped early (time budget)")
    elif data is not None:
        continuous = reverse_engineer(network, data, seed, started + time_budget)
        trigger = continuous
        if len(continuous.mask_share) < MIN_CLASSES:
            problems.append("trigger reverse-engineering not judged: "
                            f"{len(continuous.mask_share)} "
                            f"classes (its outlier score needs at least {MIN_CLASSES})")
        if not continuous.complete:
            problems.append("trigger reverse-engineering stopped early (time budget)")
    return ProbeReport(margin, stimulation, device, time.monotonic() - started, tuple(problems),
                       trigger, tuple(notes))


def typical_inputs(network: ProbeNetwork, prototypes: torch.Tensor, seed: int) -> torch.Tensor:
    """Without data: the margin probe's class prototypes (confidently classified inputs of every
    class; uniform noise sits near decision boundaries, where any unit flips it)."""
    import torch

    if prototypes.shape[0] >= 2:
        return prototypes[:STIMULUS_INPUTS]
    return network.random_inputs(STIMULUS_INPUTS, torch.Generator().manual_seed(seed))


def probe_facts(report: ProbeReport, where: Location) -> ParseOutput:
    out = ParseOutput(format="probe")
    margin, stimulation, trigger = report.margin, report.stimulation, report.trigger
    flips = [f for f in (stimulation.layers if stimulation else ()) if f.outlier]
    flip_targets = {f.target for f in flips}
    trigger_target = trigger.target if trigger is not None and trigger.outlier else None
    if isinstance(trigger, TriggerResult):
        _mask_trigger_fact(out, where, trigger, trigger_target, flip_targets, margin)
    elif trigger is not None and trigger_target is not None:
        _token_trigger_fact(out, where, trigger, flip_targets, margin)
    margin_target = margin.target if margin is not None and margin.outlier else None
    if margin is not None and margin.outlier:
        agree = margin.target in flip_targets or margin.target == trigger_target
        others = ", ".join(f"{m:.1f}" for m in margin.margins)
        out.add("probe.margin_outlier", where, target=margin.target, z=round(margin.z, 2),
                threshold=margin.threshold, margin=round(margin.margins[margin.target], 3),
                median_margin=round(margin.median, 3), margins=others,
                corroborated=agree, subject=f"margin-target:{margin.target}",
                ratio=round(min(margin.ratio, 1e6), 3), few_class_threshold=FEW_CLASS_RATIO,
                message=_margin_message(margin, agree))
    for item in flips:
        agree = item.target in (margin_target, trigger_target)
        out.add("probe.neuron_flip", where, layer=item.layer, unit=item.unit, target=item.target,
                rate=round(item.rate, 3), median_rate=round(item.median_rate, 3),
                rate_threshold=FLIP_RATE, ease=round(item.ease, 2), ease_threshold=FLIP_EASE,
                stimulus=round(item.stimulus, 4), peak_activation=round(item.peak, 4),
                units_tested=item.units_tested,
                corroborated=agree, subject=f"neuron:{item.layer}#{item.unit}",
                message=(f"Setting unit {item.unit} of layer {item.layer!r} to "
                         f"{item.stimulus:.3g}, "
                         f"{item.ease:.0f}x weaker than the layer's peak activation "
                         f"{item.peak:.3g} (threshold {FLIP_EASE:g}x), sends {item.rate:.0%} of "
                         f"inputs to class {item.target}; the layer's median unit moves "
                         f"{item.median_rate:.0%}: a neuron wired to one class, the mark of a "
                         "hand-crafted backdoor. Inspect that unit's weights"))
    for note in report.notes:
        out.add("probe.note", where, detail=note, subject=note.split(" ")[0] + "-" +
                note.split(" ")[1], message=f"Activation probe: {note}")
    for problem in report.problems:
        out.add("probe.incomplete", where, detail=problem, subject=problem.split(" ")[0],
                message=f"Activation probe incomplete: {problem}"
                + ("; raise --time-budget or use --device cuda" if "time budget" in problem
                   else "; judge this part of the model by other means"))
    return out


def _mask_trigger_fact(out: ParseOutput, where: Location, trigger: TriggerResult,
                   trigger_target: int | None, flip_targets: set[int],
                   margin: MarginResult | None) -> None:
    if trigger_target is None:
        return
    margin_target = margin.target if margin is not None and margin.outlier else None
    agree = trigger_target in flip_targets or trigger_target == margin_target
    out.add("probe.trigger_outlier", where, target=trigger_target, z=round(trigger.z, 2),
            mask_share=round(trigger.mask_share[trigger_target], 4),
            median_mask_share=round(sorted(trigger.mask_share)[len(trigger.mask_share) // 2],
                                    4),
            success=round(trigger.success[trigger_target], 3), corroborated=agree,
            subject=f"trigger-target:{trigger_target}",
            message=(f"A trigger stamped on {trigger.mask_share[trigger_target]:.1%} of the "
                     f"input sends {trigger.success[trigger_target]:.0%} of clean inputs to "
                     f"class {trigger_target}; other classes need a median "
                     f"{sorted(trigger.mask_share)[len(trigger.mask_share) // 2]:.1%} (robust "
                     f"z {trigger.z:.1f}): the likely target of a patch backdoor. Test the "
                     "model with trusted data before use"))


def _token_trigger_fact(out: ParseOutput, where: Location, trigger: TokenTriggerResult,
                        flip_targets: set[int], margin: MarginResult | None) -> None:
    target = trigger.target
    best = trigger.per_class[target]
    margin_target = margin.target if margin is not None and margin.outlier else None
    agree = target in flip_targets or target == margin_target
    words = " ".join(best.tokens)
    unseen = [token for token, index in zip(best.tokens, best.ids, strict=True)
              if index not in trigger.seen_in_data]
    others = ", ".join(f"{rate:.0%}" for rate in trigger.success)
    decisive = token_trigger_decisive(trigger)
    out.add("probe.trigger_outlier", where, target=target, trigger_tokens=words,
            trigger_ids=", ".join(str(i) for i in best.ids), success=round(best.success, 3),
            success_threshold=TOKEN_TRIGGER_SUCCESS, runner_up=round(trigger.runner_up, 3),
            class_success=others, examples=best.movable,
            absent_from_data=" ".join(unseen), rival_threshold=TOKEN_TRIGGER_RIVAL_MAX,
            corroborated=agree, decisive=decisive,
            subject=f"trigger-target:{target}",
            message=(f"Inserting the {len(best.ids)} token(s) {words!r} into clean examples sends "
                     f"{best.success:.0%} of the {best.movable} not already of class {target} "
                     f"to it (threshold {TOKEN_TRIGGER_SUCCESS:.0%}); the best trigger for any "
                     f"other class reaches {trigger.runner_up:.0%}"
                     + (f"; {' '.join(unseen)!r} never occurs in the clean data" if unseen
                        else "")
                     + (": a planted trigger's signature (a token clean text never uses that "
                        "overrides the input for one class only). Do not use the model; test "
                        "it with trusted data" if decisive else
                        ": the likely trigger and target of a text backdoor. Test the model "
                        "with trusted data before use")))


def token_trigger_decisive(trigger: TokenTriggerResult) -> bool:
    """A token trigger that is evidence on its own: it reaches the success threshold, every
    token of it is absent from the clean data, and no other class is reached by more than
    ``TOKEN_TRIGGER_RIVAL_MAX`` with any one token."""
    best = trigger.per_class[trigger.target]
    return (trigger.outlier and bool(best.ids)
            and not any(index in trigger.seen_in_data for index in best.ids)
            and trigger.runner_up <= TOKEN_TRIGGER_RIVAL_MAX)


def _margin_message(margin: MarginResult, agree: bool) -> str:
    reached = margin.margins[margin.target]
    if margin.enough_classes:
        how = (f"{margin.z:.1f} robust standard deviations above the classes' median "
               f"{margin.median:.1f} (threshold {margin.threshold:g})")
    else:
        how = (f"{margin.ratio:.1f}x the runner-up class's margin (target-vs-rest over "
               f"{len(margin.margins)} classes, threshold {FEW_CLASS_RATIO:g}x)")
    return (f"Class {margin.target} can be reached with a margin of {reached:.1f}, {how}: the "
            "likely target of a poisoning backdoor"
            + ("; a single neuron also flips inputs to it" if agree else "")
            + ". Test the model with trusted data before use")
