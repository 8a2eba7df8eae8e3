"""End to end: every hostile pickle fixture fails the default gate (the unknown-class one is
medium by design), every benign one passes it, and no payload ever runs."""

from __future__ import annotations

import pickletools
from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.model import Severity
from fixtures.pickles import BENIGN, PAYLOADS

# Hostile by intent but judged below the gate on purpose (the rules say why).
BELOW_GATE = {"pkl_newobj_unknown": Severity.MEDIUM}


@pytest.mark.parametrize("name", sorted(PAYLOADS))
def test_hostile_fixture_is_reported(name: str, make_fixture, canary: Path) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture(name)
    result = scan([path], Config(), root=path.parent)
    expected = BELOW_GATE.get(name, Severity.HIGH)
    assert result.max_severity is not None and result.max_severity >= expected, \
        [(f.rule_id, f.message) for f in result.findings]
    if expected >= Severity.HIGH:
        assert result.failed
    assert not canary.exists()


@pytest.mark.parametrize("name", sorted({*BENIGN, "pkl_joblib_arrays", "pickle_plain_data"}))
def test_benign_fixture_passes_the_default_gate(name: str, make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture(name)
    result = scan([path], Config(), root=path.parent)
    assert result.failed is False, [(f.rule_id, f.message) for f in result.findings]


def test_benign_with_configured_allowlist(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("pkl_unknown_call")
    assert scan([path], Config(), root=path.parent).failed
    allowed = Config(allowed_globals=("evilpkg.run",))
    assert not scan([path], allowed, root=path.parent).failed


def test_py2_fixtures_break_pickletools_but_not_ckptguard(make_fixture) -> None:  # type: ignore[no-untyped-def]
    data = make_fixture("pkl_py2_builtins").read_bytes()
    with pytest.raises(Exception):  # noqa: B017 - genops gives up on non-ASCII STRING bytes
        list(pickletools.genops(data))
    result = scan([make_fixture("pkl_py2_builtins")], Config())
    assert not any(f.rule_id == "PKL004" for f in result.findings)


@pytest.mark.parametrize("name", ["pkl_nested_loads", "pkl_nested_codecs"])
def test_nested_payload_is_reported_in_the_child(name: str, make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture(name)
    result = scan([path], Config(), root=path.parent)
    inner = [f for f in result.findings if f.location.members and
             f.location.members[-1].startswith("<nested pickle @")]
    assert any(f.rule_id == "PKL001" and "os.system" in f.message for f in inner)


def test_finding_messages_say_what_where_and_how(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("pkl_getattr_import_module")
    result = scan([path], Config(), root=path.parent)
    (critical,) = [f for f in result.findings if f.rule_id == "PKL001"]
    assert "os.system" in critical.message and "import_module('os')" in critical.message
    assert critical.location.offset is not None
    assert critical.severity == Severity.CRITICAL


def _scan_bytes(tmp_path: Path, data: bytes, config: Config | None = None) -> list[tuple[str, str]]:
    path = tmp_path / "case.pkl"
    path.write_bytes(data)
    result = scan([path], config or Config(), root=tmp_path)
    return [(f.rule_id, f.severity.label) for f in result.findings]


def test_bound_method_called_is_judged_by_its_own_name(tmp_path: Path) -> None:
    from fixtures.pickle_asm import STOP, binunicode, call, glob, proto, tup

    method = call(glob("builtins", "getattr"), call(glob("collections", "OrderedDict")),
                  binunicode("update"))
    assert ("PKL002", "high") in _scan_bytes(tmp_path, proto(2) + method + tup(b"}") + b"R" +
                                              STOP)


def test_bound_method_of_unlisted_class_blocks(tmp_path: Path) -> None:
    """Strict verdict: an unlisted class that is only instantiated still blocks (its module is
    imported and its __setstate__ runs); allowlisting it clears the file."""
    from fixtures.pickle_asm import STOP, binunicode, call, glob, proto

    method = call(glob("builtins", "getattr"), glob("pkg", "Thing") + b")\x81",
                  binunicode("forward"))
    found = _scan_bytes(tmp_path, proto(2) + method + STOP)
    assert ("PKL003", "high") in found and not any(s == "critical" for _, s in found)
    allowed = Config(allowed_globals=("pkg.Thing",))
    assert _scan_bytes(tmp_path, proto(2) + method + STOP, allowed) == []
