"""ckptguard's speed against the fastest installed peer, same files, same machine, same run.

    python bench/bench_peer_speed.py [--install] [--runs 3] [--quick]

Peers (pinned, from PyPI, one virtual environment each under bench/.cache/peers/, created by
``--install``; a peer that is not installed is left out of the table): ``picklescan`` (its CLI)
and ``modelaudit-picklescan`` (ModelAudit's Rust pickle scanner; it has no CLI, so it runs as
``python -c "scan_file(path)"``).  Every tool runs as a process per file, including its start-up,
as a user or CI job runs it.  Each time is the best of ``--runs``; the CPU column (user + system
of the process) is steadier than wall time on a loaded machine.  ``ratio`` is ckptguard's wall
time over the fastest peer's on the same file (below 1: ckptguard is faster).

Cases: a PyTorch zip of 20,000 small tensors (bench_torch_zip's writer), a 36 MB pickle of a float
list and a 6.6 MB pickle of a dict (written with ``pickle.dumps`` of plain data, never loaded),
and an ONNX model (no peer reads ONNX: ckptguard against its own ``--version`` start-up).
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import shutil
import subprocess
import sys
import time
import venv
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

OUT = ROOT / "bench" / "out" / "peer_speed"
PEER_HOME = ROOT / "bench" / ".cache" / "peers"
PEERS = {"picklescan": "picklescan==1.0.5",
         "modelaudit-picklescan": "modelaudit-picklescan==0.1.12"}
MODELAUDIT = ("from modelaudit_picklescan import scan_file; import sys; "
              "print(scan_file(sys.argv[1]).verdict)")


def peer_command(name: str) -> list[str] | None:
    home = Path(os.environ.get("CKPTGUARD_PEERS", PEER_HOME)) / name
    if name == "picklescan" and (home / "bin" / "picklescan").exists():
        return [str(home / "bin" / "picklescan"), "-p"]
    if name == "modelaudit-picklescan" and (home / "bin" / "python").exists():
        return [str(home / "bin" / "python"), "-c", MODELAUDIT]
    return None


def install() -> None:
    for name, requirement in PEERS.items():
        home = PEER_HOME / name
        if peer_command(name) is None:
            venv.create(home, with_pip=True)
            subprocess.run([str(home / "bin" / "pip"), "install", "--quiet", requirement],
                           check=True)


def timed(command: Sequence[str], runs: int, limit: float = 120.0) -> tuple[float, float]:
    """(best wall seconds, CPU seconds of that run) of a process; a run past ``limit`` seconds
    is stopped and counts as infinitely slow."""
    best = (float("inf"), 0.0)
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        try:
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           check=False, env={**os.environ, "PYTHONPATH": str(ROOT)},
                           timeout=limit)
        except subprocess.TimeoutExpired:
            return best
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, (wall, cpu))
    return best


def cases(quick: bool) -> list[tuple[str, Callable[[Path], Path]]]:
    from bench_torch_zip import torch_zip

    def torch20k(out: Path) -> Path:
        return torch_zip(out / "torch_20k.pt", [10_240] * (2_000 if quick else 20_000))

    def float_list(out: Path) -> Path:
        path = out / "floats.pkl"
        path.write_bytes(pickle.dumps([i * 0.5 for i in range(4_000_000)], protocol=4))
        return path

    def dict_pickle(out: Path) -> Path:
        path = out / "dict.pkl"
        path.write_bytes(pickle.dumps({f"key{i}": i for i in range(400_000)}, protocol=4))
        return path

    def onnx_model(out: Path) -> Path:
        from fixtures.registry import build

        return build("onnx_clean_mlp", out, out / "canary")

    return [("torch zip, 20,000 tensors" if not quick else "torch zip, 2,000 tensors", torch20k),
            ("36 MB float-list pickle", float_list), ("6.6 MB dict pickle", dict_pickle),
            ("ONNX MLP (no peer reads it)", onnx_model)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="create the peers' environments")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 tensors instead of 20,000")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds one run may take (a slower tool shows as 'timeout')")
    options = parser.parse_args()
    if options.install:
        install()
    ours = [sys.executable, "-m", "ckptguard.cli", "scan", "--quiet", "--no-progress"]
    startup = timed([sys.executable, "-m", "ckptguard.cli", "--version"], options.runs)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for label, make in cases(options.quick):
            path = make(OUT)
            mine = timed([*ours, str(path)], options.runs, options.timeout)
            peers = {}
            if "ONNX" not in label:
                for name in PEERS:
                    command = peer_command(name)
                    if command is not None:
                        peers[name] = timed([*command, str(path)], options.runs,
                                            options.timeout)
            size = path.stat().st_size / 1e6
            rows.append((label, size, mine, peers))
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    print(f"ckptguard --version (start-up): {startup[0]:.3f} s wall, {startup[1]:.3f} s CPU")
    print(f"{'file':<30}{'MB':>7}  {'tool':<24}{'wall':>8}{'CPU':>8}{'ratio':>8}")
    for label, size, mine, peers in rows:
        fastest = min(peers.values(), default=None)
        base = fastest[0] if fastest else startup[0]
        note = "vs fastest peer" if fastest else "vs start-up"
        print(f"{label:<30}{size:>7.1f}  {'ckptguard':<24}{mine[0]:>7.3f}s{mine[1]:>7.3f}s"
              f"{mine[0] / base:>7.2f}x  ({note})")
        for name, (wall, cpu) in sorted(peers.items(), key=lambda kv: kv[1]):
            shown = f"{wall:>7.3f}s{cpu:>7.3f}s" if wall != float("inf") else \
                f"{'timeout':>8}{'':>8}  (> {options.timeout:.0f} s)"
            print(f"{'':<30}{'':>7}  {name:<24}{shown}")


if __name__ == "__main__":
    main()
