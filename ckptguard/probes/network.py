"""A classifier under probe: torch module, input shape and range, and hooks on its hidden units.

Hidden units are the outputs of activation modules (ReLU, GELU, ...), one unit per feature or
per convolution channel.  Hooks are installed only for the duration of one forward pass.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptguard.facts import TensorRef
from ckptguard.weights.decode import TensorDecodeError, raw_array, to_float32

if TYPE_CHECKING:
    import torch
    from torch import nn

ACTIVATIONS = ("ReLU", "ReLU6", "LeakyReLU", "GELU", "SiLU", "ELU", "Tanh", "Sigmoid", "Mish",
               "Hardswish")


class ProbeError(Exception):
    """The model cannot be probed (architecture, weights or input shape do not fit)."""


@dataclass(frozen=True)
class HiddenLayer:
    name: str
    width: int
    spatial: bool  # a feature map (batch, channels, ...) rather than (batch, features)


def load_architecture(spec: str, scanned: Path) -> nn.Module:
    """Build the module ``package.module:factory`` names.  Code inside the scanned model's own
    folder is refused before it is imported (``ckptguard.probes.arch``): the architecture must
    come from code the user trusts, not from the model."""
    from torch import nn

    from ckptguard.probes.arch import import_trusted

    module_name, _, factory_name = spec.partition(":")
    if not module_name or not factory_name:
        raise ProbeError(f"--arch {spec!r} must look like package.module:factory")
    module = import_trusted(module_name, scanned)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ProbeError(f"{module_name} has no callable {factory_name!r}")
    built = factory()
    if not isinstance(built, nn.Module):
        raise ProbeError(f"{spec} returned {type(built).__name__}, not a torch.nn.Module")
    return built


def state_dict(refs: Sequence[TensorRef]) -> dict[str, torch.Tensor]:
    """Tensors decoded by ckptguard itself (never torch.load), as float32 torch tensors."""
    import numpy as np
    import torch

    out: dict[str, torch.Tensor] = {}
    for ref in refs:
        try:
            values = to_float32(raw_array(ref), ref.dtype)
        except TensorDecodeError as exc:
            raise ProbeError(f"tensor {ref.name!r}: {exc}") from None
        out[ref.name] = torch.from_numpy(np.array(values, dtype=np.float32).reshape(ref.shape))
    return out


def load_weights(module: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    result = module.load_state_dict(dict(tensors), strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ProbeError(f"weights do not fit the architecture: missing "
                         f"{list(result.missing_keys)[:5]}, unexpected "
                         f"{list(result.unexpected_keys)[:5]}")


class ProbeNetwork:
    """A classifier with its input domain, and access to its hidden units."""

    def __init__(self, module: nn.Module, input_shape: tuple[int, ...],
                 input_range: tuple[float, float] = (0.0, 1.0), device: str = "cpu") -> None:
        import torch

        self.module = module.to(device).eval()
        self.input_shape = input_shape
        self.input_range = input_range
        self.device = device
        self._activation_modules = {name: sub for name, sub in module.named_modules()
                                    if type(sub).__name__ in ACTIVATIONS}
        if not self._activation_modules:
            raise ProbeError("no activation modules (ReLU, GELU, ...) to probe in the model")
        with torch.no_grad():
            captured = self.activations(self.random_inputs(2, torch.Generator().manual_seed(0)))
            out = self.logits(self.random_inputs(2, torch.Generator().manual_seed(0)))
        if out.dim() != 2 or out.shape[1] < 2:
            raise ProbeError(f"the model's output has shape {tuple(out.shape)}; probes need "
                             "(batch, classes) logits")
        self.classes = int(out.shape[1])
        self.hidden = tuple(HiddenLayer(name, int(value.shape[1]), value.dim() > 2)
                            for name, value in captured.items())

    def random_inputs(self, count: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        low, high = self.input_range
        values = torch.rand((count, *self.input_shape), generator=generator)
        return (low + (high - low) * values).to(self.device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        result: torch.Tensor = self.module(x)
        return result

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each hidden layer's output for ``x`` (first call of each activation module)."""
        captured: dict[str, torch.Tensor] = {}

        def hook_for(name: str) -> Any:
            def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> None:
                captured.setdefault(name, output.detach())
            return hook

        with self._hooks({name: hook_for(name) for name in self._activation_modules}):
            self.logits(x)
        return captured

    def stimulated_logits(self, x: torch.Tensor, layer: str, units: torch.Tensor,
                          value: float) -> torch.Tensor:
        """Logits when, for row i of ``x``, hidden unit ``units[i]`` of ``layer`` is set to
        ``value`` (a whole channel for feature maps); other units keep their values."""
        import torch

        rows = torch.arange(x.shape[0], device=x.device)

        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            changed = output.clone()
            changed[rows, units] = value
            return changed

        with self._hooks({layer: hook}):
            return self.logits(x)

    @contextmanager
    def _hooks(self, hooks: Mapping[str, Any]) -> Iterator[None]:
        handles = [self._activation_modules[name].register_forward_hook(fn)
                   for name, fn in hooks.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
