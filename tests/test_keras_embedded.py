"""TorchModuleWrapper archives are decoded and scanned as members; Lambda/function objects naming
Keras loaders and safety switches are stated and judged (KER007, KER008)."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats.keras_embedded import function_reference, safe_mode_argument
from ckptguard.formats.keras_fmt import parse
from ckptguard.limits import Limits
from ckptguard.model import Severity
from ckptguard.source import MemorySource
from fixtures.registry import all_fixtures
from tests.conftest import FixtureFactory


def _config(layer: dict[str, object]) -> bytes:
    return json.dumps({"module": "keras", "class_name": "Sequential",
                       "config": {"name": "s", "layers": [layer]}}).encode()


def _wrapper(module: object) -> dict[str, object]:
    return {"module": "keras.layers", "class_name": "TorchModuleWrapper",
            "config": {"name": "tmw", "module": module}}


def test_clean_wrapped_module_drops_to_low(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("keras_zip_torch_wrapper_clean")])
    found = [f for f in result.findings if f.rule_id == "KER007"]
    assert [f.severity for f in found] == [Severity.LOW]
    members = {a.chain[-1] for a in result.artifacts}
    assert "<TorchModuleWrapper torch_module_wrapper>" in members
    assert not result.failed


def test_payload_in_wrapped_module_blocks(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("keras_zip_torch_wrapper_payload")])
    by_rule = {f.rule_id: f for f in result.findings}
    assert by_rule["KER007"].severity == Severity.HIGH
    chain = by_rule["PKL001"].location.chain
    assert chain[1:3] == ("config.json", "<TorchModuleWrapper torch_module_wrapper>")
    assert not make_fixture.canary.exists()


def test_module_is_decoded_into_a_child() -> None:
    raw = b"PK\x03\x04 not really a zip"
    artifact = Artifact(("config.json",), MemorySource(_config(
        _wrapper(base64.b64encode(raw).decode()))))
    output = parse(artifact, ParseContext())
    assert [c.source.read(0, 100) for c in output.children] == [raw]
    fact = next(f for f in output.facts if f.kind == "keras.torch_module")
    assert fact.attrs["size"] == len(raw)
    assert fact.attrs["nested_artifact"] == output.children[0].name


def test_bytes_wrapper_form_is_understood() -> None:
    encoded = base64.b64encode(b"abc").decode()
    artifact = Artifact(("config.json",), MemorySource(_config(_wrapper(
        {"class_name": "__bytes__", "config": {"value": encoded}}))))
    output = parse(artifact, ParseContext())
    assert len(output.children) == 1


def test_oversized_module_is_a_limit_and_not_decoded() -> None:
    encoded = base64.b64encode(bytes(4096)).decode()
    artifact = Artifact(("config.json",), MemorySource(_config(_wrapper(encoded))))
    output = parse(artifact, ParseContext(limits=Limits(max_member_size=1024)))
    assert output.children == []
    assert any(f.kind == "limit.hit" for f in output.facts)
    fact = next(f for f in output.facts if f.kind == "keras.torch_module")
    assert fact.attrs["nested_artifact"] == "" and "max_member_size" in fact.attrs["problem"]


def test_undecodable_module_stays_high(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("keras_zip_torch_wrapper_undecodable")])
    assert [f.severity for f in result.findings if f.rule_id == "KER007"] == [Severity.HIGH]


def test_keras2_lambda_naming_a_keras_loader() -> None:
    layer = {"class_name": "Lambda", "config": {"name": "l", "function": "load_model",
                                                "function_type": "function",
                                                "module": "keras.models",
                                                "arguments": {"safe_mode": False}}}
    artifact = Artifact(("config.json",), MemorySource(_config(layer)))
    facts = [f for f in parse(artifact, ParseContext()).facts if f.kind == "keras.function_ref"]
    assert [(f.attrs["qualname"], f.attrs["safe_mode"]) for f in facts] == \
        [("keras.models.load_model", "false")]


def test_loader_and_switch_fixtures_block(make_fixture: FixtureFactory) -> None:
    for name in ("keras_zip_lambda_load_model", "keras_zip_unsafe_switch"):
        result = ckptguard.scan([make_fixture(name)])
        assert [f.severity for f in result.findings if f.rule_id == "KER008"] == \
            [Severity.CRITICAL], name


def test_function_reference_helpers() -> None:
    assert function_reference({"class_name": "function", "module": "keras.ops",
                               "config": "relu"}) == "keras.ops.relu"
    assert function_reference({"class_name": "Dense", "module": "keras.layers"}) is None
    assert function_reference({"class_name": "function", "module": "", "config": "x"}) is None
    assert safe_mode_argument({"arguments": {"safe_mode": False}}) == "false"
    assert safe_mode_argument({}) == "unset"


LIVE = """
import sys
import keras
try:
    keras.saving.load_model(sys.argv[1], safe_mode=False)
except Exception:
    pass
"""


def test_torch_wrapper_payload_is_live_under_keras(tmp_path: Path) -> None:
    """The hostile fixture runs its payload when Keras (torch backend) loads it with
    safe_mode=False, in a child process whose payload only touches this test's canary.  Runs
    where keras is installed (it is not a ckptguard dependency)."""
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec("torch") is None:
        pytest.skip("keras and torch are needed to prove the fixture against the real loader")
    canary = tmp_path / "canary"
    target = all_fixtures()["keras_zip_torch_wrapper_payload"].build(tmp_path, canary)
    env = dict(os.environ, KERAS_BACKEND="torch")
    subprocess.run([sys.executable, "-c", LIVE, str(target)], env=env, timeout=300,
                   check=False, capture_output=True)
    assert canary.exists()
