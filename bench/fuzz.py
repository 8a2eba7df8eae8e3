"""Longer mutation fuzzing of every parser, for minutes rather than the test-suite's seconds.

    python bench/fuzz.py [--minutes 5] [--seed 1] [--out bench/out/fuzz]

Seeds are the fixture files; each iteration mutates one (flips, truncations, insertions,
interesting integers over length fields) and scans it in a child process with a time limit
and an address-space limit, so a hang or a memory blow-up is caught as such.  Crashing inputs
(an exception escaping a parser, a hang, a memory blow-up) are saved to --out for a regression
test.  Prints executions, executions per second, and every crash found.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MEMORY_LIMIT = 2 * 1024**3
TIME_LIMIT = 10.0
BATCH = 200


def _collect_seeds() -> dict[str, list[tuple[str, bytes]]]:
    from ckptguard.facts import Artifact
    from ckptguard.formats import PARSERS
    from ckptguard.sniff import sniff
    from ckptguard.source import FileSource
    from fixtures.registry import all_fixtures

    seeds: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        canary = Path(tmp) / "CANARY"
        for name, fixture in sorted(all_fixtures().items()):
            if not fixture.available():
                continue
            target = Path(tmp) / name
            target.mkdir()
            built = fixture.build(target, canary)
            files = [built] if built.is_file() else [p for p in built.rglob("*") if p.is_file()]
            for path in files:
                if path.stat().st_size <= 2_000_000:
                    fmt = sniff(Artifact((path.name,), FileSource(str(path)))).format
                    if fmt in PARSERS and fmt != "hf-repo":
                        seeds[fmt].append((path.name, path.read_bytes()))
    return seeds


def _worker(jobs: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    """Child process: parse what it is sent, report exceptions; limited in memory."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    from ckptguard.facts import Artifact
    from ckptguard.formats import ParseContext, parser_for
    from ckptguard.source import MemorySource

    while True:
        item = jobs.get()
        if item is None:
            return
        index, fmt, name, data = item
        parser = parser_for(fmt)
        try:
            assert parser is not None
            parser(Artifact((name,), MemorySource(data), format_hint=fmt), ParseContext())
            results.put((index, None))
        except MemoryError:
            results.put((index, "MemoryError (past the 2 GiB address-space limit)"))
        except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
            results.put((index, f"{type(exc).__name__}: {exc}"[:300]))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "fuzz")
    args = parser.parse_args()
    from fixtures.mutate import mutate

    seeds = _collect_seeds()
    formats = sorted(seeds)
    print(f"seeds: {sum(len(v) for v in seeds.values())} files in {len(formats)} formats")
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    executions = 0
    crashes: list[tuple[str, str, Path]] = []
    per_format: dict[str, int] = defaultdict(int)
    start = time.monotonic()
    ctx = mp.get_context("fork")
    while time.monotonic() < deadline:
        jobs: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        child = ctx.Process(target=_worker, args=(jobs, results), daemon=True)
        child.start()
        batch = []
        for index in range(BATCH):
            fmt = rng.choice(formats)
            name, original = rng.choice(seeds[fmt])
            data = mutate(original, rng, rng.randrange(1, 9))
            batch.append((fmt, name, data))
            jobs.put((index, fmt, name, data))
        jobs.put(None)
        done = 0
        while done < len(batch):
            try:
                index, error = results.get(timeout=TIME_LIMIT)
            except Exception:  # noqa: BLE001 - queue.Empty: the child hangs or died
                fmt, name, data = batch[done]
                error = "hang or crash of the process (no answer within the time limit)"
                index = done
                child.kill()
            fmt, name, data = batch[index]
            executions += 1
            per_format[fmt] += 1
            done = index + 1
            if error is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                saved = args.out / f"crash-{fmt}-{executions}-{name}"
                saved.write_bytes(data)
                crashes.append((fmt, error, saved))
                print(f"CRASH {fmt}: {error} -> {saved}", flush=True)
                if "hang" in error:
                    break
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
    elapsed = time.monotonic() - start
    print(f"executions: {executions} in {elapsed:.0f} s ({executions / elapsed:.0f}/s)")
    print("per format: " + ", ".join(f"{k}={v}" for k, v in sorted(per_format.items())))
    print(f"crashes: {len(crashes)}")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
