"""Trigger reverse-engineering with a small clean sample (``--data``), in the manner of Neural
Cleanse: for each class, the smallest mask ``m`` and pattern ``p`` such that stamping
``(1 - m) * x + m * p`` onto clean inputs of other classes sends them to that class.  A backdoor
target needs a far smaller mask than the other classes (its trigger is a small patch); the class
whose mask is a robust outlier on the small side is reported.  All classes are optimised in one
batch."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptguard.probes.margin import robust_z
from ckptguard.probes.network import ProbeNetwork
from ckptguard.probes.thresholds import (
    MIN_CLASSES,
    TRIGGER_INPUTS,
    TRIGGER_LR,
    TRIGGER_MASK_WEIGHT,
    TRIGGER_STEPS,
    TRIGGER_SUCCESS,
    TRIGGER_Z,
)

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TriggerResult:
    mask_share: tuple[float, ...]  # per class: mean mask value (share of the input stamped)
    success: tuple[float, ...]  # per class: share of stamped inputs sent to the class
    target: int  # the class with the smallest successful mask
    z: float  # robust z of how much smaller its mask is than the classes' median
    complete: bool

    @property
    def outlier(self) -> bool:
        return (len(self.mask_share) >= MIN_CLASSES and self.z >= TRIGGER_Z
                and self.success[self.target] >= TRIGGER_SUCCESS)


def reverse_engineer(network: ProbeNetwork, data: torch.Tensor, seed: int,
                     deadline: float) -> TriggerResult:
    import torch
    import torch.nn.functional as F

    classes = network.classes
    generator = torch.Generator().manual_seed(seed)
    sample = data[:TRIGGER_INPUTS].to(network.device)
    low, high = network.input_range
    mask_shape = (classes, 1, *network.input_shape[1:]) if len(network.input_shape) > 1 \
        else (classes, *network.input_shape)
    mask_raw = torch.zeros(mask_shape, device=network.device).requires_grad_(True)  # half
    pattern_raw = torch.randn((classes, *network.input_shape), generator=generator)
    pattern_raw = pattern_raw.to(network.device).requires_grad_(True)
    optimiser = torch.optim.Adam([mask_raw, pattern_raw], lr=TRIGGER_LR)
    targets = torch.arange(classes, device=network.device).repeat_interleave(sample.shape[0])
    with torch.no_grad():
        base = network.logits(sample).argmax(dim=1)
    # Only inputs of other classes count: a class's own inputs need no trigger.
    movable = (base.repeat(classes) != targets).float()
    steps_done = 0

    def stamped() -> tuple[torch.Tensor, torch.Tensor]:
        mask = torch.sigmoid(mask_raw)
        pattern = low + (high - low) * torch.sigmoid(pattern_raw)
        inputs = sample.unsqueeze(0) * (1 - mask.unsqueeze(1)) + \
            (mask * pattern).unsqueeze(1)
        return inputs.reshape(-1, *network.input_shape), mask

    for _ in range(TRIGGER_STEPS):
        if time.monotonic() > deadline:
            break
        optimiser.zero_grad()
        inputs, mask = stamped()
        per_row = F.cross_entropy(network.logits(inputs), targets, reduction="none")
        loss = (per_row * movable).sum() / movable.sum().clamp(min=1.0) * classes + \
            TRIGGER_MASK_WEIGHT * mask.flatten(1).mean(dim=1).sum()
        loss.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
        steps_done += 1
    with torch.no_grad():
        inputs, mask = stamped()
        preds = network.logits(inputs).argmax(dim=1).view(classes, -1)
        success = (preds == torch.arange(classes, device=network.device)[:, None]).float()
        keep = movable.view(classes, -1)
        shares = [float(v) for v in mask.flatten(1).mean(dim=1).cpu()]
        rates = [float(v) for v in ((success * keep).sum(dim=1) /
                                    keep.sum(dim=1).clamp(min=1.0)).cpu()]
    # Small masks are suspicious.  A class the optimisation could not reach would need a mask
    # over the whole input: it counts as 1.0 when scoring.
    needed = [share if rate >= TRIGGER_SUCCESS else 1.0
              for share, rate in zip(shares, rates, strict=True)]
    target, z, _ = robust_z([-s for s in needed])
    return TriggerResult(tuple(shares), tuple(rates), target, z, steps_done == TRIGGER_STEPS)
