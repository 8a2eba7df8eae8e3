"""Calibrate the margin probe's target-vs-rest test for 2-4 class models (run by hand; CPU).

    python bench/backdoor_fewclass.py [--seeds 6]

Trains MLPs on 2, 3 and 4 digit classes of scikit-learn's digits, clean and BadNets-poisoned
(target 0, 10 % poison), and prints each model's MM-BD margins and the ratio of the best margin
to the runner-up's, with the count of clean and poisoned models at or above FEW_CLASS_RATIO.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import backdoor_zoo as zoo  # noqa: E402

from ckptguard.probes.margin import optimise_margins  # noqa: E402
from ckptguard.probes.network import ProbeNetwork  # noqa: E402
from ckptguard.probes.thresholds import FEW_CLASS_RATIO  # noqa: E402


def subset(data: zoo.Digits, classes: list[int], test: bool) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = (data.test_x, data.test_y) if test else (data.train_x, data.train_y)
    keep = torch.isin(y, torch.tensor(classes))
    relabelled = y[keep].clone()
    for i, c in enumerate(classes):
        relabelled[y[keep] == c] = i
    return x[keep], relabelled


def model(classes: int, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32), nn.ReLU(),
                         nn.Linear(32, classes))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = zoo.digits()
    flagged = {False: 0, True: 0}
    total = {False: 0, True: 0}
    print("classes kind seed accuracy ASR margins ratio")
    for k in (2, 3, 4):
        for poison in (False, True):
            for seed in range(args.seeds):
                classes = [(seed + 3 * i) % 10 for i in range(k)]
                x, y = subset(data, classes, test=False)
                tx, ty = subset(data, classes, test=True)
                if poison:
                    x, y = zoo.poisoned(x, y, zoo.patch_trigger, 0, 0.1, seed)
                trained = zoo.train(model(k, seed), x, y, seed=seed, epochs=(12, 18)[seed % 2],
                                    lr=(3e-3, 5e-3)[seed % 2])
                with torch.no_grad():
                    acc = float((trained(tx).argmax(1) == ty).float().mean())
                    asr = float((trained(zoo.patch_trigger(tx[ty != 0])).argmax(1) == 0)
                                .float().mean())
                result, _ = optimise_margins(ProbeNetwork(trained, (1, 8, 8)), 0,
                                             time.monotonic() + 120)
                total[poison] += 1
                flagged[poison] += result.outlier
                print(k, "poisoned" if poison else "clean", seed, f"{acc:.2f}", f"{asr:.2f}",
                      [round(v, 1) for v in result.margins], f"{result.ratio:.2f}", flush=True)
    print(f"at ratio >= {FEW_CLASS_RATIO:g}: clean flagged {flagged[False]}/{total[False]}, "
          f"poisoned flagged {flagged[True]}/{total[True]}")


if __name__ == "__main__":
    main()
