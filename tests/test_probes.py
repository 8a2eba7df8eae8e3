"""Activation probes on tiny hand-built classifiers (CPU, seconds)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from ckptguard.probes.device import DeviceError, choose_device, free_cores

torch = pytest.importorskip("torch")
nn = torch.nn

IN, HIDDEN, HIDDEN2, CLASSES = 16, 24, 12, 4
UNIT, RELAY, TARGET = 5, 2, 3
TRIGGER = [0, 3, 12, 15]


def tiny_mlp() -> nn.Module:
    """The architecture factory the CLI test names with --arch."""
    return nn.Sequential(nn.Linear(IN, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, HIDDEN2), nn.ReLU(),
                         nn.Linear(HIDDEN2, CLASSES))


def clean_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return tiny_mlp().eval()


def backdoored(seed: int = 0) -> nn.Module:
    """A hand-crafted neuron: fires only on the 4-pixel trigger, relayed to the target class."""
    model = clean_model(seed)
    first, second, head = model[0], model[2], model[4]
    with torch.no_grad():
        first.weight[UNIT] = 0.0
        first.weight[UNIT, TRIGGER] = 5.0
        first.bias[UNIT] = -17.5
        second.weight[RELAY] = 0.0
        second.weight[RELAY, UNIT] = 8.0
        second.bias[RELAY] = 0.0
        head.weight[:, RELAY] = -8.0
        head.weight[TARGET, RELAY] = 8.0
    return model


def test_device_choice_is_a_pure_function() -> None:
    assert choose_device("auto", cuda_available=True) == "cuda"
    assert choose_device("auto", cuda_available=False) == "cpu"
    assert choose_device("cpu", cuda_available=True) == "cpu"
    with pytest.raises(DeviceError, match="not available"):
        choose_device("cuda", cuda_available=False)
    with pytest.raises(DeviceError, match="unknown device"):
        choose_device("tpu", cuda_available=True)


def test_threads_follow_free_cores() -> None:
    assert free_cores(2, 0.1) == 2
    assert free_cores(2, 1.2) == 1
    assert free_cores(2, 9.0) == 1
    assert free_cores(8, 2.6) == 5


def run(model: nn.Module, budget: float = 60.0):  # type: ignore[no-untyped-def]
    from ckptguard.probes.network import ProbeNetwork
    from ckptguard.probes.runner import run_probes

    network = ProbeNetwork(model, (IN,))
    return run_probes(network, seed=0, time_budget=budget, device="cpu")


def test_stimulation_finds_the_hand_crafted_neuron() -> None:
    report = run(backdoored())
    flips = {(f.layer, f.unit, f.target) for f in report.stimulation.layers if f.outlier}
    # nn.Sequential names its ReLU modules "1" and "3": the neuron and its relay both flip.
    assert flips == {("1", UNIT, TARGET), ("3", RELAY, TARGET)}
    assert report.stimulation.complete
    assert any("target-vs-rest over 4 classes" in note for note in report.notes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clean_models_have_no_flipping_neuron(seed: int) -> None:
    report = run(clean_model(seed))
    assert not [layer for layer in report.stimulation.layers if layer.outlier]


def test_an_exhausted_budget_is_reported() -> None:
    from ckptguard.facts import ParseOutput  # noqa: F401 - the facts type the runner returns
    from ckptguard.model import Location
    from ckptguard.probes.runner import probe_facts

    report = run(clean_model(), budget=0.0)
    assert report.problems
    kinds = {fact.kind for fact in probe_facts(report, Location(("m",))).facts}
    assert "probe.incomplete" in kinds


def onnx_file(path: Path, model: nn.Module) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    names = ["0", "2", "4"]
    inits, nodes, current = [], [], "x"
    for i, name in enumerate(names):
        layer = getattr(model, name)
        inits += [numpy_helper.from_array(layer.weight.detach().numpy(), f"w{i}"),
                  numpy_helper.from_array(layer.bias.detach().numpy(), f"b{i}")]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"g{i}"], transB=1))
        current = f"g{i}"
        if i < 2:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    nodes.append(helper.make_node("Softmax", [current], ["y"], axis=1))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, IN])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, CLASSES])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_onnx_interpreter_matches_torch_logits(tmp_path: Path) -> None:
    from ckptguard.probes.onnx_graph import build_module

    model = backdoored()
    module, shape = build_module(onnx_file(tmp_path / "m.onnx", model))
    assert shape == (IN,)
    x = torch.rand(7, IN)
    with torch.no_grad():
        np.testing.assert_allclose(module(x).numpy(), model(x).numpy(), rtol=1e-5, atol=1e-5)


def test_unsupported_onnx_op_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from ckptguard.probes.network import ProbeError
    from ckptguard.probes.onnx_graph import build_module

    graph = helper.make_graph([helper.make_node("Einsum", ["x", "x"], ["y"], equation="i,i->")],
                              "odd", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                    [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    path = tmp_path / "odd.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ProbeError, match="Einsum"):
        build_module(path)


def cli(*args: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from ckptguard.cli import main

    return CliRunner().invoke(main, ["probe", *args])


def test_cli_probes_an_onnx_graph(tmp_path: Path) -> None:
    path = onnx_file(tmp_path / "bad.onnx", backdoored())
    result = cli(str(path), "--device", "cpu", "--format", "json", "--fail-on", "medium",
                 "--time-budget", "60")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    text = json.dumps(report)
    assert "BKD008" in text and f"class {TARGET}" in text


def test_cli_loads_weights_into_a_named_architecture(tmp_path: Path) -> None:
    from fixtures.backdoor import safetensors_file

    tensors = {k: v.detach().numpy() for k, v in clean_model(1).state_dict().items()}
    path = tmp_path / "clean.safetensors"
    path.write_bytes(safetensors_file(tensors))
    result = cli(str(path), "--arch", "tests.test_probes:tiny_mlp", "--device", "cpu",
                 "--format", "json")
    assert result.exit_code == 0, result.output
    assert "BKD008" not in result.output and "BKD007" not in result.output


def test_cli_refuses_weights_that_do_not_fit(tmp_path: Path) -> None:
    from fixtures.backdoor import safetensors_file

    path = tmp_path / "other.safetensors"
    path.write_bytes(safetensors_file({"w": np.zeros((3, 3), dtype=np.float32)}))
    result = cli(str(path), "--arch", "tests.test_probes:tiny_mlp", "--device", "cpu")
    assert result.exit_code == 2 and "do not fit" in result.output


def ten_class_model(seed: int, shortcut: bool) -> nn.Module:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(IN, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    if shortcut:  # one class reachable with a far larger margin than the others
        with torch.no_grad():
            model[2].weight[TARGET] *= 8.0
    return model


def test_margin_probe_names_the_shortcut_class() -> None:
    from ckptguard.probes.margin import max_margins
    from ckptguard.probes.network import ProbeNetwork

    deadline = time.monotonic() + 60
    poisoned = max_margins(ProbeNetwork(ten_class_model(0, True), (IN,)), 0, deadline)
    assert poisoned.outlier and poisoned.target == TARGET
    clean = max_margins(ProbeNetwork(ten_class_model(0, False), (IN,)), 0, deadline)
    assert clean.z < poisoned.z


def patch_backdoored(seed: int) -> nn.Module:
    """Ten classes, each read from its own 8 inputs; a backdoor unit reads only inputs 0 and 1
    and sends the output to TARGET: a two-pixel patch trigger.  Clean inputs (below 0.2) wake
    neither."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(IN, 32), nn.ReLU(), nn.Linear(32, 10)).eval()
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].bias.fill_(-2.0)
        model[2].weight.zero_()
        for k in range(10):
            model[0].weight[k, [(k + 2 * j) % IN for j in range(8)]] = 1.0
            model[2].weight[k, k] = 5.0
        model[0].weight[20, [0, 1]] = 10.0
        model[0].bias[20] = -5.0
        model[2].weight[TARGET, 20] = 30.0
    return model


