"""Pickle parse throughput: ckptguard's symbolic interpreter against ``python -m pickletools``.

Builds a ~100 MB opcode stream (two pickles of a large list of small ints, strings and floats,
written with protocol 2 and protocol 4 by ``pickle.dumps`` of data made here), then times (in
CPU seconds) ckptguard's pickle ``parse`` and a ``pickletools`` disassembly of the same file
(subprocess, output to /dev/null) in the same run, and prints MB/s for both and the ratio.
Then, on the same file, ``ckptguard scan`` as a process (default limits, start-up included)
against every installed peer scanner (bench/peers.py; ``python bench/peers.py --install``),
with the ratio to the fastest peer that scanned the whole stream, or a line saying no peer is
installed (``--peer-timeout`` bounds each peer run).

Run from the repository root (about 30-60 seconds)::

    python bench/bench_pickle_throughput.py            # ~100 MB
    python bench/bench_pickle_throughput.py --mb 20    # quicker
"""

from __future__ import annotations

import argparse
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# This checkout's ckptguard before an installed one: run from another checkout (a baseline
# commit), the bench times that checkout's code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from peers import table, time_peers, timed, versus

from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.parser import parse
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.source import FileSource


def make_stream(target_mb: float) -> bytes:
    """Half protocol 2, half protocol 4: ints, short strings and floats in one big list each."""
    items_per_mb = 190_000
    count = max(1000, int(target_mb * items_per_mb / 2))
    data = [(i % 300) if i % 3 == 0 else (f"s{i % 9973}" if i % 3 == 1 else i * 0.5)
            for i in range(count)]
    return pickle.dumps(data, protocol=2) + pickle.dumps(data, protocol=4)


def time_ckptguard(path: Path) -> tuple[float, int]:
    limits = replace(DEFAULT_LIMITS, max_pickle_opcodes=10**9, max_pickle_memo=10**8,
                     max_pickle_stack=10**7)
    artifact = Artifact((path.name,), FileSource(str(path)))
    start = time.process_time()
    output = parse(artifact, ParseContext(limits=limits))
    elapsed = time.process_time() - start
    stream = next(output.of_kind("pickle.stream"))
    problems = [f.kind for f in output.facts if f.kind in ("parse.error", "limit.hit")]
    if problems or stream.get("pickles") != 2:
        raise SystemExit(f"unexpected parse result: {problems} {dict(stream.attrs)}")
    return elapsed, int(stream.get("opcodes"))


def time_pickletools(path: Path) -> float:
    """CPU seconds of the child process (user + system), like ``time_ckptguard``'s."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(os.devnull, "w") as sink:
        subprocess.run([sys.executable, "-m", "pickletools", str(path)], stdout=sink,
                       stderr=subprocess.STDOUT, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def python_speed() -> float:
    """Millions of trivial loop iterations per CPU second: how fast this interpreter is here."""
    start = time.process_time()
    total = 0
    for i in range(2_000_000):
        total += i
    return 2.0 / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0, help="stream size in MB")
    parser.add_argument("--peer-timeout", type=float, default=120.0,
                        help="seconds one peer run may take")
    args = parser.parse_args()
    stream = make_stream(args.mb)
    megabytes = len(stream) / 1e6
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.pkl"
        path.write_bytes(stream)
        del stream
        ours, opcodes = time_ckptguard(path)
        theirs = time_pickletools(path)
        cli = timed([sys.executable, "-m", "ckptguard.cli", "scan", "--quiet", "--no-progress",
                     str(path)], 1, args.peer_timeout)
        peers = time_peers(path, 1, args.peer_timeout)
    print(f"python baseline: {python_speed():.1f} M loop iterations/s "
          "(an idle modern core does about 20-40)")
    print(f"stream: {megabytes:.1f} MB, {opcodes:,} opcodes (protocol 2 + protocol 4)")
    print("times are CPU seconds (user + system), so a busy machine skews them less")
    print(f"ckptguard parse:        {ours:7.2f} s  {megabytes / ours:8.1f} MB/s  "
          f"{opcodes / ours / 1e6:5.2f} M opcodes/s")
    print(f"pickletools disassembly:{theirs:7.2f} s  {megabytes / theirs:8.1f} MB/s")
    print(f"ratio (ckptguard / pickletools throughput): {theirs / ours:.1f}x")
    print(f"ckptguard scan process: {cli.wall:.2f} s wall {cli.cpu:.2f} s CPU; "
          f"{versus(cli.wall, peers)}")
    for line in table(peers):
        print(line)


if __name__ == "__main__":
    main()
