"""Every rule's text report against its golden snapshot (tests/snapshots/<RULE>.txt).

A failure shows the difference; when the change is intended, regenerate with
``PYTHONPATH=. python -m tests.report_snapshots`` and review ``git diff tests/snapshots``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard.engine.ruleset import RuleSet
from fixtures.registry import all_fixtures
from tests.report_snapshots import SNAPSHOTS, cases, snapshot

RULES = RuleSet.load()
CASES = sorted(cases(RULES).items())
FIXTURES = all_fixtures()


def test_every_rule_with_a_fixture_has_a_snapshot_and_no_snapshot_is_stale() -> None:
    on_disk = {p.stem for p in SNAPSHOTS.glob("*.txt")}
    assert on_disk == {rule_id for rule_id, name in CASES if FIXTURES[name].available()}


@pytest.mark.parametrize(("rule_id", "fixture"), CASES, ids=[r for r, _ in CASES])
def test_text_report_matches_snapshot(rule_id: str, fixture: str, tmp_path: Path) -> None:
    item = FIXTURES[fixture]
    if not item.available():
        pytest.skip(f"fixture {fixture} needs {', '.join(item.requires)}")
    expected = (SNAPSHOTS / f"{rule_id}.txt").read_text(encoding="utf-8")
    actual = snapshot(item, RULES, tmp_path)
    assert rule_id in actual
    assert str(tmp_path) not in actual
    assert actual == expected
