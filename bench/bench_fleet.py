"""Files per second: one process (ckptguard.scan) against a 2-worker local Dask cluster.

    python bench/bench_fleet.py [--files 400]

Both scan the same generated tree (benign and hostile pickles, safetensors headers, a share of
duplicate blobs) in the same run; cluster start-up is timed separately from the scan.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ckptguard.api import scan  # noqa: E402
from fixtures.basic_formats import plain_data_pickle, safetensors_bytes  # noqa: E402
from fixtures.examples import malicious_pickle  # noqa: E402


def make_tree(root: Path, count: int) -> Path:
    tree = root / "tree"
    for index in range(count):
        folder = tree / f"repo{index % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        if index % 3 == 0:
            data = malicious_pickle(f"touch {root}/never-{index}")  # distinct: no dedup
        elif index % 3 == 1:
            data = plain_data_pickle() + bytes([index % 256])  # distinct trailing byte
        else:
            data = safetensors_bytes({"w": ("F32", (4,), (index).to_bytes(16, "little"))})
        (folder / f"f{index}.bin").write_bytes(data)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from ckptguard.fleet.run import fleet_scan

    with tempfile.TemporaryDirectory() as tmp:
        tree = make_tree(Path(tmp), args.files)
        scan([tree])  # warm the rule cache and imports, as a long-lived process would be
        start = time.perf_counter()
        local = scan([tree])
        single = time.perf_counter() - start
        start = time.perf_counter()
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                          dashboard_address="127.0.0.1:0") as cluster, Client(cluster) as client:
            boot = time.perf_counter() - start
            fleet_scan([str(tree)], client)  # warm the workers
            start = time.perf_counter()
            result, summary = fleet_scan([str(tree)], client)
            fleet = time.perf_counter() - start
        assert len(result.findings) == len(local.findings)
        print(f"files: {args.files}; unique after dedup: {summary.unique}")
        print(f"single process : {single:6.2f} s  {args.files / single:8.1f} files/s")
        print(f"2-worker fleet : {fleet:6.2f} s  {args.files / fleet:8.1f} files/s "
              f"(cluster start {boot:.1f} s, not included)")
        print(f"speed-up       : {single / fleet:5.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
