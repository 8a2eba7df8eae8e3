"""Peer scanners for the benches: where they live, how to install them, how to time them.

    python bench/peers.py --install     # create every peer's environment (PyPI, pinned)
    python bench/peers.py               # list which peers are installed

Each peer is installed from PyPI into its own virtual environment under bench/.cache/peers/
(or ``$CKPTGUARD_PEERS``), exactly as bench/compare_peers.py does (it imports this module).
The benches time every installed speed peer (``SPEED_PEERS``) on the same file, in the same run,
one process per file including its start-up, and print ckptguard's ratio against the fastest
peer *that scanned the file*: a peer that refuses the file (an entry limit, an unsupported
format) finishes in its start-up time and would make a meaningless "fastest", so it is shown
with its reason and left out of the ratio.  When no peer is installed the benches say so.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import time
import venv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "peers"

# ModelAudit's Rust pickle scanner has no command line: a one-line driver prints what it covered.
MODELAUDIT_DRIVER = (
    "import sys; from modelaudit_picklescan import scan_file; r = scan_file(sys.argv[1]); "
    "c = r.coverage; print('status', r.status.value, 'scanned', c.bytes_scanned, "
    "'opcodes', c.opcode_count); "
    "[print('notice', n.message) for n in r.notices]")

MODELAUDIT_MAX_OPCODES = 1_000_000  # ScanOptions.max_opcodes' default in 0.1.12

# name -> (pip requirements, command with {file})
PEERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "modelscan": (("modelscan==0.8.8",), ("modelscan", "-p", "{file}")),
    "picklescan": (("picklescan==1.0.5",), ("picklescan", "-p", "{file}")),
    # fickling 0.1.12 imports typing_extensions without declaring it.
    "fickling": (("fickling==0.1.12", "typing_extensions"), ("fickling", "--check-safety",
                                                             "{file}")),
    "modelaudit": (("modelaudit==0.2.54",), ("modelaudit", "scan", "{file}")),
    "modelaudit-picklescan": (("modelaudit-picklescan==0.1.12",),
                              ("python", "-c", MODELAUDIT_DRIVER, "{file}")),
}
# The peers whose speed the benches compare against: the pickle scanners.  (``modelaudit`` is a
# multi-format suite whose pickle engine is modelaudit-picklescan; compare_peers.py runs it.)
SPEED_PEERS = ("picklescan", "modelaudit-picklescan", "modelscan", "fickling")


def home() -> Path:
    return Path(os.environ.get("CKPTGUARD_PEERS", CACHE))


def peer_command(name: str) -> list[str] | None:
    """The peer's command line with ``{file}`` left in, or None when it is not installed."""
    _, command = PEERS[name]
    executable = home() / name / "bin" / command[0]
    return [str(executable), *command[1:]] if executable.exists() else None


def ensure_peer(name: str) -> Path:
    """The peer's executable, installing it into its own environment on first use."""
    requirements, command = PEERS[name]
    env_dir = home() / name
    executable = env_dir / "bin" / command[0]
    if not executable.exists():
        print(f"installing {name} into {env_dir} ...", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        *requirements], check=True)
    return executable


def refusal(name: str, code: int, output: str) -> str | None:
    """Why the peer did not scan the file (None when it did), from its exit code and output."""
    if name == "modelaudit-picklescan":
        match = re.search(r"scanned (\d+)", output)
        if match is None:
            return f"no result (exit {code})"
        if match.group(1) == "0":
            notice = re.search(r"^notice (.*)$", output, re.M)
            return notice.group(1) if notice else "scanned 0 bytes"
        opcodes = re.search(r"opcodes (\d+)", output)
        if opcodes is not None and int(opcodes.group(1)) >= MODELAUDIT_MAX_OPCODES:
            return f"stopped at its {MODELAUDIT_MAX_OPCODES:,}-opcode limit"
        return None  # it ran its VM over every opcode (even where its verdict is inconclusive)
    if name == "modelscan" and code == 3:
        return "skipped the file (exit 3: nothing it supports)"
    if name == "picklescan" and re.search(r"Scanned files: 0\b", output):
        return "scanned 0 files"
    if name == "picklescan" and "could not parse" in output:
        return "could not parse it as a pickle"
    if name == "fickling" and "failed to parse" in output:
        return "failed to parse it"
    if code not in (0, 1):
        return f"exit {code}"
    return None


