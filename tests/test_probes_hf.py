"""ckptguard probe on Hugging Face classifier folders: built from config.json by transformers
(never remote code, never pickle weights), token inputs with attention masks, and the token
trigger search that tells a text-BadNets tiny BERT from its clean twin."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from click.testing import CliRunner  # noqa: E402

from ckptguard.cli import main  # noqa: E402
from ckptguard.probes.hf_model import (  # noqa: E402
    build_text_network,
    read_text,
    read_vocabulary,
)
from ckptguard.probes.network import ProbeError  # noqa: E402
from ckptguard.probes.session import ProbeOptions, probe_file  # noqa: E402
from tests import hf_text_models as zoo  # noqa: E402

CLASSES, TARGET = 2, 0


def cli(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(main, ["probe", *args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    folders = {}
    for name, backdoor in (("clean", False), ("backdoor", True)):
        model = zoo.train(CLASSES, seed=0, backdoor=backdoor, target=TARGET)
        folders[name] = zoo.save(model, root / name)
    folders["data"] = zoo.clean_text(root / "clean.txt", CLASSES, seed=0)
    return folders


def untrained(folder: Path, classes: int = 3) -> Path:
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(zoo.config(classes)).eval()
    return zoo.save(model, folder)


def test_the_folder_is_built_from_its_config_with_masked_token_inputs(tmp_path: Path) -> None:
    folder = untrained(tmp_path / "m")
    network = build_text_network(folder, "cpu")
    assert network.classes == 3
    assert network.input_shape[1] == 32  # input embeddings: (tokens, hidden)
    gelu = [layer for layer in network.hidden if layer.name.endswith("intermediate_act_fn")]
    assert len(gelu) == 2 and all(layer.channel_axis == -1 and layer.width == 64
                                  for layer in gelu)
    tokenizer, vocabulary = read_vocabulary(folder, network.config)
    (tmp_path / "d.txt").write_text("w1 w2\nw3 w4 w5 w6 w7 w8\n", encoding="utf-8")
    data = read_text(str(tmp_path / "d.txt"), tokenizer, vocabulary)
    assert data.dtype == torch.long and tuple(data.shape) == (2, 2, 8)
    assert data[0, 1].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # [CLS] w1 w2 [SEP] + padding
    # padding is masked: the short example's logits do not depend on what fills the padding
    noisy = data.clone()
    noisy[0, 0, 4:] = 50
    with torch.no_grad():
        assert torch.allclose(network.logits(data)[0], network.logits(noisy)[0], atol=1e-5)
        reference = network.inner(input_ids=data[:, 0], attention_mask=data[:, 1]).logits
        assert torch.allclose(network.logits(data), reference)


def test_pickle_weights_are_refused(tmp_path: Path) -> None:
    folder = untrained(tmp_path / "m")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"not read")
    result = cli(str(folder))
    assert result.exit_code == 2
    assert "pytorch_model.bin" in result.output and "never loaded" in result.output


@pytest.mark.parametrize("change", [
    {"auto_map": {"AutoModelForSequenceClassification": "modeling_evil.EvilModel"}},
    {"architectures": ["EvilForSequenceClassification"]},
])
def test_configs_that_need_remote_code_are_refused(tmp_path: Path, change: dict) -> None:
    folder = untrained(tmp_path / "m")
    planted = folder / "modeling_evil.py"
    canary = tmp_path / "ran"
    planted.write_text(f"open({str(canary)!r}, 'w').write('x')\n", encoding="utf-8")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(change)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    result = cli(str(folder))
    assert result.exit_code == 2, result.output
    assert "repository" in result.output
    assert not canary.exists() and "modeling_evil" not in sys.modules


def test_model_errors_exit_2(tmp_path: Path) -> None:
    folder = untrained(tmp_path / "m")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["hidden_size"] = 48  # weights no longer fit the architecture
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    result = cli(str(folder))
    assert result.exit_code == 2 and "ckptguard probe:" in result.output
    not_a_model = tmp_path / "empty"
    not_a_model.mkdir()
    assert cli(str(not_a_model)).exit_code == 2
    (folder / "tokenizer.json").unlink()
    config["hidden_size"] = 32
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    (tmp_path / "d.txt").write_text("w1\nw2\n", encoding="utf-8")
    with pytest.raises(ProbeError, match=r"tokenizer\.json"):
        probe_file(str(folder), ProbeOptions(data=str(tmp_path / "d.txt"), device="cpu"))


def test_data_free_probe_runs_on_an_untrained_classifier(tmp_path: Path) -> None:
    result = cli(str(untrained(tmp_path / "m")), "--device", "cpu", "--format", "json",
                 "--time-budget", "60")
    assert result.exit_code in (0, 1), result.output
    report = json.loads(result.output)
    notes = [f["message"] for f in report["findings"] if f["rule_id"] == "BKD011"]
    assert any("config.json" in note for note in notes)
    assert any("target-vs-rest over 3 classes" in note for note in notes)


def _trigger_findings(folder: Path, data: Path) -> list:  # type: ignore[type-arg]
    result = probe_file(str(folder), ProbeOptions(data=str(data), device="cpu",
                                                  time_budget=120.0, seed=0))
    assert not [f for f in result.findings if f.rule_id == "BKD009"], result.findings
    return [f for f in result.findings if f.rule_id == "BKD010"]


def test_token_trigger_search_flags_text_badnets_and_not_its_clean_twin(
        trained: dict[str, Path]) -> None:
    assert _trigger_findings(trained["clean"], trained["data"]) == []
    found = _trigger_findings(trained["backdoor"], trained["data"])
    assert len(found) == 1
    evidence = found[0].evidence_dict()
    assert evidence["target"] == str(TARGET), evidence
    assert float(evidence["success"]) >= 0.9


def test_cli_exit_codes_follow_the_token_trigger(trained: dict[str, Path]) -> None:
    data = str(trained["data"])
    clean = cli(str(trained["clean"]), "--data", data, "--device", "cpu", "--fail-on", "medium")
    assert clean.exit_code == 0, clean.output
    poisoned = cli(str(trained["backdoor"]), "--data", data, "--device", "cpu", "--fail-on",
                   "medium")
    assert poisoned.exit_code == 1, poisoned.output
    assert "BKD010" in poisoned.output
    # At the default gate too: the planted token never occurs in the clean data and no other
    # class has a trigger of its own, so the finding is high without another probe agreeing.
    assert cli(str(trained["clean"]), "--data", data, "--device", "cpu").exit_code == 0
    default = cli(str(trained["backdoor"]), "--data", data, "--device", "cpu", "--format",
                  "json")
    assert default.exit_code == 1, default.output
    found = [f for f in json.loads(default.output)["findings"] if f["rule_id"] == "BKD010"]
    assert [f["severity"] for f in found] == ["high"], found


def test_a_base_model_without_a_head_is_refused(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = transformers.BertModel(zoo.config(2)).eval()
    folder = zoo.save(model, tmp_path / "base")
    result = cli(str(folder))
    assert result.exit_code == 2
    assert "without a classification head" in result.output
