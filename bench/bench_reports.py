"""How long the report renderers take on a large synthetic result (run by hand; seconds).

    python bench/bench_reports.py [--findings 5000]

Prints, per format, the time and output size, and the ratio to a baseline measured in the same
run: ``json.dumps`` of the bare finding dictionaries (the least any JSON-based report must do).
The machine's load moves the absolute times; the ratios are what to compare between versions.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from functools import partial

from ckptguard.engine.ruleset import RuleSet
from ckptguard.model import Category, Confidence, Finding, Location, ScanResult, Severity, finding
from ckptguard.report import RENDERERS, render_report
from ckptguard.report.json_report import finding_dict


def synthetic(count: int, rule_ids: list[str]) -> ScanResult:
    def make(i: int) -> Finding:
        return finding(rule_id=rule_ids[i % len(rule_ids)], severity=Severity(i % 5),
                       confidence=Confidence(i % 3), category=Category.PAYLOAD,
                       message=f"finding {i}: " + "detail " * 12,
                       location=Location((f"dir{i % 50}/model{i % 500}.zip", f"m{i}/data.pkl"),
                                         offset=i * 7),
                       evidence={"call": "os.system('touch /tmp/canary')", "index": str(i)})

    items = tuple(make(i) for i in range(count))
    return ScanResult(findings=items, artifacts=(), suppressed=items[: count // 10],
                      tool_version="0.0.0")


def timed(action: Callable[[], str]) -> tuple[float, int]:
    start = time.perf_counter()
    text = action()
    return time.perf_counter() - start, len(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=5000)
    args = parser.parse_args()
    rules = RuleSet.load().rules
    result = synthetic(args.findings, sorted(rules))
    base, _ = timed(lambda: json.dumps([finding_dict(f) for f in result.findings]))
    print(f"{args.findings} findings; baseline json.dumps of finding dicts: {base:.3f}s")
    for name in RENDERERS:
        seconds, size = timed(partial(render_report, name, result, rules=rules))
        print(f"  {name:6} {seconds:7.3f}s  {size / 1e6:6.2f} MB  {seconds / base:5.1f}x baseline")


if __name__ == "__main__":
    main()
