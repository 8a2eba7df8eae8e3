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
    FLIP_MEDIAN_MAX,
    FLIP_RATE,
    MAX_UNITS_PER_LAYER,
    STIMULUS_SCALE,
)

if TYPE_CHECKING:
    import torch

BATCH_ROWS = 8192  # inputs x units per forward pass


@dataclass(frozen=True)
class LayerFlips:
    layer: str
    unit: int  # the unit whose stimulation flips most inputs to one class
    target: int  # the class it flips them to
    rate: float  # share of inputs (not already of that class) sent to it
    median_rate: float  # the same share for the layer's median unit
    stimulus: float  # the value the unit was set to
    units_tested: int

    @property
    def outlier(self) -> bool:
        return self.rate >= FLIP_RATE and self.median_rate < FLIP_MEDIAN_MAX


@dataclass(frozen=True)
class StimulationResult:
    layers: tuple[LayerFlips, ...]
    complete: bool

    @property
    def strongest(self) -> LayerFlips | None:
        return max(self.layers, key=lambda f: f.rate - f.median_rate, default=None)


def stimulate(network: ProbeNetwork, inputs: torch.Tensor, deadline: float) -> StimulationResult:
    import torch

    with torch.no_grad():
        base = network.logits(inputs).argmax(dim=1)
        activations = network.activations(inputs)
        found: list[LayerFlips] = []
        for layer in network.hidden:
            if time.monotonic() > deadline:
                return StimulationResult(tuple(found), False)
            peak = float(activations[layer.name].abs().max())
            stimulus = STIMULUS_SCALE * (peak if peak > 0 else 1.0)
            flips = _layer_flips(network, layer, inputs, base, stimulus, deadline)
            if flips is None:
                return StimulationResult(tuple(found), False)
            found.append(flips)
    return StimulationResult(tuple(found), True)


def _layer_flips(network: ProbeNetwork, layer: HiddenLayer, inputs: torch.Tensor,
                 base: torch.Tensor, stimulus: float, deadline: float) -> LayerFlips | None:
    import torch

    count = inputs.shape[0]
    units = torch.arange(layer.width)
    if layer.width > MAX_UNITS_PER_LAYER:
        units = torch.linspace(0, layer.width - 1, MAX_UNITS_PER_LAYER).round().long().unique()
    per_pass = max(1, BATCH_ROWS // count)
    rates = torch.zeros(units.numel())
    targets = torch.zeros(units.numel(), dtype=torch.long)
    for first in range(0, units.numel(), per_pass):
        if time.monotonic() > deadline:
            return None
        chunk = units[first:first + per_pass].to(inputs.device)
        batch = inputs.repeat(chunk.numel(), *([1] * (inputs.dim() - 1)))
        which = chunk.repeat_interleave(count)
        preds = network.stimulated_logits(batch, layer.name, which, stimulus).argmax(dim=1)
        preds = preds.view(chunk.numel(), count)
        for offset in range(chunk.numel()):
            rate, target = _flip_rate(preds[offset], base, network.classes)
            rates[first + offset] = rate
            targets[first + offset] = target
    best = int(rates.argmax())
    return LayerFlips(layer=layer.name, unit=int(units[best]), target=int(targets[best]),
                      rate=float(rates[best]), median_rate=float(rates.median()),
                      stimulus=stimulus, units_tested=int(units.numel()))


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
