"""ckptguard's speed against the fastest installed peer, same files, same machine, same run.

    python bench/bench_peer_speed.py [--install] [--runs 3] [--quick]

Peers (bench/peers.py: pinned, from PyPI, one virtual environment each under
bench/.cache/peers/, created by ``--install``; a peer that is not installed is left out):
``picklescan``, ``modelaudit-picklescan`` (ModelAudit's Rust pickle scanner, driven by a
one-line ``python -c``), ``modelscan`` and ``fickling``.  Every tool runs as a process per file,
including its start-up, as a user or CI job runs it.  Each time is the best of ``--runs``; the
CPU column (user + system of the process) is steadier than wall time on a loaded machine.  The
ratio is ckptguard's wall time over the fastest peer's that scanned the file (below 1: ckptguard
is faster); a peer that refused the file (modelaudit-picklescan stops at 10,000 zip entries and
scans nothing; fickling does not parse torch zips) is listed with its reason, not as fastest.

Cases: PyTorch zips of 20,000 and of 9,990 small tensors (bench_torch_zip's writer; the second
is under modelaudit-picklescan's entry limit), the 20,000-tensor zip's ``data.pkl`` alone (the
same pickle stream as a plain file: what a native pickle VM costs on it), a 36 MB pickle of a
float list and a 6.6 MB pickle of a dict (written with ``pickle.dumps`` of plain data, never
loaded), and an ONNX model (no peer reads ONNX: ckptguard against its own start-up).
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from peers import SPEED_PEERS, Timing, ensure_peer, table, time_peers, timed, versus  # noqa: E402

OUT = ROOT / "bench" / "out" / "peer_speed"


def cases(quick: bool) -> list[tuple[str, Callable[[Path], Path]]]:
    from bench_torch_zip import torch_zip

    def torch20k(out: Path) -> Path:
        return torch_zip(out / "torch_20k.pt", [10_240] * (2_000 if quick else 20_000))

    def torch9990(out: Path) -> Path:
        return torch_zip(out / "torch_9990.pt", [10_240] * 9_990)

    def data_pkl(out: Path) -> Path:
        with zipfile.ZipFile(torch20k(out)) as archive:
            (out / "data.pkl").write_bytes(archive.read("archive/data.pkl"))
        return out / "data.pkl"

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

    small = [] if quick else [("torch zip, 9,990 tensors", torch9990),
                              ("its data.pkl alone, 20,000 tensors", data_pkl)]
    return [("torch zip, 20,000 tensors" if not quick else "torch zip, 2,000 tensors", torch20k),
            *small,
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
        for name in SPEED_PEERS:
            ensure_peer(name)
    ours = [sys.executable, "-m", "ckptguard.cli", "scan", "--quiet", "--no-progress"]
    print("timing ckptguard and every installed peer on each file (best of "
          f"{options.runs}) ...", flush=True)
    startup = timed([sys.executable, "-m", "ckptguard.cli", "--version"], options.runs)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for label, make in cases(options.quick):
            path = make(OUT)
            mine = timed([*ours, str(path)], options.runs, options.timeout)
            peers: dict[str, Timing] = {}
            if "ONNX" not in label:
                peers = time_peers(path, options.runs, options.timeout)
            size = path.stat().st_size / 1e6
            rows.append((label, size, mine, peers))
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    print(f"ckptguard --version (start-up): {startup.wall:.3f} s wall, {startup.cpu:.3f} s CPU")
    for label, size, mine, peers in rows:
        print(f"{label} ({size:.1f} MB): ckptguard {mine.wall:.3f} s wall {mine.cpu:.3f} s CPU; "
              + (versus(mine.wall, peers) if peers or "ONNX" not in label else
                 f"no peer reads it: {mine.wall / startup.wall:.2f}x ckptguard's start-up"))
        for line in table(peers):
            print(line)


if __name__ == "__main__":
    main()
