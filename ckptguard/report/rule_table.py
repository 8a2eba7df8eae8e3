"""Rule metadata for renderers: the shipped rules, and a stand-in for findings whose rule is not
in the table (a rule added after the table was loaded, or one from a caller's own rule folder)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ckptguard.engine.rules import Rule, RuleCases
from ckptguard.model import Finding

RuleTable = Mapping[str, Rule]


def shipped_rules() -> RuleTable:
    """The rules ckptguard ships, loaded and validated as a scan would load them."""
    from ckptguard.engine.ruleset import RuleSet

    return RuleSet.load().rules


def stand_in(item: Finding) -> Rule:
    """A minimal rule describing ``item`` when its rule id is not in the table."""
    return Rule(
        id=item.rule_id, name=f"unlisted-rule-{item.rule_id.lower()}", family="unknown",
        severity=item.severity,
        confidence=item.confidence, category=item.category, cwe=(),
        summary=f"Finding reported under rule {item.rule_id}.",
        description="This rule is not in the rule table the report was rendered with; the "
                    "finding's message says what was found.",
        why="", example="", remediation="See the finding's message.", references=(),
        formats=("*",), match=None, message="", subject="", check=None, evidence=(),
        cases=RuleCases((), ()))


def rules_for(findings: Iterable[Finding], table: RuleTable) -> dict[str, Rule]:
    """The rule of every finding, by id, in first-seen order (stand-ins for unknown ids)."""
    out: dict[str, Rule] = {}
    for item in findings:
        if item.rule_id not in out:
            out[item.rule_id] = table.get(item.rule_id) or stand_in(item)
    return out
