"""How long ckptguard takes on large safetensors files: a header-only format must cost its header,
not its weights.

Run from the repository root:

    python bench/bench_safetensors.py            # 1 GB and 10 GB sparse files
    python bench/bench_safetensors.py --quick    # 1 GB only

Each file has a realistic header (a few hundred BF16 tensors with transformer-style names and
a ``__metadata__`` block) whose byte ranges tile a data region that is left sparse (a hole on
disk, made with truncate), so the files cost seconds to create and almost no disk.  Baselines
measured in the same run: reading the 8-byte length and the JSON header with plain Python
(``json.loads``), and ``ckptguard --version`` as a process (interpreter + CLI start-up).  The scan
is timed both in-process (``ckptguard.api.scan``) and as a ``ckptguard scan`` process, against
every installed peer scanner on the same file (bench/peers.py; ``python bench/peers.py
--install``): the ratio to the fastest peer that scanned it, the peers that did not with their
reason (none of the pickle scanners reads safetensors), or a line saying no peer is installed.
Files go to bench/out/ (gitignored) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
GB = 10**9


def header_for(total_bytes: int, layers: int = 48) -> dict[str, object]:
    """BF16 tensors named like a decoder's, sized to fill ``total_bytes`` exactly."""
    names = ["model.embed_tokens.weight"] + [
        f"model.layers.{i}.{part}.weight" for i in range(layers)
        for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                     "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")]
    per_tensor = total_bytes // len(names) // 2 * 2
    header: dict[str, object] = {"__metadata__": {"format": "pt", "license": "apache-2.0"}}
    offset = 0
    for index, name in enumerate(names):
        size = per_tensor if index < len(names) - 1 else total_bytes - offset
        header[name] = {"dtype": "BF16", "shape": [size // 2], "data_offsets": [offset,
                                                                             offset + size]}
        offset += size
    return header


def make_file(path: Path, total_bytes: int) -> None:
    encoded = json.dumps(header_for(total_bytes)).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        handle.truncate(8 + len(encoded) + total_bytes)


def plain_header_read(path: Path) -> None:
    with path.open("rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        json.loads(handle.read(length))


def timed(action: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 GB file only")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs (default 3)")
    args = parser.parse_args()

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from peers import table, time_peers, versus

    from ckptguard.api import scan
    from ckptguard.config import Config

    ckptguard = [sys.executable, "-m", "ckptguard.cli"]
    OUT.mkdir(exist_ok=True)
    sizes = [1 * GB] if args.quick else [1 * GB, 10 * GB]
    startup = timed(lambda: subprocess.run([*ckptguard, "--version"], check=True,
                                           capture_output=True), args.repeat)
    print(f"baseline: ckptguard --version process       {startup * 1000:8.1f} ms")
    try:
        for size in sizes:
            path = OUT / f"bench_{size // GB}gb.safetensors"
            make_file(path, size)
            result = scan([path], Config())
            assert result.artifacts[0].format == "safetensors", result.artifacts
            assert not result.findings, [f.message for f in result.findings]
            plain = timed(partial(plain_header_read, path), args.repeat)
            inproc = timed(partial(scan, [path], Config()), args.repeat)
            process = timed(partial(subprocess.run, [*ckptguard, "scan", str(path)], check=True,
                                    capture_output=True), args.repeat)
            label = f"{size // GB:>2} GB"
            print(f"{label}: plain header read (json.loads)       {plain * 1000:8.1f} ms")
            print(f"{label}: ckptguard.api.scan in-process        {inproc * 1000:8.1f} ms  "
                  f"(x{inproc / plain:.1f} the plain read)")
            print(f"{label}: ckptguard scan process               {process * 1000:8.1f} ms  "
                  f"(x{process / startup:.2f} start-up)")
            # picklescan and fickling exit 0 or 1 on it, but neither parses safetensors.
            peers = time_peers(path, runs=1, limit=60.0,
                               unsupported="reads no safetensors (a pickle scanner)")
            print(f"{label}: ckptguard scan process against peers: {versus(process, peers)}")
            for line in table(peers):
                print(line)
            path.unlink()
    finally:
        for leftover in OUT.glob("bench_*gb.safetensors"):
            leftover.unlink()
        if OUT.exists() and not any(OUT.iterdir()):
            shutil.rmtree(OUT)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
