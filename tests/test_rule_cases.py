"""Every rule's cases, found by walking rules/: each 'fires' case must raise the rule, each
'passes' case must not.  A case named ``fact:<kind>`` feeds the rule one synthetic fact of that
kind (for rules about ckptguard's own failures, which no honest fixture can provoke)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact, ParseOutput
from ckptguard.model import Location
from ckptguard.source import MemorySource

RULES = RuleSet.load()
CASES = [(rule.id, "fires", name) for rule in RULES.rules.values() for name in rule.cases.fires] + \
        [(rule.id, "passes", name) for rule in RULES.rules.values() for name in rule.cases.passes]


def test_every_rule_has_both_kinds_of_case() -> None:
    for rule in RULES.rules.values():
        assert rule.cases.fires and rule.cases.passes, rule.id


def test_every_case_names_a_known_fixture(make_fixture) -> None:  # type: ignore[no-untyped-def]
    missing = sorted({name for _, _, name in CASES if not name.startswith("fact:")}
                     - set(make_fixture.fixtures))
    assert not missing, f"rules name fixtures that do not exist: {missing}"


def _fired_by_fact(rule_id: str, kind: str) -> bool:
    artifact = Artifact(("synthetic.bin",), MemorySource(b""))
    output = ParseOutput()
    output.add(kind, Location(("synthetic.bin",)), format="synthetic", error="synthetic",
               limit="synthetic", detail="synthetic", value=1)
    single = RULES.only([rule_id])
    return any(f.rule_id == rule_id for f in single.evaluate("synthetic", artifact, output))


@pytest.mark.parametrize(("rule_id", "expectation", "case"), CASES,
                         ids=[f"{r}-{e}-{c}" for r, e, c in CASES])
def test_rule_case(rule_id: str, expectation: str, case: str, make_fixture) -> None:  # type: ignore[no-untyped-def]
    if case.startswith("fact:"):
        fired = _fired_by_fact(rule_id, case.removeprefix("fact:"))
    else:
        path: Path = make_fixture(case)
        config = Config(**make_fixture.fixtures[case].config)
        result = scan([path], config, rules=RULES, root=path.parent)
        fired = any(f.rule_id == rule_id for f in result.findings)
        detail = [(f.rule_id, f.message) for f in result.findings]
        assert fired == (expectation == "fires"), f"{case}: {detail}"
    assert fired == (expectation == "fires")
