"""Every fixture in fixtures/ scanned in-process at the default gate: hostile ones caught,
benign ones passed (run by hand, not a unit test; the unit tests check each rule's cases).

    python bench/gate_verdicts.py                      # this checkout's engine
    python bench/gate_verdicts.py --engine ../older    # another checkout's ckptguard, same corpus

The corpus is always this checkout's fixtures, so two engines are compared on the same files.
The baseline of the run is building the corpus (writing the files), printed beside the scan time.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", type=Path, help="a checkout whose ckptguard package to use")
    parser.add_argument("--verbose", action="store_true", help="list every miss and false alarm")
    parser.add_argument("--skip", action="append", default=[], metavar="GLOB",
                        help="leave out fixtures whose name matches (e.g. bombs an older engine "
                             "cannot survive); repeatable")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from fnmatch import fnmatch

    from fixtures.registry import all_fixtures  # the corpus comes from this checkout

    fixtures = [f for f in all_fixtures().values() if f.available() and
                not any(fnmatch(f.name, pattern) for pattern in args.skip)]
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        built = []
        for fixture in fixtures:
            folder = Path(tmp) / fixture.name
            folder.mkdir()
            built.append((fixture, fixture.build(folder, Path(tmp) / "canary")))
        build_time = time.perf_counter() - started
        if args.engine is not None:
            for name in [m for m in sys.modules if m == "ckptguard" or m.startswith("ckptguard.")]:
                del sys.modules[name]
            sys.path.insert(0, str(args.engine.resolve()))
        import ckptguard

        started = time.perf_counter()
        misses: list[str] = []
        alarms: list[str] = []
        hostile = benign = 0
        crashed: list[str] = []
        for fixture, path in built:
            try:
                result = ckptguard.scan([path], ckptguard.Config(**dict(fixture.config)))
            except Exception as exc:  # noqa: BLE001 - an older engine's crash is a result here
                crashed.append(f"{fixture.name}: {type(exc).__name__}: {exc}"[:200])
                continue
            rules = ",".join(sorted({f.rule_id for f in result.findings})) or "-"
            if fixture.hostile:
                hostile += 1
                if not result.failed:
                    misses.append(f"{fixture.name}: {rules}")
            else:
                benign += 1
                if result.failed:
                    alarms.append(f"{fixture.name}: {rules}")
        scan_time = time.perf_counter() - started
    print(f"engine: {Path(ckptguard.__file__).parent}")
    print(f"hostile caught at the default gate: {hostile - len(misses)}/{hostile}")
    print(f"benign fixtures failing the gate:   {len(alarms)}/{benign}")
    print(f"scans that crashed (exit 2):        {len(crashed)}")
    print(f"scan {scan_time:.1f}s for {len(built)} fixtures; building them {build_time:.1f}s "
          f"(ratio {scan_time / max(build_time, 1e-9):.1f}x)")
    if args.verbose:
        for title, items in (("crashed", crashed), ("missed (hostile, passed the gate)", misses),
                             ("false alarms (benign, failed the gate)", alarms)):
            print(f"\n{title}:")
            for item in items:
                print(f"  {item}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
