"""One probe of one model file, from path to ``ScanResult`` (what ``ckptguard probe`` calls).

The model's tensors are read by ckptguard's own parsers; the architecture comes from ``--arch``
(code the user trusts) or from the ONNX graph itself, interpreted op by op.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ckptguard import __version__
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.model import ArtifactSummary, ScanResult, Severity
from ckptguard.probes.network import ProbeError, ProbeNetwork
from ckptguard.probes.thresholds import DEFAULT_TIME_BUDGET

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ckptguard.probes.runner import ProbeReport


@dataclass(frozen=True)
class ProbeOptions:
    arch: str | None = None
    device: str = "auto"
    time_budget: float = DEFAULT_TIME_BUDGET
    seed: int = 0
    # .npy file of typical inputs (read with allow_pickle=False); for a Hugging Face model
    # folder, a UTF-8 text file with one example per line
    data: str | None = None
    input_shape: tuple[int, ...] | None = None
    input_range: tuple[float, float] = (0.0, 1.0)
    fail_on: Severity = Severity.HIGH


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def build_network(path: Path, options: ProbeOptions, device: str) -> ProbeNetwork:
    from ckptguard.probes.network import load_architecture, load_weights, state_dict
    from ckptguard.weights.base import read_base

    if options.arch is None:
        if path.suffix.lower() != ".onnx":
            raise ProbeError("name the architecture with --arch package.module:factory "
                             "(only ONNX graphs carry their own)")
        from ckptguard.probes.onnx_graph import build_module

        module, shape = build_module(path)
        return ProbeNetwork(module, options.input_shape or shape, options.input_range, device)
    module = load_architecture(options.arch, path)
    checkpoint = read_base(str(path), DEFAULT_LIMITS)
    if not checkpoint.usable:
        raise ProbeError(f"no tensors could be read from {path}: {'; '.join(checkpoint.problems)}")
    load_weights(module, state_dict(list(checkpoint.tensors.values())))
    shape = options.input_shape or infer_input_shape(module)
    return ProbeNetwork(module, shape, options.input_range, device)


# Square input sizes tried for a convolutional network whose input size the weights do not say.
CANDIDATE_SIZES = (8, 16, 28, 32, 64, 96, 128, 224)


def infer_input_shape(module: nn.Module) -> tuple[int, ...]:
    """The input shape of an MLP (its first linear layer's width) or of a CNN (its first
    convolution's channels, and the first candidate size that runs through the whole network)."""
    import torch
    from torch import nn

    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            return (sub.in_features,)
        if isinstance(sub, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            for size in CANDIDATE_SIZES:
                shape = (sub.in_channels, *([size] * (sub.weight.dim() - 2)))
                try:
                    with torch.no_grad():
                        out = module.eval()(torch.zeros((1, *shape)))
                except Exception:  # noqa: BLE001 - a size the network rejects: try the next
                    continue
                if getattr(out, "dim", lambda: 0)() == 2:
                    return shape
            break
    raise ProbeError("cannot infer the input shape; pass --input-shape (e.g. 1,8,8)")


def read_data(path: str, shape: tuple[int, ...]) -> torch.Tensor:
    import numpy as np
    import torch

    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise ProbeError(f"--data {path}: {exc}") from None
    if array.size % max(1, int(np.prod(shape))) != 0:
        raise ProbeError(f"--data {path} of shape {array.shape} does not hold inputs of shape "
                         f"{shape}")
    return torch.from_numpy(np.asarray(array, dtype=np.float32).reshape(-1, *shape))


def probe_file(path: str, options: ProbeOptions) -> ScanResult:
    """Probe one model and report the findings through the backdoor rules."""
    from ckptguard.api import load_rules
    from ckptguard.config import Config
    from ckptguard.facts import Artifact
    from ckptguard.probes.device import configure
    from ckptguard.probes.runner import probe_facts, run_probes
    from ckptguard.source import FileSource

    if not torch_available():
        raise ProbeError("ckptguard probe needs torch: pip install 'ckptguard[probes]'")
    target = Path(path)
    if target.is_dir():
        from ckptguard.probes.hf_model import is_model_folder

        if not is_model_folder(target):
            raise ProbeError(f"{path} is a folder without config.json; name a model file, or "
                             "a Hugging Face model folder")
        if options.arch is not None:
            raise ProbeError("--arch does not apply to a Hugging Face model folder (the "
                             "architecture is built from its config.json)")
    device = configure(options.device, options.seed)
    try:
        if target.is_dir():
            report = _probe_folder(target, options, device)
        else:
            network = build_network(target, options, device)
            data = read_data(options.data, network.input_shape) if options.data else None
            report = run_probes(network, seed=options.seed, time_budget=options.time_budget,
                                device=device, data=data)
    except ProbeError:
        raise
    except Exception as exc:  # the model's own code failed: an error, not a verdict
        raise ProbeError(f"the model could not be probed: {type(exc).__name__}: "
                         f"{str(exc)[:400]}") from exc
    source = FileSource(str(target / "model.safetensors" if target.is_dir() else target))
    artifact = Artifact((path,), source)
    output = probe_facts(report, artifact.location)
    rules = load_rules(Config())
    probe_rules = [rule.id for rule in rules.rules.values() if rule.match is not None
                   and str(rule.match.get("fact", "")).startswith("probe.")]
    findings = rules.only(probe_rules).evaluate("probe", artifact, output)
    return ScanResult(findings=tuple(findings),
                      artifacts=(ArtifactSummary((path,), "probe", artifact.source.size),),
                      fail_on=options.fail_on, tool_version=__version__,
                      rules_used=tuple(sorted(probe_rules)))


def _probe_folder(folder: Path, options: ProbeOptions, device: str) -> ProbeReport:
    """A Hugging Face classifier folder: built from config.json, probed on input embeddings and,
    with ``--data`` (text, one example per line), on tokenized text with a token trigger
    search."""
    from functools import partial

    from ckptguard.probes.hf_model import build_text_network, read_text, read_vocabulary
    from ckptguard.probes.runner import run_probes
    from ckptguard.probes.text_trigger import search

    network = build_text_network(folder, device)
    if not options.data:
        return run_probes(network, seed=options.seed, time_budget=options.time_budget,
                          device=device)
    tokenizer, vocabulary = read_vocabulary(folder, network.config)
    data = read_text(options.data, tokenizer, vocabulary)
    token_search = partial(search, network, data, vocabulary, options.seed)
    return run_probes(network, seed=options.seed, time_budget=options.time_budget,
                      device=device, data=data, token_search=token_search)
