"""The pre-commit hook, for real: pre-commit installs this repository (a clone of its committed
state) into its own environment and runs the hook in a scratch git repository.

``pre-commit run`` with a ``.pre-commit-config.yaml`` naming the clone is used rather than
``try-repo``, because try-repo builds a fresh environment in a temporary store on every call
(minutes each), while ``run`` caches it in PRE_COMMIT_HOME, shared by this module."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from fixtures.workflow import plain_pickle, sevenzip, system_pickle

ROOT = Path(__file__).resolve().parent.parent
HAS_PICKLE_PARSER = importlib.util.find_spec("ckptguard.formats.pickle") is not None and \
    importlib.util.find_spec("ckptguard.formats.pickle.parser") is not None
needs_pickle_parser = pytest.mark.skipif(not HAS_PICKLE_PARSER,
                                         reason="the pickle parser is not in this checkout")


def _unavailable() -> str | None:
    if importlib.util.find_spec("pre_commit") is None:
        return "pre-commit is not installed (pip install -e '.[test]')"
    if shutil.which("git") is None:
        return "git is not on PATH"
    if not (ROOT / ".git").exists():
        return "the tests do not run from a git checkout of ckptguard"
    return None


pytestmark = pytest.mark.skipif(_unavailable() is not None, reason=_unavailable() or "")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def hook_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """The pre-commit configuration naming a clone of this repository's committed state, and an
    environment whose PRE_COMMIT_HOME is shared by the module, so the hook's venv is built once."""
    base = tmp_path_factory.mktemp("precommit")
    source = base / "ckptguard-src"
    _git(base, "clone", "--quiet", "--no-hardlinks", str(ROOT), str(source))
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=source, check=True,
                          capture_output=True, text=True).stdout.strip()
    config = yaml.safe_dump({"repos": [{"repo": str(source), "rev": head,
                                        "hooks": [{"id": "ckptguard"},
                                                  {"id": "ckptguard-all-files"}]}]})
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "PRE_COMMIT"))}
    env.update(PRE_COMMIT_HOME=str(base / "cache"), GIT_AUTHOR_NAME="t",
               GIT_AUTHOR_EMAIL="t@example.invalid", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.invalid")
    yield config, env


def _try_hook(hook_env: tuple[str, dict[str, str]], workdir: Path, name: str,
              content: bytes, hook: str = "ckptguard",
              more: dict[str, bytes] | None = None) -> subprocess.CompletedProcess[str]:
    """The hook run on ``name`` (and the files in ``more``, by name), all staged: as a commit
    runs it, on the staged files (``--files`` would hand pre-commit's own parser a name that
    starts with a dash)."""
    config, env = hook_env
    workdir.mkdir()
    _git(workdir, "init", "--quiet")
    (workdir / ".pre-commit-config.yaml").write_text(config)
    files = {name: content, **(more or {})}
    for relative, data in files.items():
        target = workdir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    _git(workdir, "add", "--", ".pre-commit-config.yaml", *files)
    return subprocess.run(
        [sys.executable, "-m", "pre_commit", "run", hook, "--color", "never"],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=1200, check=False)


def test_hook_definition() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "ckptguard")
    assert hook["language"] == "python"
    assert hook["entry"].startswith("ckptguard scan --quiet")
    assert "types" not in hook and hook["require_serial"] is False
    every = next(h for h in hooks if h["id"] == "ckptguard-all-files")
    assert every["entry"] == hook["entry"] and "files" not in every and "types" not in every


@needs_pickle_parser
def test_the_all_files_hook_judges_content_whatever_the_name(
        hook_env: tuple[str, dict[str, str]], tmp_path: Path, canary: Path) -> None:
    """A pickle without a model extension is not the name-based hook's business; a loader
    opens it all the same.  The all-files hook finds it, and lets source and text pass."""
    files = {"src/train.py": b"import os\nprint(os.getcwd())\n", "notes.txt": b"hello\n"}
    named = _try_hook(hook_env, tmp_path / "named", "checkpoint", system_pickle(canary),
                      more=files)
    assert named.returncode == 0, named.stdout + named.stderr  # no file matched its names
    every = _try_hook(hook_env, tmp_path / "every", "checkpoint", system_pickle(canary),
                      hook="ckptguard-all-files", more=files)
    assert every.returncode != 0, every.stdout + every.stderr
    assert "PKL001" in every.stdout and "checkpoint" in every.stdout
    clean = _try_hook(hook_env, tmp_path / "clean", "notes.txt", b"hello\n",
                      hook="ckptguard-all-files", more={"src/train.py": files["src/train.py"]})
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert not canary.exists()


@needs_pickle_parser
def test_malicious_pickle_is_refused(hook_env: tuple[str, dict[str, str]], tmp_path: Path,
                                     canary: Path) -> None:
    run = _try_hook(hook_env, tmp_path / "repo", "model.pkl", system_pickle(canary))
    assert run.returncode != 0, run.stdout + run.stderr
    assert "FAIL" in run.stdout and "model.pkl" in run.stdout, run.stdout + run.stderr
    assert not canary.exists()


@needs_pickle_parser
def test_a_staged_file_named_like_an_option_cannot_reconfigure_the_hook(
        hook_env: tuple[str, dict[str, str]], tmp_path: Path, canary: Path) -> None:
    """pre-commit passes staged names after the hook's arguments: a file named
    ``--exclude=*.pkl`` excluded every pickle, and the malicious one beside it passed."""
    run = _try_hook(hook_env, tmp_path / "repo", "model.pkl", system_pickle(canary),
                    more={"--exclude=*.pkl": plain_pickle()})
    assert run.returncode != 0, run.stdout + run.stderr
    assert "reads as an option but is also a file" in run.stdout + run.stderr
    assert not canary.exists()


@needs_pickle_parser
def test_plain_data_pickle_passes(hook_env: tuple[str, dict[str, str]],
                                  tmp_path: Path) -> None:
    run = _try_hook(hook_env, tmp_path / "repo", "model.pkl", plain_pickle())
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Passed" in run.stdout


def test_unscannable_archive_is_refused(hook_env: tuple[str, dict[str, str]],
                                        tmp_path: Path) -> None:
    run = _try_hook(hook_env, tmp_path / "repo", "weights/bundle.7z", sevenzip())
    assert run.returncode != 0, run.stdout + run.stderr
    assert "FMT004" in run.stdout and "Traceback" not in run.stdout + run.stderr


def test_model_config_passes(hook_env: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    run = _try_hook(hook_env, tmp_path / "repo", "config.json", b'{"model_type": "bert"}\n')
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Passed" in run.stdout
