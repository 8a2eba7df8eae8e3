"""Golden text reports, one per rule: the report of the first fixture that fires the rule.

The expected files live in ``tests/snapshots/<RULE>.txt``.  They are generated, never edited by
hand; after a deliberate change to the text report (or to a rule's message), regenerate them and
review the diff:

    PYTHONPATH=. python -m tests.report_snapshots          # rewrite tests/snapshots/
    git diff tests/snapshots/

Machine independence: each fixture is built into its own folder and scanned with that folder as
the root (names are relative), with a fixed canary path, and the build folder is replaced by
``<fixture>`` wherever a finding quotes it (e.g. an ONNX external-data path), the system's
temporary folder by ``<tmp>``.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.engine.ruleset import RuleSet
from ckptguard.report.text_report import render
from fixtures.registry import Fixture, all_fixtures

SNAPSHOTS = Path(__file__).resolve().parent / "snapshots"
CANARY = Path("/nonexistent/ckptguard-canary/PWNED")  # quoted by payloads, never created


def cases(rules: RuleSet) -> dict[str, str]:
    """Rule id -> the fixture its snapshot is made from (rules fired only by synthetic facts
    have none)."""
    out = {}
    for rule in sorted(rules.rules.values(), key=lambda r: r.id):
        fixture = next((name for name in rule.cases.fires if not name.startswith("fact:")), None)
        if fixture is not None:
            out[rule.id] = fixture
    return out


def snapshot(fixture: Fixture, rules: RuleSet, workdir: Path) -> str:
    """The text report of ``fixture`` built and scanned in ``workdir``."""
    target = workdir / fixture.name
    target.mkdir(parents=True, exist_ok=True)
    path = fixture.build(target, CANARY)
    result = scan([path], Config(**fixture.config), rules=rules, root=path.parent)
    folders = {str(target.resolve()): "<fixture>", str(target): "<fixture>",
               # Fixtures that share a file between builds keep it in the temporary folder.
               tempfile.gettempdir(): "<tmp>",
               str(Path(tempfile.gettempdir()).resolve()): "<tmp>"}

    def neutral(text: str) -> str:
        for folder in sorted(folders, key=len, reverse=True):
            text = text.replace(folder, folders[folder])
        return text

    # Replaced before rendering, so that shortening a long value does not depend on the length
    # of this machine's temporary folder.
    findings = tuple(replace(f, message=neutral(f.message),
                             evidence=tuple((k, neutral(v)) for k, v in f.evidence))
                     for f in result.findings)
    return render(replace(result, findings=findings), rules=rules.rules)


def regenerate() -> int:
    rules = RuleSet.load()
    fixtures = all_fixtures()
    SNAPSHOTS.mkdir(exist_ok=True)
    for stale in SNAPSHOTS.glob("*.txt"):
        stale.unlink()
    with tempfile.TemporaryDirectory() as work:
        for rule_id, name in cases(rules).items():
            fixture = fixtures[name]
            if not fixture.available():
                print(f"{rule_id}: fixture {name} needs {fixture.requires}; skipped")
                continue
            (SNAPSHOTS / f"{rule_id}.txt").write_text(
                snapshot(fixture, rules, Path(work)), encoding="utf-8")
    print(f"wrote {len(list(SNAPSHOTS.glob('*.txt')))} snapshots to {SNAPSHOTS}")
    return 0


if __name__ == "__main__":
    sys.exit(regenerate())
