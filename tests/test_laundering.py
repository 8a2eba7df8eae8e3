"""Issue 12, "only referenced and only instantiated are not safe": every laundering route is proven
live against its real loader (in a subprocess whose payload only creates a canary), then must fail
the default gate with a finding naming the laundered global, while its benign twin passes.

Before the strict verdict of issue 12 (unlisted globals that the pickle only references or only
instantiates were medium), all but the two BUILD fixtures passed the default gate."""

from __future__ import annotations

from pathlib import Path

import pytest

import ckptguard
from ckptguard.model import Finding, ScanResult
from fixtures.laundering import ALSO_NAMED, FIXTURES, LAUNDERED, TWINS
from tests._loader_proof import LOADERS, run_loader, skip_unless_installed
from tests.conftest import FixtureFactory

BY_NAME = {fixture.name: fixture for fixture in FIXTURES}
HOSTILE = [fixture.name for fixture in FIXTURES if fixture.hostile]
BENIGN = [fixture.name for fixture in FIXTURES if not fixture.hostile]

# The real loader each hostile fixture (and each twin) is meant for.
LOADER_OF = {
    "launder_dict_keys": "pickle.load",
    "launder_ordereddict_keys": "pickle.load",
    "launder_defaultdict_keys": "pickle.load",
    "launder_uuid_replace": "pickle.load",
    "launder_module_setstate": "torch.load",
    "launder_optimizer_setstate": "torch.load",
    "launder_sklearn_setstate": "joblib.load",
    "launder_reconstructor_dict_init": "pickle.load",
    "launder_appends_extend": "pickle.load",
    "launder_appends_append": "pickle.load",
    "launder_setitems_moduledict": "torch.load",
    "launder_build_setstate": "pickle.load",
    "launder_appends_append_stdlib": "pickle.load",
    "launder_setitems_moduledict_stdlib": "torch.load",
    "launder_build_setstate_stdlib": "pickle.load",
    "launder_lambdalr": "torch.load",
    "launder_cycliclr_scale_fn": "torch.load",
    "launder_averagedmodel_deepcopy": "torch.load",
    "launder_forward_hook": "torch.load+forward",
    "launder_beside_class": "pickle.load",
    "launder_torch_package": "torch.package",
    "launder_torchscript_setstate": "torch.jit.load",
    "launder_inner_pickle": "pickle.load",
    "launder_twin_dict": "pickle.load",
    "launder_twin_ordereddict": "pickle.load",
    "launder_twin_defaultdict": "pickle.load",
    "launder_twin_uuid": "pickle.load",
    "launder_twin_module": "torch.load+forward",
    "launder_twin_optimizer": "torch.load",
    "launder_twin_sklearn": "joblib.load",
    "launder_twin_reconstructor": "pickle.load",
    "launder_twin_namespaces": "pickle.load",
    "launder_twin_moduledict": "torch.load",
    "launder_twin_scheduler": "torch.load",
    "launder_twin_averagedmodel": "torch.load",
    "launder_twin_torch_package": "torch.package",
    "launder_twin_torchscript": "torch.jit.load",
}

# Payloads that run only after loading (the test runs that step in the subprocess too).
AFTER_LOAD = {"launder_forward_hook"}

# No benign twin: the wrapper class exists to pickle.loads bytes, so no allowlisted-only file has
# this structure.
NO_TWIN = {"launder_inner_pickle"}

def _text_of(item: Finding) -> str:
    where = item.location
    return " ".join([item.message, *(f"{k}={v}" for k, v in item.evidence), *where.members,
                     where.key or ""])


def _naming(result: ScanResult, names: tuple[str, ...]) -> list[Finding]:
    return [f for f in result.at_or_above(result.fail_on)
            if any(name in _text_of(f) for name in names)]


def test_tables_cover_every_fixture() -> None:
    assert HOSTILE and BENIGN
    assert set(LAUNDERED) == set(HOSTILE)
    assert set(LOADER_OF) == set(BY_NAME)
    assert set(LOADER_OF.values()) <= set(LOADERS)
    assert set(TWINS) | NO_TWIN == set(HOSTILE) and not set(TWINS) & NO_TWIN
    assert set(TWINS.values()) == set(BENIGN)
    assert set(ALSO_NAMED) <= set(HOSTILE)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_fixture_is_live_under_its_real_loader(name: str, tmp_path: Path) -> None:
    fixture, loader = BY_NAME[name], LOADERS[LOADER_OF[name]]
    skip_unless_installed(loader)
    if not fixture.available():
        pytest.skip(f"{name} needs {', '.join(fixture.requires)}, not installed")
    folder = tmp_path / name
    folder.mkdir()
    canary = tmp_path / "PWNED"
    path = fixture.build(folder, canary)
    assert not canary.exists(), "building the fixture must not create the canary"
    proof = run_loader(loader, path, canary)
    assert proof.canary, f"{name}: the payload did not run under {loader.name}: {proof}"
    if name in AFTER_LOAD:
        assert not proof.at_load, f"{name} is meant to run after loading, not during: {proof}"
        assert proof.after == "ok", proof
    else:
        assert proof.at_load, proof


@pytest.mark.parametrize("name", BENIGN)
def test_benign_twin_loads_under_the_same_loader(name: str, tmp_path: Path) -> None:
    """A twin is a file the real loader accepts, without any payload running."""
    fixture, loader = BY_NAME[name], LOADERS[LOADER_OF[name]]
    skip_unless_installed(loader)
    if not fixture.available():
        pytest.skip(f"{name} needs {', '.join(fixture.requires)}, not installed")
    folder = tmp_path / name
    folder.mkdir()
    canary = tmp_path / "PWNED"
    proof = run_loader(loader, fixture.build(folder, canary), canary)
    assert proof.loaded == "ok", proof
    assert proof.after in (None, "ok"), proof
    assert not proof.canary


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_fixture_fails_the_default_gate(name: str, make_fixture: FixtureFactory,
                                                canary: Path) -> None:
    result = ckptguard.scan([make_fixture(name)])
    assert not canary.exists()
    names = (LAUNDERED[name], *((ALSO_NAMED[name],) if name in ALSO_NAMED else ()))
    assert result.failed, [(f.rule_id, f.severity.name, f.message) for f in result.findings]
    assert _naming(result, names), (
        f"no finding at or above the gate names {' or '.join(names)}: "
        f"{[(f.rule_id, f.message) for f in result.findings]}")


@pytest.mark.parametrize("name", BENIGN)
def test_benign_twin_passes_the_default_gate(name: str, make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture(name)])
    assert result.artifacts
    assert not result.failed, [(f.rule_id, f.severity.name, f.message) for f in result.findings]
