"""Parallel scan throughput: many small files, scanned with --jobs 1 and --jobs 2.

    python bench/bench_parallel.py [--files 300]

Prints files/s for each (best of --repeat runs) and the speed-up of jobs=2 over jobs=1 measured
in the same run; the jobs=2 time includes starting the worker processes.  The
files are generated into a temporary folder: plain-data pickles (when the pickle parser is
present) and safetensors-like files, half of each.

No peer: the peer scanners (bench/peers.py) have no parallel mode; this bench compares
ckptguard with itself (jobs=1), and the per-file speed against peers is in bench_peer_speed.py.
"""

from __future__ import annotations

import argparse
import importlib.util
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from ckptguard import scan  # noqa: E402
from fixtures.basic_formats import safetensors_bytes  # noqa: E402
from fixtures.workflow import plain_pickle  # noqa: E402


def generate(folder: Path, count: int, with_pickles: bool) -> None:
    for index in range(count):
        if with_pickles and index % 2 == 0:
            (folder / f"state_{index:04d}.pkl").write_bytes(plain_pickle())
        else:
            values = struct.pack(f"<{64 + index % 32}f", *range(64 + index % 32))
            tensors = {"w": ("F32", (64 + index % 32,), values)}
            (folder / f"weights_{index:04d}.safetensors").write_bytes(
                safetensors_bytes(tensors, {"format": "pt"}))


def timed(folder: Path, jobs: int, repeat: int) -> tuple[float, int]:
    """The best of ``repeat`` runs (the machine is shared: the minimum is the least noisy)."""
    best, found = float("inf"), -1
    for _ in range(repeat):
        began = time.perf_counter()
        result = scan([folder], jobs=jobs, root=folder)
        best = min(best, time.perf_counter() - began)
        found = len(result.findings)
    return best, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with_pickles = importlib.util.find_spec("ckptguard.formats.pickle") is not None and \
        importlib.util.find_spec("ckptguard.formats.pickle.parser") is not None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        generate(folder, args.files, with_pickles)
        kinds = "pickles and safetensors" if with_pickles else "safetensors (no pickle parser)"
        print(f"{args.files} files ({kinds})")
        timed(folder, 1, 1)  # warm caches (rules, imports) so both runs start equal
        one, found_one = timed(folder, 1, args.repeat)
        two, found_two = timed(folder, 2, args.repeat)
    if found_one != found_two:
        raise SystemExit(f"jobs=1 and jobs=2 disagree: {found_one} vs {found_two} findings")
    print(f"jobs=1: {args.files / one:8.1f} files/s  ({one:.2f} s)")
    print(f"jobs=2: {args.files / two:8.1f} files/s  ({two:.2f} s)")
    print(f"speed-up jobs=2 / jobs=1: {one / two:.2f}x")


if __name__ == "__main__":
    main()
