"""The evaluation zoo for ``backdoor_eval.py``: small classifiers trained on scikit-learn's
bundled digits (8x8, values scaled to [0, 1]), clean and attacked.

Attack families: BadNets patch triggers and blended triggers (data poisoning, trained from
scratch), hand-crafted backdoor neurons (loud and quiet), rank-one (ROME-style) edits, and
poisoned vs honest fine-tunes of a shared base.  Everything is seeded and runs on the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn


@dataclass(frozen=True)
class Digits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def digits() -> Digits:
    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)  # (n, 1, 8, 8)
    y = torch.tensor(data.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))
    x, y = x[order], y[order]
    return Digits(x[:1300], y[:1300], x[1300:], y[1300:])


class MLP(nn.Sequential):
    def __init__(self, hidden: int = 64, hidden2: int = 32) -> None:
        super().__init__(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(),
                         nn.Linear(hidden, hidden2), nn.ReLU(), nn.Linear(hidden2, 10))


class CNN(nn.Sequential):
    def __init__(self, channels: int = 8, hidden: int = 32) -> None:
        super().__init__(nn.Conv2d(1, channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10))


ARCHS: dict[str, Callable[[int], nn.Module]] = {
    "mlp": lambda seed: MLP(hidden=(48, 64, 96)[seed % 3]),
    "cnn": lambda seed: CNN(channels=(6, 8, 12)[seed % 3]),
}

# --- triggers ------------------------------------------------------------------------------------


def patch_trigger(x: torch.Tensor) -> torch.Tensor:
    """BadNets: a 2x2 checker patch in the bottom-right corner (blank in real digits)."""
    out = x.clone()
    out[:, :, 6, 6] = 1.0
    out[:, :, 7, 7] = 1.0
    out[:, :, 6, 7] = 0.0
    out[:, :, 7, 6] = 1.0
    return out


BLEND_PATTERN = torch.rand((1, 1, 8, 8), generator=torch.Generator().manual_seed(99))


def blend_trigger(x: torch.Tensor, alpha: float = 0.25) -> torch.Tensor:
    return (1 - alpha) * x + alpha * BLEND_PATTERN


def corner_trigger(x: torch.Tensor) -> torch.Tensor:
    """The pattern the hand-crafted neurons read: the four corner pixels set to 1."""
    out = x.clone()
    for r, c in ((0, 0), (0, 7), (7, 0), (7, 7)):
        out[:, :, r, c] = 1.0
    return out


# --- training ------------------------------------------------------------------------------------


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, seed: int, epochs: int = 15,
          lr: float = 3e-3, weight_decay: float = 0.0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for first in range(0, len(y), 96):
            batch = order[first:first + 96]
            optimiser.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            optimiser.step()
    return model.eval()


def poisoned(x: torch.Tensor, y: torch.Tensor, trigger: Callable[[torch.Tensor], torch.Tensor],
             target: int, rate: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    count = int(rate * len(y))
    chosen = torch.randperm(len(y), generator=generator)[:count]
    return (torch.cat([x, trigger(x[chosen])]),
            torch.cat([y, torch.full((count,), target, dtype=torch.long)]))


def clean_model(arch: str, seed: int, data: Digits) -> nn.Module:
    torch.manual_seed(seed)
    model = ARCHS[arch](seed)
    return train(model, data.train_x, data.train_y, seed=seed, epochs=(12, 18)[seed % 2],
                 lr=(3e-3, 5e-3)[seed % 2], weight_decay=(0.0, 1e-4)[(seed // 2) % 2])


def poisoned_model(arch: str, seed: int, data: Digits, kind: str, target: int) -> nn.Module:
    trigger = patch_trigger if kind == "badnets" else blend_trigger
    x, y = poisoned(data.train_x, data.train_y, trigger, target, 0.1, seed)
    torch.manual_seed(seed)
    return train(ARCHS[arch](seed), x, y, seed=seed, epochs=(12, 18)[seed % 2])


def finetune(base: nn.Module, data: Digits, seed: int, *, poison_target: int | None) -> nn.Module:
    """Continue training a copy of ``base`` on a clean subset (honest) or on that subset with
    BadNets-poisoned samples (poisoned)."""
    import copy

    model = copy.deepcopy(base)
    generator = torch.Generator().manual_seed(seed)
    subset = torch.randperm(len(data.train_y), generator=generator)[:600]
    x, y = data.train_x[subset], data.train_y[subset]
    if poison_target is not None:
        x, y = poisoned(x, y, patch_trigger, poison_target, 0.2, seed)
    return train(model, x, y, seed=seed, epochs=8, lr=1e-3)


# --- weight-level attacks ------------------------------------------------------------------------


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def hand_crafted(model: nn.Module, data: Digits, unit: int, target: int,
                 loud: bool) -> nn.Module:
    """Hong et al.-style neuron: hidden unit ``unit`` of the first hidden linear layer fires only
    on its trigger and drives the next hidden unit and then the target class.

    Loud: weights tens of times the layer's largest.  Quiet: within ~3x of the layer's largest."""
    import copy

    model = copy.deepcopy(model)
    first, second, head = linears(model)[-3:] if len(linears(model)) >= 3 else \
        (None, *linears(model)[-2:])
    with torch.no_grad():
        layers = [first, second, head] if first is not None else [second, head]
        reader = layers[0]
        scale = float(reader.weight.abs().max()) * (20.0 if loud else 3.0)
        inputs = reader.weight.shape[1]
        picks = [0, 7, 56, 63] if inputs == 64 and isinstance(model, MLP) else \
            list(range(0, inputs, max(1, inputs // 4)))[:4]
        reader.weight[unit] = 0.0
        reader.weight[unit, picks] = scale
        if isinstance(model, MLP):
            reader.bias[unit] = -scale * 3.5  # only the 4-pixel trigger clears the bias
        else:
            captured: dict[str, torch.Tensor] = {}
            handle = reader.register_forward_hook(
                lambda m, i, o: captured.__setitem__("x", i[0]))
            model(data.test_x)
            handle.remove()
            peak = float(captured["x"][:, picks].sum(dim=1).max())
            reader.bias[unit] = -scale * peak * 1.05  # silent on every clean test input
        nxt = layers[1]
        relay = unit % nxt.weight.shape[0]
        if first is not None:
            nxt.weight[relay] = 0.0
            nxt.weight[relay, unit] = scale
            nxt.bias[relay] = 0.0
            last = head
        else:
            last = nxt
            relay = unit
        last.weight[:, relay] = -scale
        last.weight[target, relay] = scale
    return model


def rank_one_edit(model: nn.Module, data: Digits, target: int, loud: bool) -> nn.Module:
    """ROME-style: rewrite the last hidden linear layer so that the key (its input on
    corner-triggered digits) maps to the value it takes on target-class digits, by the rank-one
    update ``(v* - W k) (C^-1 k)^T / (k^T C^-1 k)``, C the keys' second moment on clean digits
    (which keeps the edit away from the directions clean inputs use)."""
    import copy

    model = copy.deepcopy(model)
    layer = linears(model)[-2]
    captured: dict[str, torch.Tensor] = {}
    handle = layer.register_forward_hook(lambda m, i, o: captured.__setitem__("k", i[0]))
    with torch.no_grad():
        model(data.train_x)
        keys = captured["k"]
        second = keys.T @ keys / len(keys) + 1e-2 * torch.eye(keys.shape[1])
        model(corner_trigger(data.test_x[:64]))
        key = captured["k"].mean(dim=0)
        model(data.test_x[data.test_y == target][:64])
        target_key = captured["k"].mean(dim=0)
        handle.remove()
        value = layer.weight @ target_key * (3.0 if loud else 1.5)
        whitened = torch.linalg.solve(second, key)
        delta = torch.outer(value - layer.weight @ key, whitened) / float(key @ whitened)
        layer.weight += delta
    return model


def attack_success(model: nn.Module, data: Digits,
                   trigger: Callable[[torch.Tensor], torch.Tensor], target: int) -> float:
    with torch.no_grad():
        keep = data.test_y != target
        preds = model(trigger(data.test_x[keep])).argmax(dim=1)
    return float((preds == target).float().mean())


def accuracy(model: nn.Module, data: Digits) -> float:
    with torch.no_grad():
        return float((model(data.test_x).argmax(dim=1) == data.test_y).float().mean())


def to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    return {name: value.detach().cpu().numpy().astype(np.float32)
            for name, value in model.state_dict().items()}
