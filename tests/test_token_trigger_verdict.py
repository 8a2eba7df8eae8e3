"""When a token trigger found by ``ckptguard probe FOLDER --data`` fails the default gate on its
own: the verdict from the search's result, without training a model."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from ckptguard.api import load_rules
from ckptguard.config import Config
from ckptguard.facts import Artifact
from ckptguard.model import Finding, Severity
from ckptguard.probes.runner import ProbeReport, probe_facts, token_trigger_decisive
from ckptguard.probes.text_trigger import ClassTrigger, TokenTriggerResult
from ckptguard.probes.thresholds import TOKEN_TRIGGER_RIVAL_MAX
from ckptguard.source import MemorySource

PLANTED = 7  # the trigger token's id


def result(target_success: float, rival_success: float, seen: frozenset[int],
           ids: tuple[int, ...] = (PLANTED,)) -> TokenTriggerResult:
    return TokenTriggerResult(
        per_class=(ClassTrigger(ids, tuple(f"t{i}" for i in ids), target_success, 30),
                   ClassTrigger((3,), ("t3",), rival_success, 30)),
        complete=True, seen_in_data=seen)


def findings(trigger: TokenTriggerResult) -> list[Finding]:
    artifact = Artifact(("model",), MemorySource(b""))
    report = ProbeReport(margin=None, stimulation=None, device="cpu", seconds=0.0,
                         trigger=trigger)
    output = probe_facts(report, artifact.location)
    return list(load_rules(Config()).only(["BKD010"]).evaluate("probe", artifact, output))


@pytest.mark.parametrize(("target_success", "rival_success", "seen", "severity"), [
    # a token clean text never uses, that no other class matches: high on its own
    (1.0, 0.0, frozenset({1, 2, 3}), Severity.HIGH),
    (0.9, TOKEN_TRIGGER_RIVAL_MAX, frozenset(), Severity.HIGH),
    # the clean data uses the token (a class's own strong word): medium
    (1.0, 0.0, frozenset({PLANTED}), Severity.MEDIUM),
    # another class is nearly as easy to reach: a fragile model, medium
    (1.0, 0.6, frozenset(), Severity.MEDIUM),
])
def test_a_token_trigger_is_high_alone_only_when_decisive(target_success: float,
                                                          rival_success: float,
                                                          seen: frozenset[int],
                                                          severity: Severity) -> None:
    trigger = result(target_success, rival_success, seen)
    found = findings(trigger)
    assert [f.rule_id for f in found] == ["BKD010"]
    assert found[0].severity is severity
    assert token_trigger_decisive(trigger) is (severity is Severity.HIGH)
    evidence = found[0].evidence_dict()
    assert evidence["decisive"] == str(severity is Severity.HIGH)
    if severity is Severity.HIGH:
        assert "never occurs in the clean data" in found[0].message


def test_no_finding_below_the_success_threshold() -> None:
    weak = result(0.85, 0.0, frozenset())
    assert not token_trigger_decisive(weak)
    assert findings(weak) == []


def test_a_trigger_sharing_any_token_with_the_clean_data_is_not_decisive() -> None:
    assert not token_trigger_decisive(result(1.0, 0.0, frozenset({4}), ids=(PLANTED, 4)))
    assert token_trigger_decisive(result(1.0, 0.0, frozenset({5}), ids=(PLANTED, 4)))
