"""Files per second: one process (ckptguard.scan) against a 2-worker local Dask cluster.

    python bench/bench_fleet.py [--files 400] [--pickle-kb 0]

Both scan the same generated tree (benign and hostile pickles, safetensors headers) in the same
run; cluster start-up is timed separately from the scan.  With --pickle-kb N the benign pickles
carry N KiB of data each, so that each task does real work: Dask costs milliseconds per task,
which only pays off when files take longer than that to scan.

No peer: none of the peer scanners (bench/peers.py) scans object stores or fleets, so this
bench measures ckptguard against its own baselines only.
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


def big_pickle(index: int, kib: int) -> bytes:
    """A protocol-2 pickle of a list of ~kib KiB of small ints and strings (built by hand)."""
    body = bytearray(b"\x80\x02](")
    item = b"K\x07X\x05\x00\x00\x00abcde"
    body += item * max(1, kib * 1024 // len(item))
    body += b"K" + bytes([index % 256]) + b"e."
    return bytes(body)


def make_tree(root: Path, count: int, kib: int = 0) -> Path:
    tree = root / "tree"
    for index in range(count):
        folder = tree / f"repo{index % 40}"
        folder.mkdir(parents=True, exist_ok=True)
        if index % 3 == 0:
            data = malicious_pickle(f"touch {root}/never-{index}")  # distinct: no dedup
        elif index % 3 == 1:
            data = big_pickle(index, kib) if kib else \
                plain_data_pickle() + bytes([index % 256])  # distinct trailing byte
        else:
            data = safetensors_bytes({"w": ("F32", (4,), (index).to_bytes(16, "little"))})
        (folder / f"f{index}.bin").write_bytes(data)
    return tree


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--pickle-kb", type=int, default=0)
    args = parser.parse_args()
    from distributed import Client, LocalCluster

    from ckptguard.fleet.run import fleet_scan

    with tempfile.TemporaryDirectory() as tmp:
        tree = make_tree(Path(tmp), args.files, args.pickle_kb)
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
