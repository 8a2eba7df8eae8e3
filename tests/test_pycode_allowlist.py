"""Remote code judged allowlist-first: calls into capability modules that nobody declared safe
are reported (HFR012/HFR013); ordinary modeling code passes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ckptguard
from ckptguard.facts import Fact
from ckptguard.formats.hfrepo import load_code_lists
from ckptguard.formats.pycode import CodeLists, analyse_python
from ckptguard.model import Location, Severity
from fixtures import _remote_code_b as remote
from fixtures.registry import all_fixtures
from tests.conftest import FixtureFactory


@pytest.fixture(scope="module")
def lists() -> CodeLists:
    return load_code_lists()


def _capabilities(source: str, lists: CodeLists, file: str = "m.py") -> list[tuple[str, str]]:
    facts: list[Fact] = analyse_python(source, file, Location((f"repo/{file}",)), lists)
    return [(f.attrs["name"], f.attrs["capability"]) for f in facts
            if f.kind == "pycode.capability_call"]


@pytest.mark.parametrize(("source", "expected"), [
    ("import multiprocessing, os\nmultiprocessing.Process(target=os.system).start()",
     ("multiprocessing.Process", "process")),
    ("import importlib.util\nm = importlib.util.module_from_spec(s)",
     ("importlib.util.module_from_spec", "dynamic-import")),
    ("import sys\nsys.path.insert(0, '/tmp/x')", ("sys.path.insert", "dynamic-import")),
    ("import xmlrpc.client\nxmlrpc.client.ServerProxy('http://h').run()",
     ("xmlrpc.client.ServerProxy", "network")),
    ("import ctypes\nctypes.CFUNCTYPE(None)", ("ctypes.CFUNCTYPE", "native")),
    ("from pathlib import Path\nPath('x').parent.mkdir()", ("pathlib.Path.mkdir", "file-write")),
    ("from multiprocessing import *\nPool(2)", ("multiprocessing.Pool", "process")),
    ("import os\nos.makedirs('x')", ("os.makedirs", "file-write")),
    ("from pathlib import Path\nPath('x').open('w')", ("pathlib.Path.open", "file-write")),
    ("import io\nio.FileIO('x', 'w')", ("io.FileIO", "file-write")),
    ("import huggingface_hub as h\nh.hf_hub_download('r', 'f.py')",
     ("huggingface_hub.hf_hub_download", "network")),
    ("import torch\ntorch.hub.load('x/y', 'm')", ("torch.hub.load", "network")),
    ("import platform\nplatform.architecture()", ("platform.architecture", "process")),
])
def test_unlisted_capability_calls_are_reported(source: str, expected: tuple[str, str],
                                                lists: CodeLists) -> None:
    assert expected in _capabilities(source, lists)


@pytest.mark.parametrize("source", [
    "import os\nos.path.join(os.path.dirname(__file__), 'x.json')",
    "import os\nos.environ.get('X', '0')\nos.getenv('Y')",
    "import importlib.util\nimportlib.util.find_spec('flash_attn')",
    "import importlib.metadata\nimportlib.metadata.version('torch')",
    "from pathlib import Path\nPath(__file__).parent.joinpath('v.json').read_text()",
    "from pathlib import Path\nPath('v.json').open()\nPath('v.json').open('rb')",
    "import io\nio.BytesIO(b'')\nio.open('x')",
    "import sys\nsys.stdout.write('x')\nsys.getsizeof(1)",
    "import torch, math\ntorch.relu(torch.ones(2)) * math.sqrt(2)",
    "import urllib.parse\nurllib.parse.urlparse('http://x')",
])
def test_known_safe_calls_pass(source: str, lists: CodeLists) -> None:
    assert _capabilities(source, lists) == []


def test_denylisted_calls_are_not_reported_twice(lists: CodeLists) -> None:
    facts = analyse_python("import subprocess\nsubprocess.run(['id'])", "m.py",
                           Location(("repo/m.py",)), lists)
    assert [f.kind for f in facts] == ["pycode.call"]


@pytest.mark.parametrize("source", [remote.CONFIGURATION, remote.MODELING, remote.TOKENIZATION])
def test_realistic_remote_code_has_no_capability_calls(source: str, lists: CodeLists) -> None:
    assert _capabilities(source, lists) == []


def test_realistic_repo_passes_the_gate(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("hfrepo_realistic_modeling")])
    assert [f.rule_id for f in result.findings if f.severity >= Severity.HIGH] == []


def test_unlisted_process_api_blocks(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("hfrepo_unlisted_process_api")])
    found = {(f.rule_id, f.severity) for f in result.findings}
    assert ("HFR012", Severity.HIGH) in found
    assert not any(f.rule_id in ("HFR003", "HFR004") for f in result.findings)  # no denylist hit
    assert not make_fixture.canary.exists()


def test_helper_that_creates_folders_is_medium(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("hfrepo_unlisted_write_in_helper")])
    assert {(f.rule_id, f.severity) for f in result.findings if f.rule_id.startswith("HFR01")} \
        == {("HFR013", Severity.MEDIUM)}


LIVE = """
import sys, time
sys.path.insert(0, sys.argv[1])
import modeling_tiny  # the payload runs on import, as trust_remote_code would run it
time.sleep(0)
"""


def test_unlisted_process_payload_is_live_on_import(tmp_path: Path) -> None:
    """Importing the hostile modeling file (what trust_remote_code does) runs the payload: proven
    in a child process whose payload only touches this test's own canary."""
    pytest.importorskip("torch")
    canary = tmp_path / "canary"
    repo = all_fixtures()["hfrepo_unlisted_process_api"].build(tmp_path, canary)
    subprocess.run([sys.executable, "-c", LIVE, str(repo)], timeout=300, check=False,
                   capture_output=True, env=dict(os.environ))
    assert canary.exists()
