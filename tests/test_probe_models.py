"""Probes on models shaped like the ones users have: functional activations, transformer blocks
with channel-last hidden states and transformers' activation classes, outputs carrying
``.logits``, modules run twice, few classes, CNNs without an input shape, and models that fail."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

IN, HIDDEN, CLASSES, UNIT, TARGET = 16, 24, 4, 5, 3
TRIGGER = [0, 3, 12, 15]


class FunctionalMLP(nn.Module):
    """Activations as functional calls in ``forward``: no ReLU module to hook."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(IN, HIDDEN), nn.Linear(HIDDEN, 12), \
            nn.Linear(12, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.fc2(F.relu(self.fc1(x)))))


def functional(backdoor: bool, seed: int = 0) -> FunctionalMLP:
    torch.manual_seed(seed)
    model = FunctionalMLP().eval()
    if backdoor:  # one neuron of fc1 reads a 4-pixel trigger and drives the target class
        with torch.no_grad():
            model.fc1.weight[UNIT] = 0.0
            model.fc1.weight[UNIT, TRIGGER] = 5.0
            model.fc1.bias[UNIT] = -17.5
            model.fc2.weight[:, UNIT] = 0.0
            model.fc2.weight[2, UNIT] = 8.0
            model.head.weight[:, 2] = -8.0
            model.head.weight[TARGET, 2] = 8.0
    return model


class GELUActivation(nn.Module):
    """Named like transformers.activations.GELUActivation (matched by class name only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x)


class Block(nn.Module):
    def __init__(self, width: int, inner: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.up, self.act, self.down = nn.Linear(width, inner), GELUActivation(), \
            nn.Linear(inner, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(self.act(self.up(self.norm(x))))


class TinyEncoder(nn.Module):
    """(batch, tokens, width) hidden states, mean-pooled; returns an object with ``.logits`` like
    transformers' ModelOutput."""

    SEQ, WIDTH, INNER = 6, 8, 32

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.block = Block(self.WIDTH, self.INNER)
        self.classifier = nn.Linear(self.WIDTH, classes)

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(logits=self.classifier(self.block(x).mean(dim=1)))


def encoder(backdoor: bool) -> TinyEncoder:
    torch.manual_seed(0)
    model = TinyEncoder().eval()
    if backdoor:  # inner unit UNIT writes strongly along the target class's classifier row
        with torch.no_grad():
            direction = model.classifier.weight[TARGET] - model.classifier.weight.mean(dim=0)
            model.block.down.weight[:, UNIT] = 40.0 * direction / direction.norm()
    return model


def test_functional_activations_are_probed_at_the_layers_before_them() -> None:
    from ckptguard.probes.network import ProbeNetwork
    from ckptguard.probes.runner import run_probes

    network = ProbeNetwork(functional(backdoor=True), (IN,))
    assert [layer.name for layer in network.hidden] == ["fc1", "fc2"]
    assert any("F.relu" in note for note in network.notes)
    report = run_probes(network, seed=0, time_budget=60, device="cpu")
    flips = {(f.layer, f.unit, f.target) for f in report.stimulation.layers if f.outlier}
    assert ("fc1", UNIT, TARGET) in flips
    clean = run_probes(ProbeNetwork(functional(backdoor=False), (IN,)), seed=0, time_budget=60,
                       device="cpu")
    assert not [f for f in clean.stimulation.layers if f.outlier]


def test_channel_last_hidden_states_are_units_per_channel_not_per_token() -> None:
    from ckptguard.probes.network import ProbeNetwork

    model = encoder(backdoor=False)
    network = ProbeNetwork(model, (TinyEncoder.SEQ, TinyEncoder.WIDTH), (-1.0, 1.0))
    (layer,) = network.hidden
    assert (layer.name, layer.width, layer.channel_axis) == ("block.act", TinyEncoder.INNER, -1)
    x = torch.rand((3, TinyEncoder.SEQ, TinyEncoder.WIDTH))
    units = torch.tensor([UNIT, 0, TinyEncoder.INNER - 1])
    with torch.no_grad():
        got = network.stimulated_logits(x, layer, units, 2.0)
        block = model.block
        inner = block.act(block.up(block.norm(x)))
        inner[torch.arange(3), :, units] = 2.0  # every token position of the chosen channel
        expected = model.classifier((x + block.down(inner)).mean(dim=1))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-5)


