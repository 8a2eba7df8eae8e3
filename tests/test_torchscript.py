"""TorchScript archives: ``__torch__`` classes are judged by the archive's code, read the way
torch.load decides (constants.pkl present -> torch.jit.load), and real scripted modules pass."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ckptguard
from ckptguard.formats.torchscript_code import analyse, module_name
from tests.conftest import FixtureFactory


def rules(result: ckptguard.ScanResult) -> set[str]:
    return {finding.rule_id for finding in result.findings}


def test_module_names_follow_the_code_folder() -> None:
    assert module_name("code/__torch__.py") == "__torch__"
    assert module_name("code/__torch__/torch/nn/modules/linear.py") == \
        "__torch__.torch.nn.modules.linear"
    assert module_name("code/__torch__.py.debug_pkl") is None
    assert module_name("data.pkl") is None


def test_analysis_finds_classes_setstate_and_distinct_calls() -> None:
    code = textwrap.dedent('''\
        class A(Module):
          def forward(self, x: Tensor) -> Tensor:
            return torch.relu(torch.relu(x))
          def __setstate__(self, state: Tuple[int]) -> NoneType:
            _0 = ops.acme.thing(torch.from_file("p", False, 1))
            return None
        ''')
    module = analyse("code/__torch__/m.py", code)
    assert [(c.qualname, c.setstate) for c in module.classes] == [("__torch__.m.A", True)]
    calls = {call.name: call for call in module.calls}
    assert set(calls) == {"torch.relu", "ops.acme.thing", "torch.from_file"}
    assert calls["torch.from_file"].function == "__setstate__"
    assert calls["ops.acme.thing"].custom and calls["ops.acme.thing"].namespace == "acme"
    assert not calls["torch.relu"].custom


def test_archive_classes_do_not_need_the_allowlist(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("torchscript_benign")])
    assert result.findings == () and not result.failed


def test_without_constants_pickle_the_names_are_python_imports(
        make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("torch_zip_with_code_but_no_constants")])
    assert result.failed and "PKL003" in rules(result)
    assert any("__torch__.Net" in finding.message for finding in result.findings)


def test_file_reading_setstate_blocks(make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("torchscript_setstate_reads_file")])
    assert result.failed
    (finding,) = [f for f in result.findings if f.rule_id == "TSC001"]
    assert "torch.from_file" in finding.message and "__setstate__" in finding.message
    assert finding.location.chain[-1] == "model/code/__torch__.py"


def test_a_real_scripted_module_passes(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    script = tmp_path / "make.py"
    script.write_text(textwrap.dedent('''\
        import sys, torch
        class Block(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.lin = torch.nn.Linear(4, 3)
                self.norm = torch.nn.LayerNorm(3)
            def forward(self, x):
                return torch.nn.functional.gelu(self.norm(self.lin(x)))
        torch.jit.script(torch.nn.Sequential(Block(), torch.nn.ReLU())).save(sys.argv[1])
        torch.jit.save(torch.jit.trace(torch.nn.Conv2d(1, 2, 3), torch.zeros(1, 1, 5, 5)),
                       sys.argv[2])
        '''))
    scripted, traced = tmp_path / "scripted.pt", tmp_path / "traced.pt"
    subprocess.run([sys.executable, str(script), str(scripted), str(traced)], check=True,
                   cwd=tmp_path)
    del torch
    result = ckptguard.scan([scripted, traced])
    assert [f.rule_id for f in result.findings] == [] and not result.failed


def test_torch_load_imports_a_planted_torch_module_when_constants_are_missing(
        make_fixture: FixtureFactory, tmp_path: Path) -> None:
    """The loader's view: without constants.pkl, torch.load unpickles data.pkl with Python's
    pickle, so ``__torch__.Net`` imports a module named ``__torch__`` from the working folder
    (here a planted one that touches a canary).  That is why only archives with constants.pkl
    get the exemption."""
    pytest.importorskip("torch")
    archive = make_fixture("torch_zip_with_code_but_no_constants")
    work = tmp_path / "work"
    work.mkdir()
    canary = tmp_path / "planted-module-ran"
    (work / "__torch__.py").write_text(
        f"import pathlib\npathlib.Path({str(canary)!r}).touch()\nclass Net:\n    pass\n")
    code = ("import sys, torch\n"
            "try:\n    torch.load(sys.argv[1], weights_only=False)\n"
            "except Exception as exc:\n    print(type(exc).__name__, exc)\n")
    subprocess.run([sys.executable, "-c", code, str(archive)], cwd=work, check=True,
                   env={"PYTHONPATH": str(work), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert canary.exists()
