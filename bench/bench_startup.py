"""Start-up cost of ``ckptguard scan`` on one small file (what a pre-commit hook pays per run).

    python bench/bench_startup.py [--runs 15]

Installed packages run from compiled bytecode; this machine sets PYTHONDONTWRITEBYTECODE=1, which
makes every run compile ckptguard from source.  Measure as a user runs it:

    env -u PYTHONDONTWRITEBYTECODE python -m compileall -q ckptguard
    env -u PYTHONDONTWRITEBYTECODE python bench/bench_startup.py

Times, in the same run and as medians of fresh processes: the bare interpreter
(``python -c pass``), ``python -c "import ckptguard.cli"``, and ``ckptguard scan`` of a small
clean pickle (with the default per-file time budget, i.e. in a forked worker, and with
``--timeout 0``, in process) and of a small hostile one.  Prints seconds and the ratio to the
bare interpreter, then every installed peer scanner on the same clean pickle (bench/peers.py;
``python bench/peers.py --install``) and ckptguard's ratio to the fastest one, or a line saying
that no peer is installed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from peers import table, time_peers, versus  # noqa: E402

from fixtures.basic_formats import plain_data_pickle  # noqa: E402
from fixtures.examples import malicious_pickle  # noqa: E402


def median_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if sys.flags.dont_write_bytecode:
        print("note: PYTHONDONTWRITEBYTECODE is set; without compiled bytecode the figures "
              "include compiling ckptguard on every run")
    with tempfile.TemporaryDirectory() as tmp:
        clean = Path(tmp) / "clean.pkl"
        clean.write_bytes(plain_data_pickle())
        hostile = Path(tmp) / "model.pkl"
        hostile.write_bytes(malicious_pickle(f"touch {tmp}/CANARY"))
        cases = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "import ckptguard.cli": [sys.executable, "-c", "import ckptguard.cli"],
            "ckptguard scan clean.pkl": [sys.executable, "-m", "ckptguard.cli", "scan",
                                         str(clean)],
            # The default scan runs in a forked worker with a time budget; this is without it.
            "ckptguard scan clean.pkl --timeout 0": [sys.executable, "-m", "ckptguard.cli",
                                                     "scan", "--timeout", "0", str(clean)],
            "ckptguard scan model.pkl (hostile)": [sys.executable, "-m", "ckptguard.cli",
                                                   "scan", str(hostile)],
        }
        base = None
        print(f"{'command':38} {'median s':>9} {'x bare python':>14}")
        scan_clean = 0.0
        for label, command in cases.items():
            seconds = median_seconds(command, args.runs)
            base = base or seconds
            scan_clean = seconds if label == "ckptguard scan clean.pkl" else scan_clean
            print(f"{label:38} {seconds:9.3f} {seconds / base:14.1f}")
        peers = time_peers(clean, runs=min(args.runs, 5))
        print(f"ckptguard scan clean.pkl (median) against peers (best of "
              f"{min(args.runs, 5)}): {versus(scan_clean, peers)}")
        for line in table(peers):
            print(line)
        assert not (Path(tmp) / "CANARY").exists()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
