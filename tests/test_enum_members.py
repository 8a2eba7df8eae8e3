"""Enum members reached by name: CPython 3.11.0 to 3.11.4 pickle ``HTTPStatus.OK`` as
``getattr(http.HTTPStatus, 'OK')``, so a checkpoint written there names ``http.HTTPStatus.OK``,
which no allowlist lists.  A member-like name on an allowlisted enum class passes; anything else
reached the same way is still judged as the name it is."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard import Config, scan
from ckptguard.engine.namelists import ENUM_CLASSES, ListEntry
from ckptguard.engine.ruleset import RuleSet
from ckptguard.formats.pickle.names import member_owner
from fixtures.pickle_asm import (
    APPENDS,
    EMPTY_DICT,
    EMPTY_LIST,
    MARK,
    STOP,
    TUPLE1,
    binunicode,
    call,
    glob,
    proto,
    stack_global,
)


def _getattr(module: str, cls: str, name: str) -> bytes:
    return call(glob("builtins", "getattr"), glob(module, cls), binunicode(name))


def _holding(*values: bytes) -> bytes:
    return proto(2) + EMPTY_DICT + binunicode("v") + EMPTY_LIST + MARK + b"".join(values) + \
        APPENDS + b"s" + STOP


def _verdict(tmp_path: Path, data: bytes, config: Config | None = None,
             rules: RuleSet | None = None) -> list[tuple[str, str]]:
    path = tmp_path / "state.pkl"
    path.write_bytes(data)
    result = scan([path], config or Config(), rules=rules, root=tmp_path)
    return sorted((f.rule_id, f.severity.label) for f in result.findings)


def test_the_enum_classes_list_is_derived_from_the_enum_categories() -> None:
    enums = RuleSet.load().lists[ENUM_CLASSES]
    assert "http.HTTPStatus" in enums  # python_stdlib.yaml, category "enums"
    assert "transformers.trainer_utils.IntervalStrategy" in enums  # "task-enums"
    assert "accelerate.DistributedType" in enums  # generated lists, category "enum"
    for plain in ("pathlib.Path", "collections.OrderedDict", "argparse.Namespace"):
        assert plain not in enums


def test_members_by_name_pass(tmp_path: Path) -> None:
    by_name = _holding(_getattr("http", "HTTPStatus", "OK"),
                       _getattr("http", "HTTPStatus", "NOT_FOUND"))
    assert _verdict(tmp_path, by_name) == []
    # Protocol 4 reaches the same member with one dotted name.
    dotted = proto(4) + stack_global("http", "HTTPStatus.OK") + TUPLE1 + STOP
    assert _verdict(tmp_path, dotted) == []


@pytest.mark.parametrize(("module", "cls", "name"), [
    ("http", "HTTPStatus", "from_bytes"),  # a method of an allowlisted enum class
    ("http", "HTTPStatus", "ok"),  # not a member-like name
    ("http", "HTTPStatus", "_missing_"),
    ("pathlib", "PosixPath", "HOME"),  # member-like, but not an enum class
    ("mylib", "Mode", "FAST"),  # an enum class nobody listed
])
def test_anything_else_reached_that_way_is_still_judged(tmp_path: Path, module: str, cls: str,
                                                         name: str) -> None:
    assert ("PKL003", "high") in _verdict(tmp_path, _holding(_getattr(module, cls, name)))


def test_a_member_the_pickle_calls_is_not_excused(tmp_path: Path) -> None:
    called = _holding(call(_getattr("http", "HTTPStatus", "OK"), binunicode("x")))
    found = _verdict(tmp_path, called)
    assert found and all(severity in ("high", "critical") for _, severity in found)


def test_a_users_own_enum_category_counts_too(tmp_path: Path) -> None:
    data = _holding(_getattr("mylib", "Mode", "FAST"))
    rules = RuleSet.load(extra_list_entries={
        "safe_globals": [ListEntry("mylib.Mode", "company-enums", "our own enum")]})
    assert _verdict(tmp_path, data, rules=rules) == []
    plain = RuleSet.load(extra_list_entries={
        "safe_globals": [ListEntry("mylib.Mode", "company-classes", "our own class")]})
    assert ("PKL003", "high") in _verdict(tmp_path, data, rules=plain)


@pytest.mark.parametrize(("module", "name", "owner"), [
    ("http", "HTTPStatus.OK", "http.HTTPStatus"),
    ("a.b", "C.D.MEMBER_2", "a.b.C.D"),
    ("http", "HTTPStatus", None),
    ("http", "HTTPStatus.from_bytes", None),
    ("http", "HTTPStatus._OK", None),
    ("http", ".OK", None),
])
def test_member_owner(module: str, name: str, owner: str | None) -> None:
    assert member_owner(module, name) == owner
