"""ckptguard side by side with peer scanners, installed from PyPI as a user would.

    python bench/compare_peers.py [--real DIR] [--only NAME ...] [--timeout 120]

Creates one virtual environment per peer under bench/.cache/peers/ (modelscan, picklescan,
fickling, modelaudit, pinned in bench/peers.py), builds the fixture corpus (hostile and benign,
labelled by ``Fixture.hostile``) under bench/out/corpus/, and runs every tool on every file, one
process per file, with the same timeout.  ``--real DIR`` adds a folder of real published model
files (all benign; bench/real_files.py downloads such a corpus).  Prints per tool: malicious
files caught, false alarms, errors, files the tool does not support, and total time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peers import CACHE, PEERS, ensure_peer  # noqa: E402  (shared with the speed benches)

CORPUS = ROOT / "bench" / "out" / "corpus"
# The tools compared here, with the exit codes meaning clean, flagged, unsupported.
# (modelaudit-picklescan, ModelAudit's pickle engine without a CLI, is a speed peer only.)
COMPARED = ("modelscan", "picklescan", "fickling", "modelaudit")
CLEAN = {"modelscan": {0}, "picklescan": {0}, "fickling": {0}, "modelaudit": {0}, "ckptguard": {0}}
FLAGGED = {"modelscan": {1}, "picklescan": {1}, "fickling": {1}, "modelaudit": {1},
           "ckptguard": {1}}
UNSUPPORTED = {"modelscan": {3}}


@dataclass
class Tally:
    caught: int = 0
    missed: list[str] = field(default_factory=list)
    false_alarms: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unsupported: int = 0
    seconds: float = 0.0


def build_corpus() -> list[tuple[Path, bool]]:
    """Every available fixture, built fresh: (its file or folder, hostile?).  A folder fixture
    (a model repository) is one item: it is caught when a tool flags anything in it."""
    import shutil

    from fixtures.registry import all_fixtures

    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    canary = CORPUS / "CANARY"
    files: list[tuple[Path, bool]] = []
    for name, fixture in sorted(all_fixtures().items()):
        # Fixtures judged under a non-default configuration (weight statistics, a license
        # policy) test what no peer does; the comparison is about the default scan.
        if not fixture.available() or fixture.config:
            continue
        target = CORPUS / ("hostile" if fixture.hostile else "benign") / name
        target.mkdir(parents=True, exist_ok=True)
        files.append((fixture.build(target, canary), fixture.hostile))
    return files


FOLDER_TOOLS = {"ckptguard", "modelscan", "picklescan", "modelaudit"}  # accept a directory


def _exit_code(name: str, command: Sequence[str], path: Path, timeout: float,
               env: dict[str, str]) -> int:
    """The tool's verdict on a file or folder: 1 if it flags anything, else its exit code.
    Tools that take one file at a time are run on each file of a folder."""
    targets = [path] if path.is_file() or name in FOLDER_TOOLS else \
        sorted(p for p in path.rglob("*") if p.is_file())
    codes = []
    for target in targets:
        args = [part.replace("{file}", str(target)) for part in command]
        try:
            # In the (gitignored) cache folder: fickling writes safety_results.json into cwd.
            codes.append(subprocess.run(args, capture_output=True, timeout=timeout, env=env,
                                        check=False, cwd=CACHE).returncode)
        except subprocess.TimeoutExpired:
            codes.append(-1)
    if any(code in FLAGGED[name] for code in codes):
        return next(code for code in codes if code in FLAGGED[name])
    clean = [c for c in codes if c in CLEAN[name] or c in UNSUPPORTED.get(name, set())]
    return clean[0] if clean and len(clean) == len(codes) else \
        next((c for c in codes if c not in CLEAN[name]), 0)


def run_tool(name: str, command: Sequence[str], files: Sequence[tuple[Path, bool]],
             timeout: float) -> Tally:
    tally = Tally()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    for path, hostile in files:
        code = _exit_code(name, command, path, timeout, env)
        shown = str(path.relative_to(CORPUS)) if path.is_relative_to(CORPUS) else str(path)
        if code in FLAGGED[name]:
            if hostile:
                tally.caught += 1
            else:
                tally.false_alarms.append(shown)
        elif code in CLEAN[name] or code in UNSUPPORTED.get(name, set()):
            if code in UNSUPPORTED.get(name, set()):
                tally.unsupported += 1
            if hostile:
                tally.missed.append(shown)
        else:
            tally.errors.append(f"{shown} (exit {code})")
            if hostile:
                tally.missed.append(shown)
    tally.seconds = time.perf_counter() - start
    return tally


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--real", type=Path, help="a folder of real (benign) model files")
    parser.add_argument("--only", nargs="*", help="run only these tools")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--verbose", action="store_true", help="list misses and false alarms")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    files = build_corpus()
    if args.real is not None:
        files.extend((p, False) for p in sorted(args.real.rglob("*")) if p.is_file())
    hostile = sum(1 for _, h in files if h)
    print(f"corpus: {len(files)} fixtures (files or model folders), {hostile} hostile, "
          f"{len(files) - hostile} benign")
    tools: dict[str, tuple[str, ...]] = {
        "ckptguard": (sys.executable, "-m", "ckptguard.cli", "scan", "--quiet", "{file}")}
    for name in COMPARED:
        _, command = PEERS[name]
        if args.only and name not in args.only:
            continue
        tools[name] = (str(ensure_peer(name)), *command[1:])
    print(f"{'tool':12} {'caught':>10} {'false alarms':>13} {'errors':>7} "
          f"{'unsupported':>12} {'time (s)':>9}")
    for name, command in tools.items():
        tally = run_tool(name, command, files, args.timeout)
        print(f"{name:12} {tally.caught:>4}/{hostile:<5} {len(tally.false_alarms):>13} "
              f"{len(tally.errors):>7} {tally.unsupported:>12} {tally.seconds:>9.1f}",
              flush=True)
        if args.verbose:
            for label, items in (("missed", tally.missed), ("false alarm", tally.false_alarms),
                                 ("error", tally.errors)):
                for item in items:
                    print(f"    {label}: {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
