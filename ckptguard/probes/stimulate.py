"""Single-neuron stimulation: set one hidden unit high, keep the others at their values for
typical inputs, and see whether that unit alone sends the inputs to one class.

Hand-crafted backdoor neurons are never activated by random or clean inputs, so gradients from
those inputs do not reach them; stimulating each unit directly does.  Units are batched: one
forward pass stimulates many units, each on its own copy of the inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ckptguard.probes.network import HiddenLayer, ProbeNetwork
from ckptguard.probes.thresholds import (
    FLIP_EASE,
    FLIP_RATE,
    MAX_UNITS_PER_LAYER,
    STIMULUS_LADDER,
)

if TYPE_CHECKING:
    import torch

BATCH_ROWS = 8192  # inputs x units per forward pass


@dataclass(frozen=True)
class LayerFlips:
    """The unit of one layer that flips inputs to one class with the weakest stimulus."""

    layer: str
    unit: int
    target: int  # the class it flips the inputs to
    rate: float  # share of inputs (not already of that class) sent there at ``stimulus``
    stimulus: float  # the weakest stimulus on the ladder that did it
    peak: float  # the layer's largest activation on typical inputs
    median_rate: float  # share the layer's median unit flips at the same stimulus
    units_tested: int

    @property
    def ease(self) -> float:
        """How much weaker than a typical peak activation the flipping stimulus is."""
        return self.peak / self.stimulus if self.stimulus > 0 and self.rate >= FLIP_RATE else 0.0

    @property
    def outlier(self) -> bool:
        return self.ease >= FLIP_EASE and self.median_rate < FLIP_RATE


@dataclass(frozen=True)
class StimulationResult:
    layers: tuple[LayerFlips, ...]
    complete: bool

    @property
    def strongest(self) -> LayerFlips | None:
        return max(self.layers, key=lambda f: (f.ease, f.rate), default=None)


def stimulate(network: ProbeNetwork, inputs: torch.Tensor, deadline: float) -> StimulationResult:
    import torch

    with torch.no_grad():
        base = network.logits(inputs).argmax(dim=1)
        activations = network.activations(inputs)
        found: list[LayerFlips] = []
        for layer in network.hidden:
            if time.monotonic() > deadline:
                return StimulationResult(tuple(found), False)
            values = network.unit_view(layer, activations[layer.name]).abs()
            if layer.spatial:  # a stimulus fills the whole map: compare with map averages
                values = values.flatten(2).mean(dim=2)
            peak = float(values.max()) or 1.0
            flips = _weakest_flip(network, layer, inputs, base, peak, deadline)
            if flips is None:
                return StimulationResult(tuple(found), False)
            found.append(flips)
    return StimulationResult(tuple(found), True)


def _weakest_flip(network: ProbeNetwork, layer: HiddenLayer, inputs: torch.Tensor,
                  base: torch.Tensor, peak: float, deadline: float) -> LayerFlips | None:
    """Climb the stimulus ladder (weakest first); stop at the first rung where some unit flips
    ``FLIP_RATE`` of the inputs to one class."""
    last: LayerFlips | None = None
    for fraction in STIMULUS_LADDER:
        flips = _layer_flips(network, layer, inputs, base, peak, peak * fraction, deadline)
        if flips is None:
            return None
        last = flips
        if flips.rate >= FLIP_RATE:
            break
    return last


def _layer_flips(network: ProbeNetwork, layer: HiddenLayer, inputs: torch.Tensor,
                 base: torch.Tensor, peak: float, stimulus: float,
                 deadline: float) -> LayerFlips | None:
    import torch

    count = inputs.shape[0]
    step = -(-layer.width // MAX_UNITS_PER_LAYER)  # wider layers: every step-th unit
    units = torch.arange(0, layer.width, step)
    per_pass = max(1, BATCH_ROWS // count)
    rates = torch.zeros(units.numel())
    targets = torch.zeros(units.numel(), dtype=torch.long)
    for first in range(0, units.numel(), per_pass):
        if time.monotonic() > deadline:
            return None
        chunk = units[first:first + per_pass].to(inputs.device)
        batch = inputs.repeat(chunk.numel(), *([1] * (inputs.dim() - 1)))
        which = chunk.repeat_interleave(count)
        preds = network.stimulated_logits(batch, layer, which, stimulus).argmax(dim=1)
        preds = preds.view(chunk.numel(), count)
        for offset in range(chunk.numel()):
            rate, target = _flip_rate(preds[offset], base, network.classes)
            rates[first + offset] = rate
            targets[first + offset] = target
    best = int(rates.argmax())
    return LayerFlips(layer=layer.name, unit=int(units[best]), target=int(targets[best]),
                      rate=float(rates[best]), stimulus=stimulus, peak=peak,
                      median_rate=float(rates.median()), units_tested=int(units.numel()))


def _flip_rate(preds: torch.Tensor, base: torch.Tensor, classes: int) -> tuple[float, int]:
    """The class most inputs went to, and the share of inputs not already of that class that
    the stimulation sent there."""
    import torch

    counts = torch.bincount(preds, minlength=classes)
    target = int(counts.argmax())
    movable = base != target
    if int(movable.sum()) == 0:
        return 0.0, target
    moved = (preds[movable] == target).float().mean()
    return float(moved), target
