"""``probe --arch`` never runs code planted beside the scanned weights: the module's location is
checked (resolved, symlinks followed) before anything is imported, and the scanned folder is
never importable while the architecture is imported."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

PLANTED = "ckg_planted_arch"
HELPER = "ckg_planted_helper"
TRUSTED = "ckg_trusted_arch"
PACKAGE = "ckg_planted_pkg"


@pytest.fixture(autouse=True)
def forget_modules() -> Iterator[None]:
    yield
    for name in list(sys.modules):
        if name.split(".")[0] in (PLANTED, HELPER, TRUSTED, PACKAGE):
            del sys.modules[name]


def payload(canary: Path) -> str:
    """Module text that proves it ran by creating ``canary`` (and builds a model if asked)."""
    return (f"from pathlib import Path\nPath({str(canary)!r}).write_text('ran')\n"
            "def build():\n    import torch\n    return torch.nn.Linear(4, 2)\n")


def model_folder(tmp_path: Path) -> Path:
    from fixtures.backdoor import safetensors_file

    folder = tmp_path / "model"
    folder.mkdir()
    weights = {"weight": np.zeros((2, 4), dtype=np.float32),
               "bias": np.zeros(2, dtype=np.float32)}
    (folder / "model.safetensors").write_bytes(safetensors_file(weights))
    return folder


def probe(weights: Path, arch: str):  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from ckptguard.cli import main

    return CliRunner().invoke(main, ["probe", str(weights), "--arch", arch, "--device", "cpu",
                                     "--time-budget", "5"])


def test_a_module_beside_the_weights_is_refused_before_it_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, canary = model_folder(tmp_path), tmp_path / "canary"
    (folder / f"{PLANTED}.py").write_text(payload(canary))
    monkeypatch.syspath_prepend(str(folder))  # as if the user ran ckptguard from that folder
    result = probe(folder / "model.safetensors", f"{PLANTED}:build")
    assert result.exit_code == 2, result.output
    assert "inside the scanned model's folder" in result.output
    assert not canary.exists()


def test_the_working_directory_entry_is_not_trusted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, canary = model_folder(tmp_path), tmp_path / "canary"
    (folder / f"{PLANTED}.py").write_text(payload(canary))
    monkeypatch.chdir(folder)
    monkeypatch.setattr(sys, "path", ["", *sys.path])  # `python -m` puts the cwd first
    result = probe(Path("model.safetensors"), f"{PLANTED}:build")
    assert result.exit_code == 2, result.output
    assert not canary.exists()


def test_a_planted_package_init_never_runs(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    folder, canary = model_folder(tmp_path), tmp_path / "canary"
    package = folder / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text(payload(canary))
    (package / "arch.py").write_text(payload(tmp_path / "canary2"))
    monkeypatch.syspath_prepend(str(folder))
    result = probe(folder / "model.safetensors", f"{PACKAGE}.arch:build")
    assert result.exit_code == 2, result.output
    assert not canary.exists() and not (tmp_path / "canary2").exists()


def test_a_symlink_from_a_trusted_folder_into_the_model_is_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, canary = model_folder(tmp_path), tmp_path / "canary"
    (folder / "modeling.py").write_text(payload(canary))
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / f"{PLANTED}.py").symlink_to(folder / "modeling.py")
    monkeypatch.syspath_prepend(str(trusted))
    result = probe(folder / "model.safetensors", f"{PLANTED}:build")
    assert result.exit_code == 2, result.output
    assert "inside the scanned model's folder" in result.output
    assert not canary.exists()


def test_weights_reached_through_a_symlink_still_guard_their_real_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, canary = model_folder(tmp_path), tmp_path / "canary"
    (folder / f"{PLANTED}.py").write_text(payload(canary))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "model.safetensors").symlink_to(folder / "model.safetensors")
    monkeypatch.syspath_prepend(str(folder))
    result = probe(elsewhere / "model.safetensors", f"{PLANTED}:build")
    assert result.exit_code == 2, result.output
    assert not canary.exists()


def test_a_trusted_module_cannot_pull_a_helper_from_the_model_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder, canary = model_folder(tmp_path), tmp_path / "canary"
    (folder / f"{HELPER}.py").write_text(payload(canary))
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / f"{TRUSTED}.py").write_text(
        f"import {HELPER}\n\ndef build():\n    return {HELPER}.build()\n")
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.syspath_prepend(str(trusted))
    result = probe(folder / "model.safetensors", f"{TRUSTED}:build")
    assert result.exit_code == 2, result.output
    assert HELPER in result.output
    assert not canary.exists()


def test_a_trusted_module_outside_the_folder_is_used(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    folder = model_folder(tmp_path)
    trusted = tmp_path / "trusted"
    trusted.mkdir()
    (trusted / f"{TRUSTED}.py").write_text(payload(tmp_path / "ran-trusted"))
    monkeypatch.syspath_prepend(str(trusted))
    result = probe(folder / "model.safetensors", f"{TRUSTED}:build")
    assert (tmp_path / "ran-trusted").exists()  # trusted code is imported as asked
    assert "inside the scanned model's folder" not in result.output


def test_the_sys_path_is_restored_after_the_import(tmp_path: Path) -> None:
    from ckptguard.probes.arch import scanned_folders, trusted_sys_path

    folder = model_folder(tmp_path)
    before = list(sys.path)
    with trusted_sys_path(scanned_folders(folder / "model.safetensors")):
        sys.path.append(str(folder))  # even an entry added inside the block is dropped after
    assert sys.path == before
