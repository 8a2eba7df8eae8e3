"""Python checks, registered under the id of the rule they implement.

The registry is built explicitly by ``builtin_checks()`` (no registration by import side effect):
each module below exports ``CHECKS``, a mapping from rule id to check function.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping

from ckptguard.engine.checks import Check

# Modules holding checks.  Add a module here when you add one; a test asserts every rule that
# names a check finds it, and every check belongs to a rule.
CHECK_MODULES: tuple[str, ...] = (
    "argument_callers",
    "backdoor",
    "backdoor_base",
    "license",
)


def builtin_checks() -> Mapping[str, Check]:
    registry: dict[str, Check] = {}
    for name in CHECK_MODULES:
        module = importlib.import_module(f"ckptguard.checks.{name}")
        for rule_id, check in module.CHECKS.items():
            if rule_id in registry:
                raise ValueError(f"two checks registered for {rule_id}")
            registry[rule_id] = check
    return registry
