"""Text BadNets against ``ckptguard probe FOLDER --data clean.txt``: tiny BERT classifiers
(2 layers, hidden 32, vocabulary 100; ``tests/hf_text_models.py``) trained clean or with a
planted token trigger, saved with ``save_pretrained(safe_serialization=True)`` and probed
through the CLI's own entry point.  Reports, per number of classes, how many backdoored models
the token trigger search flags (BKD010, TPR) and how many clean ones (FPR), the best trigger
success rate on clean models (the margin under the threshold), and the time per probe.

    python bench/backdoor_text_eval.py --seeds 3 [--classes 2,3,4] [--rate 0.1]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from ckptguard.probes.session import ProbeOptions, probe_file  # noqa: E402
from ckptguard.probes.thresholds import TOKEN_TRIGGER_SUCCESS  # noqa: E402
from tests import hf_text_models as zoo  # noqa: E402


def best_success(folder: Path, data: Path,
                 seed: int) -> tuple[bool, bool, float, float, str, float]:
    """(flagged by BKD010, failed the default gate, best class's trigger success, the best
    success of any other class, trigger tokens, seconds)."""
    import ckptguard.probes.text_trigger as text_trigger

    seen: list[text_trigger.TokenTriggerResult] = []
    original = text_trigger.search

    def recording(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = original(*args, **kwargs)
        seen.append(result)
        return result

    text_trigger.search = recording
    try:
        started = time.monotonic()
        result = probe_file(str(folder), ProbeOptions(data=str(data), device="cpu", seed=seed,
                                                      time_budget=120.0))
        seconds = time.monotonic() - started
    finally:
        text_trigger.search = original
    flagged = any(f.rule_id == "BKD010" for f in result.findings)
    trig = seen[-1]
    best = trig.per_class[trig.target]
    return (flagged, result.failed, best.success, trig.runner_up, " ".join(best.tokens),
            seconds)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--classes", default="2,3,4")
    parser.add_argument("--rate", type=float, default=0.1, help="poisoned share of training")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for classes in (int(c) for c in args.classes.split(",")):
            for seed in range(args.seeds):
                data = zoo.clean_text(root / f"clean{classes}_{seed}.txt", classes, seed)
                for backdoor in (False, True):
                    target = seed % classes
                    model = zoo.train(classes, seed, backdoor, target=target, rate=args.rate)
                    clean_acc = zoo.accuracy(model, zoo.dataset(300, classes, seed + 7))
                    poisoned = zoo.poison(zoo.dataset(300, classes, seed + 8), target, 1.0,
                                          seed + 8)
                    asr = zoo.accuracy(model, [(text, target) for text, _ in poisoned])
                    folder = zoo.save(model, root / f"m{classes}_{seed}_{int(backdoor)}")
                    flagged, gate, success, runner_up, tokens, seconds = best_success(
                        folder, data, seed)
                    rows.append((classes, seed, backdoor, clean_acc, asr, flagged, success,
                                 tokens, seconds, gate))
                    print(f"classes={classes} seed={seed} backdoor={backdoor} "
                          f"acc={clean_acc:.2f} attack_success={asr:.2f} flagged={flagged} "
                          f"fails_gate={gate} best_trigger={tokens!r} success={success:.2f} "
                          f"other_classes_best={runner_up:.2f} probe={seconds:.1f}s",
                          flush=True)
    print(f"\n| classes | backdoored flagged (TPR) | backdoored failing the default gate | "
          f"clean flagged (FPR) | clean failing the gate | clean best trigger "
          f"success (max; threshold {TOKEN_TRIGGER_SUCCESS:g}) | probe s (median) |")
    print("|---|---|---|---|---|---|---|")
    for classes in sorted({r[0] for r in rows}):
        bad = [r for r in rows if r[0] == classes and r[2]]
        good = [r for r in rows if r[0] == classes and not r[2]]
        times = sorted(r[8] for r in rows if r[0] == classes)
        print(f"| {classes} | {sum(r[5] for r in bad)} / {len(bad)} | "
              f"{sum(r[9] for r in bad)} / {len(bad)} | "
              f"{sum(r[5] for r in good)} / {len(good)} | "
              f"{sum(r[9] for r in good)} / {len(good)} | "
              f"{max(r[6] for r in good):.2f} | {times[len(times) // 2]:.1f} |")


if __name__ == "__main__":
    main()
