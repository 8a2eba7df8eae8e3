"""Evaluate ckptguard's backdoor detection on a small zoo (run by hand; CPU; a few minutes).

    python bench/backdoor_eval.py [--quick]

Trains clean and attacked classifiers on scikit-learn's digits (``backdoor_zoo.py``), scores each
with the three layers of the method, and reports per attack family and layer: AUROC, and TPR at
1% / 5% FPR with exact counts, where the thresholds come from a separate clean calibration set
(never from the test models).  Time per model is measured per layer.  The table is printed and
saved to ``bench/out/backdoor_eval.md``.

Scores (higher = more suspicious), each the statistic over its rule's threshold, so a score of 1
or more is what makes the scanner report:
  weights  max(neuron robust z / NEURON_Z, spectral gap / SPECTRAL_GAP) over linear/conv layers
  diff     max over layers of max(top-direction share / DIFF_TOP_SHARE,
           top-1%-rows share / DIFF_ROW_SHARE)   (models with a base only)
  probes   max(margin z / MARGIN_Z, stimulus ease / FLIP_EASE when the median unit does not
           flip): data free
  probes+data  max(probes, trigger-mask z / TRIGGER_Z when the trigger succeeds), with 64
           held-out clean digits as --data
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import backdoor_zoo as zoo  # noqa: E402

from ckptguard.facts import TensorRef  # noqa: E402
from ckptguard.model import Location  # noqa: E402
from ckptguard.probes.margin import optimise_margins  # noqa: E402
from ckptguard.probes.network import ProbeNetwork  # noqa: E402
from ckptguard.probes.runner import typical_inputs  # noqa: E402
from ckptguard.probes.stimulate import stimulate  # noqa: E402
from ckptguard.probes.thresholds import (  # noqa: E402
    FLIP_EASE,
    FLIP_RATE,
    MARGIN_Z,
    TRIGGER_SUCCESS,
    TRIGGER_Z,
)
from ckptguard.probes.trigger import reverse_engineer  # noqa: E402
from ckptguard.source import MemorySource  # noqa: E402
from ckptguard.weights import thresholds as T  # noqa: E402
from ckptguard.weights.anomalies import neuron_tensors  # noqa: E402
from ckptguard.weights.diff import tensor_delta  # noqa: E402
from ckptguard.weights.spectrum import tensor_spectrum  # noqa: E402
from ckptguard.weights.stats import tensor_stats  # noqa: E402

LAYERS = ("weights", "diff", "probes", "probes+data")


@dataclass
class Scored:
    family: str  # "clean-cal", "clean", "honest-cal", "honest", or an attack family
    arch: str
    scores: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    accuracy: float = 0.0
    asr: float | None = None


def refs(tensors: dict[str, np.ndarray]) -> list[TensorRef]:
    return [TensorRef(name, "float32", tuple(array.shape), MemorySource(array.tobytes()),
                      Location(("zoo",), tensor=name)) for name, array in tensors.items()]


def weight_score(tensors: dict[str, np.ndarray]) -> float:
    best = 0.0
    for ref, _ in neuron_tensors(refs(tensors)):
        stats = tensor_stats(ref)
        if stats.row is not None:
            best = max(best, stats.row.z / T.NEURON_Z)
        spectrum = tensor_spectrum(ref)
        if spectrum.side >= T.RANK_ONE_MIN_SIDE and spectrum.top_share >= T.SPECTRAL_SHARE:
            best = max(best, spectrum.gap / T.SPECTRAL_GAP)
    return best


def diff_score(tensors: dict[str, np.ndarray], base: dict[str, np.ndarray]) -> float:
    ours = {ref.name: ref for ref in refs(tensors)}
    theirs = {ref.name: ref for ref in refs(base)}
    best = 0.0
    for ref, _ in neuron_tensors(ours.values()):
        delta = tensor_delta(ref, theirs[ref.name])
        if delta.relative < T.DIFF_MIN_RELATIVE:
            continue
        rows = delta.top_rows_share / T.DIFF_ROW_SHARE if delta.rows >= 20 else 0.0
        share = delta.top_share if delta.spectrum.side >= T.RANK_ONE_MIN_SIDE else 0.0
        best = max(best, share / T.DIFF_TOP_SHARE, rows)
    return best


def probe_scores(model: torch.nn.Module, shape: tuple[int, ...],
                 seed: int) -> tuple[float, float]:
    """(margin z / MARGIN_Z, stimulus ease / FLIP_EASE)."""
    network = ProbeNetwork(model, shape)
    deadline = time.monotonic() + 60.0
    margin, prototypes = optimise_margins(network, seed, deadline)
    flips = stimulate(network, typical_inputs(network, prototypes, seed), deadline).strongest
    flip = flips.ease / FLIP_EASE if flips is not None and flips.median_rate < FLIP_RATE else 0.0
    return margin.z / MARGIN_Z, flip


def score(item: Scored, model: torch.nn.Module, base: torch.nn.Module | None, seed: int,
          data: zoo.Digits) -> Scored:
    tensors = zoo.to_numpy(model)
    shape = (1, 8, 8)
    jobs: dict[str, Callable[[], float]] = {"weights": lambda: weight_score(tensors)}
    if base is not None:
        base_tensors = zoo.to_numpy(base)
        jobs["diff"] = lambda: diff_score(tensors, base_tensors)
    for layer, job in jobs.items():
        started = time.perf_counter()
        item.scores[layer] = job()
        item.seconds[layer] = time.perf_counter() - started
    started = time.perf_counter()
    margin, flip = probe_scores(model, shape, seed)
    item.seconds["probes"] = time.perf_counter() - started
    item.scores["probes"] = max(margin, flip)
    item.scores["margin"], item.scores["flip"] = margin, flip
    started = time.perf_counter()
    found = reverse_engineer(ProbeNetwork(model, shape), data.test_x[:64], seed,
                             time.monotonic() + 120.0)
    trigger = found.z / TRIGGER_Z if found.success[found.target] >= TRIGGER_SUCCESS else 0.0
    item.seconds["probes+data"] = item.seconds["probes"] + time.perf_counter() - started
    item.scores["trigger"] = trigger
    item.scores["probes+data"] = max(margin, flip, trigger)
    item.accuracy = zoo.accuracy(model, data)
    return item


def build_and_score(quick: bool) -> list[Scored]:
    data = zoo.digits()
    per = 2 if quick else 3  # models per architecture and group
    out: list[Scored] = []
    archs = ("mlp", "cnn")

    def add(family: str, arch: str, model: torch.nn.Module, base: torch.nn.Module | None,
            seed: int, asr: float | None = None) -> None:
        item = score(Scored(family, arch), model, base, seed, data)
        item.asr = asr
        out.append(item)
        print(f"  {family:16} {arch} seed {seed:3}: " +
              " ".join(f"{k}={v:.2f}" for k, v in item.scores.items()) +
              f" acc={item.accuracy:.2f}" + (f" asr={asr:.2f}" if asr is not None else ""),
              flush=True)

    clean_test: dict[str, list[torch.nn.Module]] = {a: [] for a in archs}
    for arch in archs:
        for i in range(per):
            add("clean-cal", arch, zoo.clean_model(arch, 100 + i, data), None, 100 + i)
        for i in range(per + 2):
            model = zoo.clean_model(arch, 200 + i, data)
            clean_test[arch].append(model)
            add("clean", arch, model, None, 200 + i)
        for i in range(per):
            target = (0, 3, 7, 5)[i % 4]
            for kind in ("badnets", "blended"):
                model = zoo.poisoned_model(arch, 300 + i, data, kind, target)
                trigger = zoo.patch_trigger if kind == "badnets" else zoo.blend_trigger
                add(kind, arch, model, None, 300 + i,
                    zoo.attack_success(model, data, trigger, target))
        for i, source in enumerate(clean_test[arch][:per]):
            target = (1, 4, 8, 2)[i % 4]
            for loud in (True, False):
                family = "neuron-loud" if loud else "neuron-quiet"
                model = zoo.hand_crafted(source, data, 5 + i, target, loud)
                asr = zoo.attack_success(model, data, zoo.corner_trigger, target) \
                    if arch == "mlp" else None
                add(family, arch, model, source, 400 + i, asr)
                family = "rank1-loud" if loud else "rank1-quiet"
                model = zoo.rank_one_edit(source, data, target, loud)
                add(family, arch, model, source, 500 + i,
                    zoo.attack_success(model, data, zoo.corner_trigger, target))
        base = zoo.clean_model(arch, 600, data)
        for i in range(per):
            add("honest-cal", arch, zoo.finetune(base, data, 700 + i, poison_target=None),
                base, 700 + i)
        for i in range(per + 2):
            add("honest", arch, zoo.finetune(base, data, 800 + i, poison_target=None), base,
                800 + i)
        for i in range(per):
            target = (6, 9, 2, 0)[i % 4]
            model = zoo.finetune(base, data, 900 + i, poison_target=target)
            add("poisoned-ft", arch, model, base, 900 + i,
                zoo.attack_success(model, data, zoo.patch_trigger, target))
    return out


def auroc(positives: list[float], negatives: list[float]) -> float:
    """Mann-Whitney: the chance a random positive outscores a random negative (ties count half)."""
    if not positives or not negatives:
        return float("nan")
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def threshold_at(calibration: list[float], fpr: float) -> float:
    """The smallest score that at most ``fpr`` of the calibration models exceed (with fewer
    than 1/fpr models this is their maximum: conservative)."""
    ordered = sorted(calibration)
    allowed = int(np.floor(fpr * len(ordered)))
    return ordered[len(ordered) - 1 - allowed] if ordered else float("inf")


ATTACKS = ("badnets", "blended", "neuron-loud", "neuron-quiet", "rank1-loud", "rank1-quiet",
           "poisoned-ft")


def table(items: list[Scored]) -> str:
    def of(family: str, layer: str) -> list[float]:
        return [i.scores[layer] for i in items if i.family == family and layer in i.scores]

    lines = ["| family | layer | n pos / n neg | AUROC | TPR@1%FPR (thr) | FP@1% | "
             "TPR@5%FPR (thr) | FP@5% | flagged by rule (score>=1) | mean s/model |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for family in ATTACKS:
        for layer in LAYERS:
            positives = of(family, layer)
            if not positives:
                continue
            uses_base = family in ("neuron-loud", "neuron-quiet", "rank1-loud", "rank1-quiet",
                                   "poisoned-ft") and layer == "diff"
            negatives = of("honest", layer) if uses_base else of("clean", layer)
            calibration = of("honest-cal", layer) if uses_base else of("clean-cal", layer)
            row = [family, layer, f"{len(positives)} / {len(negatives)}",
                   f"{auroc(positives, negatives):.3f}"]
            for fpr in (0.01, 0.05):
                thr = threshold_at(calibration, fpr)
                tp = sum(p > thr for p in positives)
                fp = sum(n > thr for n in negatives)
                row += [f"{tp}/{len(positives)} ({thr:.2f})", f"{fp}/{len(negatives)}"]
            ruled = sum(p >= 1.0 for p in positives)
            ruled_fp = sum(n >= 1.0 for n in negatives)
            row.append(f"{ruled}/{len(positives)} (FP {ruled_fp}/{len(negatives)})")
            seconds = [i.seconds[layer] for i in items if i.family == family and
                       layer in i.seconds]
            row.append(f"{np.mean(seconds):.2f}")
            lines.append("| " + " | ".join(row) + " |")
    summary = []
    for family in ("clean", *ATTACKS, "honest"):
        chosen = [i for i in items if i.family == family]
        asr = [i.asr for i in chosen if i.asr is not None]
        summary.append(f"| {family} | {len(chosen)} | {np.mean([i.accuracy for i in chosen]):.3f} "
                       f"| {np.mean(asr):.3f} |" if asr else
                       f"| {family} | {len(chosen)} | "
                       f"{np.mean([i.accuracy for i in chosen]):.3f} | n/a |")
    return "\n".join([*lines, "", "| family | models | clean accuracy | attack success |",
                      "|---|---|---|---|", *summary])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="half the zoo (a smoke run)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    started = time.perf_counter()
    items = build_and_score(args.quick)
    text = table(items)
    elapsed = time.perf_counter() - started
    report = (f"# Backdoor detection on the digits zoo\n\n{len(items)} models, "
              f"{elapsed:.0f} s total on the CPU (1 thread).  Thresholds for TPR@FPR come from "
              "the calibration models (clean-cal, honest-cal), never from test models.  Rule "
              f"thresholds: NEURON_Z={T.NEURON_Z}, SPECTRAL_GAP={T.SPECTRAL_GAP} (share >= "
              f"{T.SPECTRAL_SHARE}), DIFF_TOP_SHARE={T.DIFF_TOP_SHARE}, DIFF_ROW_SHARE="
              f"{T.DIFF_ROW_SHARE}, MARGIN_Z={MARGIN_Z}, FLIP_EASE={FLIP_EASE}, "
              f"TRIGGER_Z={TRIGGER_Z}.\n\n"
              f"{text}\n")
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "backdoor_eval.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