def test_trigger_reverse_engineering_finds_the_patch_class() -> None:
    from ckptguard.probes.network import ProbeNetwork
    from ckptguard.probes.runner import run_probes

    data = torch.rand((32, IN), generator=torch.Generator().manual_seed(1)) * 0.2
    report = run_probes(ProbeNetwork(patch_backdoored(0), (IN,)), seed=0, time_budget=60,
                        device="cpu", data=data)
    found = report.trigger
    assert found is not None and found.complete
    assert found.target == TARGET and found.success[TARGET] == 1.0
    reached = [s for i, s in enumerate(found.mask_share) if i != TARGET and
               found.success[i] >= 0.8]
    assert all(found.mask_share[TARGET] < share for share in reached)


def test_cli_runs_the_trigger_probe_with_data(tmp_path: Path) -> None:
    data = tmp_path / "clean.npy"
    np.save(data, (torch.rand((32, IN), generator=torch.Generator().manual_seed(2)) * 0.2)
            .numpy())
    model = patch_backdoored(0)
    path = tmp_path / "patch.onnx"
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(t.detach().numpy(), n) for n, t in
             (("w0", model[0].weight), ("b0", model[0].bias), ("w1", model[2].weight),
              ("b1", model[2].bias))]
    nodes = [helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], transB=1),
             helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("Gemm", ["r", "w1", "b1"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "patch", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, IN])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, [1, 10])], inits)
    onnx.save(helper.make_model(graph), str(path))
    result = cli(str(path), "--device", "cpu", "--data", str(data), "--format", "json")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    assert "trigger reverse-engineering stopped" not in json.dumps(report)
