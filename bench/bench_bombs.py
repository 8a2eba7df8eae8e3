"""Peak memory and time of a scan per class of resource-exhaustion input, at default limits.

    python bench/bench_bombs.py [--scale 1.0] [--only overlap-zip,ratio-gzip]

Each bomb is built from bytes (fixtures/bombs.py) into a temporary folder by one subprocess,
then scanned by the Python API in another fresh subprocess (in process, no worker: what is
measured is the scan itself), which reports its own ``resource.getrusage`` peak RSS and the wall
time of the scan.  (Linux carries a parent's peak RSS into a forked child, so this script keeps
its own memory small and never holds a bomb.)
The same is measured for a small clean pickle in the same run, as the baseline every figure is
compared with.  ``--scale`` shrinks (or grows) every bomb to fit a slower machine.

Classes: a zip whose central records all overlap one deflated kernel (1.3 MB claiming ~1 TB),
a gzip of moderate ratio (under the ratio limit, ~35 MB expanding to ~4.6 GB), a ``.tar.gz``
whose one member expands to 1.5 GB, a 42.zip-style
nest (16 copies per level, 5 levels), the 1 KB memo-sharing pickle whose decompiled view is
exponential, and a chat template whose rendering doubles a string 64 times.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fixtures.bombs import (  # noqa: E402
    memo_bomb_pickle,
    moderate_block,
    nested_zip_bomb,
    overlap_zip_bomb,
    ratio_gzip,
    tar_gz_bomb,
)

MEASURE = """
import json, resource, sys, time
from ckptguard import Config, scan
start = time.perf_counter()
result = scan([sys.argv[1]], Config())
seconds = time.perf_counter() - start
rules = sorted({f.rule_id for f in result.findings})
print(json.dumps({"seconds": seconds, "peak_rss_mib": resource.getrusage(
    resource.RUSAGE_SELF).ru_maxrss / 1024, "findings": len(result.findings), "rules": rules,
    "failed": result.failed}))
"""


def exponential_template() -> bytes:
    lines = ["{% set s = 'ab' %}"]
    lines += ["{% set s = s ~ s %}"] * 64
    lines.append("{{ s }}")
    return ("\n".join(lines) + "\n").encode()


def bombs(scale: float) -> dict[str, tuple[str, Callable[[], bytes]]]:
    def scaled(value: int) -> int:
        return max(1, int(value * scale))

    return {
        "overlap-zip": ("overlap.zip", lambda: overlap_zip_bomb(scaled(1000), 1024)),
        "ratio-gzip": ("ratio.bin.gz", lambda: ratio_gzip(scaled(4400), moderate_block())),
        "tar-gz": ("weights.tar.gz", lambda: tar_gz_bomb(scaled(1500), moderate_block())),
        "nested-zip": ("nested.zip", lambda: nested_zip_bomb(5, 16, scaled(4) << 20)),
        "memo-pickle": ("memo.pkl", lambda: memo_bomb_pickle(Path("/nonexistent/PWNED"))),
        "exp-template": ("chat_template.jinja", exponential_template),
        "baseline": ("clean.pkl", lambda: b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s."),
    }


def measure(path: Path) -> dict[str, object]:
    run = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True,
                         text=True, check=False, cwd=ROOT)
    if run.returncode != 0:
        return {"error": f"exit {run.returncode}: {run.stderr.strip()[-300:]}"}
    measured: dict[str, object] = json.loads(run.stdout.strip().splitlines()[-1])
    return measured


def build_in_subprocess(label: str, scale: float, path: Path) -> float:
    began = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--scale", str(scale), "--build", label,
                    str(path)], check=True, cwd=ROOT)
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--only", default="")
    parser.add_argument("--build", nargs=2, metavar=("CLASS", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.build:
        Path(args.build[1]).write_bytes(bombs(args.scale)[args.build[0]][1]())
        return 0
    chosen = set(args.only.split(",")) - {""}
    table = bombs(args.scale)
    with tempfile.TemporaryDirectory() as tmp:
        baseline = None
        for label in ["baseline", *(k for k in table if k != "baseline")]:
            if chosen and label not in chosen and label != "baseline":
                continue
            path = Path(tmp) / table[label][0]
            built = build_in_subprocess(label, args.scale, path)
            size = path.stat().st_size
            figures = measure(path)
            path.unlink()
            if "error" in figures:
                print(f"{label:<13} input {size:>10} B  {figures['error']}")
                continue
            rss = float(str(figures["peak_rss_mib"]))
            seconds = float(str(figures["seconds"]))
            if baseline is None:
                baseline = (rss, seconds)
            print(f"{label:<13} input {size:>10} B  peak RSS {rss:8.1f} MiB "
                  f"({rss / baseline[0]:5.1f}x baseline)  "
                  f"scan {seconds:7.2f} s ({seconds / max(baseline[1], 1e-3):7.1f}x)  "
                  f"built in {built:.1f} s  verdict {'FAIL' if figures['failed'] else 'pass'}  "
                  f"rules {','.join(map(str, figures['rules']))}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
