"""Hydra/OmegaConf ``_target_`` values in YAML/JSON configs (NeMo archives, repo configs)."""

from __future__ import annotations

import pytest

import ckptguard
from ckptguard.config import Config
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats.hydra_targets import parse_json, parse_yaml, targets
from ckptguard.limits import Limits
from ckptguard.model import Severity
from ckptguard.source import MemorySource
from tests.conftest import FixtureFactory


def _rules(path: object, config: Config | None = None) -> dict[str, Severity]:
    result = ckptguard.scan([path], config)  # type: ignore[list-item]
    return {f.rule_id: f.severity for f in result.findings if f.rule_id.startswith("HYD")}


def test_nemo_archive_targets(make_fixture: FixtureFactory) -> None:
    assert _rules(make_fixture("nemo_clean")) == {}
    assert _rules(make_fixture("nemo_target_payload")) == {"HYD001": Severity.CRITICAL}
    assert _rules(make_fixture("nemo_unlisted_target")) == {"HYD002": Severity.HIGH}
    assert not make_fixture.canary.exists()


def test_repo_json_config_is_judged(make_fixture: FixtureFactory) -> None:
    assert _rules(make_fixture("repo_hydra_payload")) == {"HYD001": Severity.CRITICAL}


def test_configured_allowlist_admits_a_reviewed_target(make_fixture: FixtureFactory) -> None:
    config = Config(allowed_globals=("my_company.asr.CustomJoint",))
    assert _rules(make_fixture("nemo_unlisted_target"), config) == {}


def test_targets_walk_lists_anchors_and_odd_values() -> None:
    shared = {"_target_": "torch.nn.ReLU"}
    data = {"a": shared, "b": shared, "layers": [{"_target_": " x.Y ", "_partial_": True,
                                                   "k": 1}], "c": {"_target_": 5}}
    found, limited = targets(data)
    assert not limited
    assert ("layers[0]", "x.Y", True, ("k",)) in found
    assert ("c", "5", False, ()) in found
    assert sum(1 for item in found if item[1] == "torch.nn.ReLU") == 1  # shared node walked once


def test_yaml_alias_bomb_is_walked_once_per_node() -> None:
    lines = ["a0: &a0 {_target_: os.system}"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 30)]
    artifact = Artifact(("c.yaml",), MemorySource("\n".join(lines).encode()))
    facts = [f for f in parse_yaml(artifact, ParseContext()).facts if f.kind == "hydra.target"]
    assert [f.attrs["target"] for f in facts] == ["os.system"]


def test_files_without_targets_are_not_parsed() -> None:
    artifact = Artifact(("tokenizer.json",), MemorySource(b"{not json at all"))
    assert parse_json(artifact, ParseContext()).facts == []


def test_the_word_alone_is_not_a_target_key() -> None:
    text = b'run: |\n  realpath_target_zip=$(realpath "$x")\n  echo "{{ bad yaml'
    artifact = Artifact(("release.yml",), MemorySource(text))
    assert parse_yaml(artifact, ParseContext()).facts == []


def test_oversized_config_with_a_target_is_a_limit() -> None:
    text = b'{"pad": "' + b"x" * 4096 + b'", "m": {"_target_": "os.system"}}'
    artifact = Artifact(("big.json",), MemorySource(text))
    output = parse_json(artifact, ParseContext(limits=Limits(max_text_file_bytes=1024)))
    assert [f.kind for f in output.facts] == ["limit.hit"]


def test_marker_split_across_search_chunks_is_found(monkeypatch: pytest.MonkeyPatch) -> None:
    import ckptguard.formats.hydra_targets as module

    monkeypatch.setattr(module, "SEARCH_CHUNK", 16)
    text = b'{"padding": 1, "m": {"_target_": "os.system"}}'
    facts = parse_json(Artifact(("c.json",), MemorySource(text)), ParseContext()).facts
    assert [f.attrs["target"] for f in facts] == ["os.system"]
