"""Structure-aware fuzzing of zip, tar and pickle through the whole pipeline.

    python bench/fuzz_structured.py [--minutes 5] [--seed 1] [--out bench/out/fuzz_structured]

Inputs come from bench/structures.py (valid containers, the shapes where readers disagree, then
byte mutations in their structural parts).  Each is written under a name that fits its format
and scanned with ``ckptguard.api.scan`` (sniff, parse, rules, policy) in a child process with an
address-space limit; the JSON report must parse and the SARIF log must parse and validate
against the OASIS SARIF 2.1.0 schema.  A crash is an exception escaping the pipeline, an invalid
report, a memory blow-up, or no answer within the time limit.  Prints executions, executions
per second, the peak RSS of the workers and every crash (saved to --out for a regression test).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.structures import random_pickle, random_tar, random_zip  # noqa: E402

MEMORY_LIMIT = 2 * 1024**3
TIME_LIMIT = 30.0
BATCH = 50
BUILDERS = {"zip": (random_zip, ("model.pt", "bundle.zip", "weights.npz")),
            "tar": (random_tar, ("bundle.tar", "model.pt")),
            "pickle": (random_pickle, ("model.pkl", "pytorch_model.bin", "model"))}


def _validator() -> object | None:
    try:
        from jsonschema import Draft4Validator

        from tests.test_report_sarif import official_schema
    except ImportError:
        return None
    return Draft4Validator(official_schema())


def _worker(jobs: mp.Queue, results: mp.Queue) -> None:  # type: ignore[type-arg]
    """Child process: scan and render what it is sent; limited in memory."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import json

    from ckptguard.api import scan
    from ckptguard.report import json_report, sarif_report

    validator = _validator()
    with tempfile.TemporaryDirectory() as tmp:
        while True:
            item = jobs.get()
            if item is None:
                results.put((-1, str(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)))
                return
            index, name, data = item
            path = Path(tmp) / name
            path.write_bytes(data)
            try:
                result = scan([path], root=Path(tmp))
                json.loads(json_report.render(result))
                log = json.loads(sarif_report.render(result))
                errors = list(validator.iter_errors(log)) if validator is not None else []  # type: ignore[attr-defined]
                error = f"invalid SARIF: {errors[0].message}"[:300] if errors else None
                results.put((index, error))
            except MemoryError:
                results.put((index, "MemoryError (past the 2 GiB address-space limit)"))
            except Exception as exc:  # noqa: BLE001 - this is what the fuzzer looks for
                results.put((index, f"{type(exc).__name__}: {exc}"[:300]))
            finally:
                path.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "fuzz_structured")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.minutes * 60
    executions: Counter[str] = Counter()
    crashes: list[tuple[str, str, Path]] = []
    start = time.monotonic()
    peak_kib = 0  # the largest worker's own peak RSS
    ctx = mp.get_context("fork")
    while time.monotonic() < deadline:
        jobs: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        results: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
        child = ctx.Process(target=_worker, args=(jobs, results), daemon=True)
        child.start()
        batch = []
        for index in range(BATCH):
            fmt = rng.choice(sorted(BUILDERS))
            build, names = BUILDERS[fmt]
            name, data = rng.choice(names), build(rng)
            batch.append((fmt, name, data))
            jobs.put((index, name, data))
        jobs.put(None)
        done = 0
        while done < len(batch):
            try:
                index, error = results.get(timeout=TIME_LIMIT)
            except Exception:  # noqa: BLE001 - queue.Empty: the child hangs or died
                index, error = done, "hang or crash of the process (no answer in time)"
                child.kill()
            fmt, name, data = batch[index]
            executions[fmt] += 1
            done = index + 1
            if error is not None:
                args.out.mkdir(parents=True, exist_ok=True)
                saved = args.out / f"crash-{fmt}-{sum(executions.values())}-{name}"
                saved.write_bytes(data)
                crashes.append((fmt, error, saved))
                print(f"CRASH {fmt}: {error} -> {saved}", flush=True)
                if "hang" in error:
                    break
        try:
            marker, rss = results.get(timeout=TIME_LIMIT)
            if marker == -1:
                peak_kib = max(peak_kib, int(rss))
        except Exception:  # noqa: BLE001 - the child was killed: no figure from it
            pass
        child.join(timeout=10)
        if child.is_alive():
            child.kill()
    elapsed = time.monotonic() - start
    total = sum(executions.values())
    print(f"executions: {total} in {elapsed:.0f} s ({total / elapsed:.1f}/s); "
          f"peak worker RSS {peak_kib / 1024:.0f} MiB")
    print("per format: " + ", ".join(f"{k}={v}" for k, v in sorted(executions.items())))
    print(f"crashes: {len(crashes)}")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
