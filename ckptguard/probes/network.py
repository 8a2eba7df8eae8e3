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

# Activation modules by class name: torch's, and those of transformers (matched by name, so
# transformers is never imported for this).
ACTIVATIONS = frozenset((
    "ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "GELU", "SiLU", "ELU", "CELU", "SELU", "Tanh",
    "Sigmoid", "Mish", "Hardswish", "Hardsigmoid", "Hardtanh", "Softplus", "GLU",
    # transformers.activations
    "GELUActivation", "NewGELUActivation", "FastGELUActivation", "QuickGELUActivation",
    "ClippedGELUActivation", "AccurateGELUActivation", "GELUTanh", "PytorchGELUTanh",
    "SiLUActivation", "MishActivation", "ReLUSquaredActivation", "LaplaceActivation",
    "XIELUActivation",
))
# Layers whose outputs stand in for hidden units when the activations are functional calls
# (``F.relu`` in ``forward``): the pre-activations, one unit per output feature or channel.
PRODUCERS = frozenset(("Linear", "Conv1d", "Conv2d", "Conv3d", "Conv1D"))
CONVOLUTIONS = frozenset(("Conv1d", "Conv2d", "Conv3d"))


class ProbeError(Exception):
    """The model cannot be probed (architecture, weights or input shape do not fit)."""


@dataclass(frozen=True)
class HiddenLayer:
    name: str
    width: int
    spatial: bool  # units repeat over positions (feature maps, token positions)
    channel_axis: int = 1  # where the units are: 1 (batch, channels, ...) or -1 (channel-last)
    calls: int = 1  # times the module runs in one forward pass (only the first is probed)


def channel_axis(shape: tuple[int, ...], convolutional: bool) -> int:
    """Units of a 2-D output are its columns.  A 3-D or larger output of a network with
    convolutions is (batch, channels, positions...); without convolutions it is a transformer's
    (batch, tokens, channels): the units are the last axis, shared by every token position."""
    if len(shape) <= 2:
        return 1
    return 1 if convolutional else -1


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
        self.notes: list[str] = []  # how the model was adapted, for the report
        self._hooked = {name: sub for name, sub in module.named_modules()
                        if type(sub).__name__ in ACTIVATIONS}
        if not self._hooked:
            self._hooked = _producers(module)
            if not self._hooked:
                raise ProbeError("no activation modules (ReLU, GELU, ...) and no linear or "
                                 "convolution layers to probe in the model")
            self.notes.append(
                f"no activation modules (functional activations such as F.relu in forward): "
                f"probed the pre-activation outputs of {len(self._hooked)} linear/convolution "
                "layers instead")
        convolutional = any(type(sub).__name__ in CONVOLUTIONS for sub in module.modules())
        with torch.no_grad():
            sample = self.random_inputs(2, torch.Generator().manual_seed(0))
            captured, calls = self._capture(sample)
            out = self.logits(sample)
        if out.dim() != 2 or out.shape[1] < 2:
            raise ProbeError(f"the model's output has shape {tuple(out.shape)}; probes need "
                             "(batch, classes) logits")
        self.classes = int(out.shape[1])
        layers = []
        for name, value in captured.items():
            axis = channel_axis(tuple(value.shape), convolutional)
            layers.append(HiddenLayer(name, int(value.shape[axis]), value.dim() > 2, axis,
                                      calls[name]))
        self.hidden = tuple(layers)
        repeated = [layer.name for layer in layers if layer.calls > 1]
        if repeated:
            self.notes.append(f"{len(repeated)} activation module(s) run more than once per "
                              f"forward pass ({', '.join(repeated[:3])}): only their first call "
                              "is probed")

    def random_inputs(self, count: int, generator: torch.Generator) -> torch.Tensor:
        import torch

        low, high = self.input_range
        values = torch.rand((count, *self.input_shape), generator=generator)
        return (low + (high - low) * values).to(self.device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        result = self.module(x)
        logits = getattr(result, "logits", result)  # transformers' ModelOutput
        if isinstance(logits, (tuple, list)):
            logits = logits[0]
        return logits  # type: ignore[no-any-return]

    def _capture(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        captured: dict[str, torch.Tensor] = {}
        calls: dict[str, int] = {}

        def hook_for(name: str) -> Any:
            def hook(_module: Any, _inputs: Any, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1
                if name not in captured and hasattr(output, "detach"):
                    captured[name] = output.detach()
            return hook

        with self._hooks({name: hook_for(name) for name in self._hooked}):
            self.logits(x)
        return captured, calls

    def activations(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each hidden layer's output for ``x`` (first call of each activation module)."""
        return self._capture(x)[0]

    def unit_view(self, layer: HiddenLayer, values: torch.Tensor) -> torch.Tensor:
        """``values`` of ``layer`` as (batch, units, positions...)."""
        return values.movedim(layer.channel_axis, 1) if layer.channel_axis != 1 else values

    def stimulated_logits(self, x: torch.Tensor, layer: HiddenLayer, units: torch.Tensor,
                          value: float) -> torch.Tensor:
        """Logits when, for row i of ``x``, hidden unit ``units[i]`` of ``layer`` is set to
        ``value`` (at every position for feature maps and token sequences) on the module's
        first call; other units keep their values."""
        import torch

        rows = torch.arange(x.shape[0], device=x.device)
        seen = [0]

        def hook(_module: Any, _inputs: Any, output: torch.Tensor) -> torch.Tensor | None:
            seen[0] += 1
            if seen[0] > 1:
                return None
            changed = output.clone()
            self.unit_view(layer, changed)[rows, units] = value
            return changed

        with self._hooks({layer.name: hook}):
            return self.logits(x)

    @contextmanager
    def _hooks(self, hooks: Mapping[str, Any]) -> Iterator[None]:
        handles = [self._hooked[name].register_forward_hook(fn) for name, fn in hooks.items()]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()


def _producers(module: nn.Module) -> dict[str, nn.Module]:
    """Linear and convolution layers, except the last one (it produces the logits)."""
    found = {name: sub for name, sub in module.named_modules()
             if type(sub).__name__ in PRODUCERS}
    names = list(found)
    return {name: found[name] for name in names[:-1]}
