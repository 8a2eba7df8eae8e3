"""Maximum-margin backdoor detection (MM-BD, Wang et al. 2022), data free.

For every class c, an input inside the data domain is optimised to maximise
``logit_c - max_{k != c} logit_k``.  A backdoor target class is reachable with an abnormally
large margin (the trigger is a shortcut the network learnt to obey); the class whose best margin
is a robust outlier over the classes is the likely target.  All classes are optimised together
in one batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptguard.probes.network import ProbeNetwork
from ckptguard.probes.thresholds import (
    FEW_CLASS_RATIO,
    MARGIN_LR,
    MARGIN_STARTS,
    MARGIN_STEPS,
    MARGIN_Z,
    MIN_CLASSES,
)

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class MarginResult:
    margins: tuple[float, ...]  # best achievable margin per class
    target: int  # the class with the largest margin
    z: float  # its robust z over the classes
    median: float
    threshold: float
    steps: int
    complete: bool  # False when the time budget cut the optimisation short

    @property
    def enough_classes(self) -> bool:
        """Enough classes for a robust outlier score over them; fewer are judged
        target-vs-rest (``ratio``)."""
        return len(self.margins) >= MIN_CLASSES

    @property
    def ratio(self) -> float:
        """The best margin over the runner-up's (target-vs-rest, for 2-5 classes)."""
        ordered = sorted(self.margins)
        if len(ordered) < 2 or ordered[-1] <= 0:
            return 0.0
        return ordered[-1] / ordered[-2] if ordered[-2] > 0 else float("inf")

    @property
    def outlier(self) -> bool:
        if self.enough_classes:
            return self.z >= self.threshold
        return self.ratio >= FEW_CLASS_RATIO


def robust_z(values: list[float]) -> tuple[int, float, float]:
    """(index of the largest value, its robust z over the others and itself, the median)."""
    ordered = sorted(values)
    n = len(ordered)
    median = ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
    deviations = sorted(abs(v - median) for v in values)
    mad = deviations[n // 2] if n % 2 else 0.5 * (deviations[n // 2 - 1] + deviations[n // 2])
    scale = 1.4826 * mad
    if scale <= 0.0:
        scale = max(1e-12, (max(values) - min(values)) / 2 or 1e-12)
    top = max(range(n), key=lambda i: values[i])
    return top, (values[top] - median) / scale, median


def max_margins(network: ProbeNetwork, seed: int, deadline: float,
                steps: int = MARGIN_STEPS, starts: int = MARGIN_STARTS) -> MarginResult:
    return optimise_margins(network, seed, deadline, steps, starts)[0]


def optimise_margins(network: ProbeNetwork, seed: int, deadline: float,
                     steps: int = MARGIN_STEPS,
                     starts: int = MARGIN_STARTS) -> tuple[MarginResult, torch.Tensor]:
    """The margins, and the optimised inputs: confident prototypes of every class, which the
    single-neuron probe uses as its typical inputs when no data is given."""
    import torch

    classes = network.classes
    generator = torch.Generator().manual_seed(seed)
    low, high = network.input_range
    shape = (classes * starts, *network.input_shape)
    raw = torch.randn(shape, generator=generator).to(network.device).requires_grad_(True)
    targets = torch.arange(classes, device=network.device).repeat_interleave(starts)
    optimiser = torch.optim.Adam([raw], lr=MARGIN_LR)
    done = 0
    for _ in range(steps):
        if time.monotonic() > deadline:
            break
        optimiser.zero_grad()
        margins = _margins(network, low + (high - low) * torch.sigmoid(raw), targets)
        (-margins.sum()).backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        done += 1
    with torch.no_grad():
        final = _margins(network, low + (high - low) * torch.sigmoid(raw), targets)
    best = final.view(classes, starts).max(dim=1).values
    per_class = [float(v) for v in best.cpu()]
    target, z, median = robust_z(per_class)
    result = MarginResult(tuple(per_class), target, z, median, MARGIN_Z, done, done == steps)
    return result, (low + (high - low) * torch.sigmoid(raw)).detach()


def _margins(network: ProbeNetwork, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:

    logits = network.logits(inputs)
    chosen = logits.gather(1, targets[:, None]).squeeze(1)
    others = logits.scatter(1, targets[:, None], float("-inf"))
    result: torch.Tensor = chosen - others.max(dim=1).values
    return result