@dataclass(frozen=True)
class Timing:
    wall: float  # best wall seconds
    cpu: float  # user + system seconds of that run
    refused: str | None = None  # why the tool did not scan the file


def timed(command: Sequence[str], runs: int, limit: float = 120.0,
          name: str | None = None) -> Timing:
    """Best of ``runs`` runs of a process; a run past ``limit`` seconds counts as infinitely
    slow.  With a peer ``name``, its output says whether it scanned the file at all."""
    best = Timing(float("inf"), 0.0, f"timeout (> {limit:.0f} s)")
    # As installed packages run: from compiled bytecode (the first run writes it), even where
    # this machine sets PYTHONDONTWRITEBYTECODE (the peers' environments are compiled by pip).
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(ROOT), PYTHONWARNINGS="ignore")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            # cwd in the (gitignored) cache: fickling writes safety_results.json into cwd.
            done = subprocess.run(command, capture_output=True, check=False, env=env,
                                  timeout=limit, cwd=home() if home().is_dir() else None)
        except subprocess.TimeoutExpired:
            return best
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        output = done.stdout.decode(errors="replace") + done.stderr.decode(errors="replace")
        why = refusal(name, done.returncode, output) if name else None
        if wall < best.wall:
            best = Timing(wall, cpu, why)
    return best


def time_peers(path: Path, runs: int = 2, limit: float = 120.0,
               unsupported: str | None = None) -> dict[str, Timing]:
    """Every installed speed peer's timing on ``path`` (empty when none is installed).  With
    ``unsupported`` (a format none of them reads), each is timed but marked as not scanning it,
    whatever its exit code says."""
    found = {}
    for name in SPEED_PEERS:
        command = peer_command(name)
        if command is not None:
            args = [part.replace("{file}", str(path)) for part in command]
            timing = timed(args, runs, limit, name)
            found[name] = replace(timing, refused=unsupported) if unsupported else timing
    return found


def fastest(timings: dict[str, Timing]) -> tuple[str, Timing] | None:
    """The fastest peer that scanned the file, or None."""
    scanned = {n: t for n, t in timings.items() if t.refused is None}
    if not scanned:
        return None
    name = min(scanned, key=lambda n: scanned[n].wall)
    return name, scanned[name]


def versus(ours: float, timings: dict[str, Timing]) -> str:
    """One line: ckptguard's wall time against the fastest peer that scanned the file, with the
    peers that did not say why; says so when no peer is installed."""
    if not timings:
        return "no peer installed (python bench/peers.py --install)"
    best = fastest(timings)
    refused = "; ".join(f"{n} did not scan it: {t.refused}" for n, t in timings.items()
                        if t.refused)
    head = f"{ours / best[1].wall:.2f}x the fastest peer, {best[0]} ({best[1].wall:.3f} s wall, " \
        f"{best[1].cpu:.3f} s CPU)" if best else "no installed peer scanned this file"
    return head + (f" [{refused}]" if refused else "")


def table(timings: dict[str, Timing]) -> list[str]:
    """One line per peer: wall, CPU, or why it did not scan."""
    lines = []
    for name, timing in sorted(timings.items(), key=lambda kv: kv[1].wall):
        shown = f"{timing.wall:7.3f} s wall {timing.cpu:7.3f} s CPU" \
            if timing.wall != float("inf") else f"{'':>29}"
        lines.append(f"    {name:<24}{shown}" + (f"  (did not scan: {timing.refused})"
                                                   if timing.refused else ""))
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="install every peer")
    options = parser.parse_args()
    for name in PEERS:
        if options.install:
            ensure_peer(name)
        print(f"{name:24} {'installed' if peer_command(name) else 'not installed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