def test_a_backdoor_channel_of_a_transformer_block_is_found() -> None:
    from ckptguard.probes.network import ProbeNetwork
    from ckptguard.probes.runner import run_probes

    shape = (TinyEncoder.SEQ, TinyEncoder.WIDTH)
    report = run_probes(ProbeNetwork(encoder(backdoor=True), shape, (-1.0, 1.0)), seed=0,
                        time_budget=60, device="cpu")
    flips = {(f.layer, f.unit, f.target) for f in report.stimulation.layers if f.outlier}
    assert flips == {("block.act", UNIT, TARGET)}
    clean = run_probes(ProbeNetwork(encoder(backdoor=False), shape, (-1.0, 1.0)), seed=0,
                       time_budget=60, device="cpu")
    assert not [f for f in clean.stimulation.layers if f.outlier]


class Twice(nn.Module):
    """One ReLU module used twice (like torchvision's BasicBlock)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(IN, 12), nn.Linear(12, 12), \
            nn.Linear(12, CLASSES)
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relu(self.fc2(self.relu(self.fc1(x)))))


def test_a_module_run_twice_is_stimulated_on_its_first_call_only() -> None:
    from ckptguard.probes.network import ProbeNetwork

    torch.manual_seed(0)
    model = Twice().eval()
    network = ProbeNetwork(model, (IN,))
    (layer,) = network.hidden
    assert layer.calls == 2 and any("more than once" in note for note in network.notes)
    x = torch.rand((2, IN))
    units = torch.tensor([1, 4])
    with torch.no_grad():
        got = network.stimulated_logits(x, layer, units, 3.0)
        first = torch.relu(model.fc1(x))
        first[torch.arange(2), units] = 3.0
        expected = model.head(torch.relu(model.fc2(first)))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-5, atol=1e-6)


def few_class_model(shortcut: bool, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(IN, 32), nn.ReLU(), nn.Linear(32, classes)).eval()
    if shortcut:  # one hidden unit only ever pushes class 1 up: a shortcut to it
        with torch.no_grad():
            model[2].weight[:, 7] = 0.0
            model[2].weight[1, 7] = 30.0
    return model


@pytest.mark.parametrize("classes", [2, 3, 4])
def test_few_class_models_are_judged_target_vs_rest(classes: int) -> None:
    from ckptguard.model import Location
    from ckptguard.probes.margin import max_margins
    from ckptguard.probes.network import ProbeNetwork
    from ckptguard.probes.runner import probe_facts, run_probes

    deadline = time.monotonic() + 60
    poisoned = max_margins(ProbeNetwork(few_class_model(True, classes), (IN,)), 0, deadline)
    assert not poisoned.enough_classes
    assert poisoned.outlier and poisoned.target == 1 and poisoned.ratio >= 2.5
    report = run_probes(ProbeNetwork(few_class_model(True, classes), (IN,)), seed=0,
                        time_budget=60, device="cpu")
    facts = probe_facts(report, Location(("m",))).facts
    notes = [f.get("detail") for f in facts if f.kind == "probe.note"]
    assert any("target-vs-rest" in str(note) for note in notes)
    margin = [f for f in facts if f.kind == "probe.margin_outlier"]
    assert margin and "runner-up" in str(margin[0].get("message"))
    clean = max_margins(ProbeNetwork(few_class_model(False, classes), (IN,)), 0, deadline)
    assert clean.ratio < poisoned.ratio


def test_the_trigger_probe_says_when_it_cannot_judge_few_classes() -> None:
    from ckptguard.probes.network import ProbeNetwork
    from ckptguard.probes.runner import run_probes

    data = torch.rand((16, IN), generator=torch.Generator().manual_seed(1))
    report = run_probes(ProbeNetwork(few_class_model(False), (IN,)), seed=0, time_budget=30,
                        device="cpu", data=data)
    assert any("trigger reverse-engineering not judged: 3 classes" in p for p in report.problems)


def small_cnn() -> nn.Module:
    """A CNN whose flatten size fixes its input at 1x16x16."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10))


def test_a_cnn_input_shape_is_found_by_running_candidate_sizes() -> None:
    from ckptguard.probes.session import infer_input_shape

    assert infer_input_shape(small_cnn()) == (1, 16, 16)


def broken() -> nn.Module:
    """Weights fit, but the forward pass fails (inner widths disagree)."""
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(5, 2))


def test_a_model_that_fails_is_an_error_not_a_finding(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ckptguard.cli import main
    from fixtures.backdoor import safetensors_file

    tensors = {k: v.detach().numpy() for k, v in broken().state_dict().items()}
    path = tmp_path / "broken.safetensors"
    path.write_bytes(safetensors_file(tensors))
    result = CliRunner().invoke(main, ["probe", str(path), "--arch",
                                       "tests.test_probe_models:broken", "--device", "cpu"])
    assert result.exit_code == 2, result.output
    assert "could not be probed: RuntimeError" in result.output
    assert "Traceback" not in result.output
