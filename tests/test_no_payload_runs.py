"""No payload ever runs: scan every fixture (hostile and benign) and prove that nothing fired.

Two guarantees: the canary file that every hostile payload targets never appears, and a scan in
a separate process under an audit hook (sys.addaudithook) spawns no process, opens no canary and
imports none of the dangerous modules the fixtures name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.engine.ruleset import RuleSet

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def every_fixture(make_fixture) -> list[Path]:  # type: ignore[no-untyped-def]
    built = []
    for name, fixture in sorted(make_fixture.fixtures.items()):
        if fixture.available():
            built.append(make_fixture(name))
    return built


def test_fixture_set_has_hostile_files(make_fixture) -> None:  # type: ignore[no-untyped-def]
    hostile = [f for f in make_fixture.fixtures.values() if f.hostile]
    assert len(hostile) >= 3


def test_scanning_everything_runs_no_payload(every_fixture: list[Path], canary: Path) -> None:
    assert every_fixture, "no fixture could be built"
    result = scan(every_fixture)
    assert result.artifacts
    assert not canary.exists(), "a payload ran during the scan"


AUDITED_SCAN = textwrap.dedent('''
    import json, sys
    paths, canary, watched = sys.argv[1], sys.argv[2], set(json.loads(sys.argv[3]))
    from ckptguard.api import scan
    from ckptguard.discover import discover
    paths = json.loads(paths)
    scan(paths)                      # warm up: import every parser the fixtures need
    before = set(sys.modules)
    events = []
    SPAWN = {"os.system", "os.exec", "os.spawn", "os.posix_spawn", "os.fork", "os.forkpty",
             "subprocess.Popen", "pty.spawn", "ctypes.dlopen", "os.startfile"}
    def hook(event, args):
        if event in SPAWN:
            events.append([event, repr(args)[:200]])
        elif event == "open" and args and str(args[0]) == canary:
            events.append([event, str(args[0])])
        elif event == "import" and args and args[0] not in before:
            top = str(args[0]).split(".")[0]
            if top in watched or args[0] in watched:
                events.append([event, args[0]])
    sys.addaudithook(hook)
    scan(paths)
    print(json.dumps(events))
''')


def test_audited_scan_spawns_nothing_and_imports_nothing_named(
        every_fixture: list[Path], canary: Path) -> None:
    rules = RuleSet.load()
    named = {entry.pattern.split(".")[0] for entry in rules.lists["dangerous_callables"].entries()
             if "*" not in entry.pattern.split(".")[0]}
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    completed = subprocess.run(
        [sys.executable, "-c", AUDITED_SCAN, json.dumps([str(p) for p in every_fixture]),
         str(canary), json.dumps(sorted(named))],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr[-2000:]
    events = json.loads(completed.stdout.strip().splitlines()[-1])
    assert events == [], f"the scan did something a payload asked for: {events}"
    assert not canary.exists()
