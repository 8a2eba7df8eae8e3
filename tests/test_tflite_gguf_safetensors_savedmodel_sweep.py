"""Every fixture of fixtures/formats_a.py scanned with the default configuration: hostile ones
fail the default gate or at least need a look (medium), benign ones stay below medium, and no
payload ever ran (the canary never appears)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.model import Severity
from fixtures.formats_a import FIXTURES

HOSTILE = [f.name for f in FIXTURES if f.hostile]
BENIGN = [f.name for f in FIXTURES if not f.hostile and not f.config]
# Hostile fixtures whose worst finding is deliberately below the default gate (high).
NEEDS_A_LOOK = {"tflite_custom_op", "gguf_unknown_type", "tpl_huge_range", "tpl_deep_nesting",
                "tpl_include", "tpl_syntax_error"}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_fixture_is_reported(name: str, make_fixture, canary: Path) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture(name)
    result = scan([path], Config(), root=path.parent)
    worst = result.max_severity
    assert worst is not None, f"{name}: nothing reported"
    floor = Severity.MEDIUM if name in NEEDS_A_LOOK else Severity.HIGH
    assert worst >= floor, [(f.rule_id, f.message) for f in result.findings]
    assert not canary.exists()


@pytest.mark.parametrize("name", BENIGN)
def test_benign_fixture_stays_below_medium(name: str, make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture(name)
    result = scan([path], Config(), root=path.parent)
    assert not result.at_or_above(Severity.MEDIUM), [(f.rule_id, f.message)
                                                     for f in result.findings]
