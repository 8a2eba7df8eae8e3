"""The declarative matcher: does a fact satisfy a rule's ``match``?

``match`` has the form::

    match:
      fact: pickle.import          # the fact kind (a list of kinds is accepted)
      where:                       # every condition must hold
        qualname: {in_list: dangerous_callables}
        use: {in: [called, instantiated]}
      any: [ {where: ...}, ... ]   # at least one sub-match holds
      not: {where: ...}            # the sub-match does not hold

A condition is a literal (equality) or a mapping of operators: ``equals``, ``not_equals``, ``in``,
``not_in``, ``in_list``, ``not_in_list``, ``matches`` (regex search), ``gt``, ``gte``, ``lt``,
``lte``, ``exists``, ``contains``.  A successful ``in_list`` captures the list entry as
``<attr>_category`` and ``<attr>_why`` for the message template.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from ckptguard.engine.namelists import NameList
from ckptguard.facts import Fact

OPERATORS = {"equals", "not_equals", "in", "not_in", "in_list", "not_in_list", "matches", "gt",
             "gte", "lt", "lte", "exists", "contains"}


class MatchError(ValueError):
    pass


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _compare(op: str, value: Any, arg: Any) -> bool:
    try:
        if op == "gt":
            return bool(value > arg)
        if op == "gte":
            return bool(value >= arg)
        if op == "lt":
            return bool(value < arg)
        return bool(value <= arg)
    except TypeError:
        return False


def _condition(attr: str, value: Any, cond: Any, lists: Mapping[str, NameList],
               captures: dict[str, Any]) -> bool:
    if not isinstance(cond, Mapping):
        return bool(value == cond)
    for op, arg in cond.items():
        if op == "equals":
            ok = value == arg
        elif op == "not_equals":
            ok = value != arg
        elif op == "in":
            ok = value in arg
        elif op == "not_in":
            ok = value not in arg
        elif op in ("in_list", "not_in_list"):
            names = [arg] if isinstance(arg, str) else list(arg)
            entry = None
            for list_name in names:
                if list_name not in lists:
                    raise MatchError(f"unknown name list {list_name!r}")
                entry = lists[list_name].lookup(value) if isinstance(value, str) else None
                if entry is not None:
                    break
            ok = (entry is not None) == (op == "in_list")
            if entry is not None and op == "in_list":
                captures[f"{attr}_category"] = entry.category
                captures[f"{attr}_why"] = entry.why
        elif op == "matches":
            ok = isinstance(value, str) and _regex(str(arg)).search(value) is not None
        elif op in ("gt", "gte", "lt", "lte"):
            ok = value is not None and _compare(op, value, arg)
        elif op == "exists":
            ok = (value is not None) == bool(arg)
        elif op == "contains":
            ok = isinstance(value, (str, list, tuple, set, frozenset)) and arg in value
        else:
            raise MatchError(f"unknown operator {op!r} on {attr!r}")
        if not ok:
            return False
    return True


def matches(fact: Fact, spec: Mapping[str, Any], lists: Mapping[str, NameList],
            captures: dict[str, Any] | None = None) -> bool:
    """Whether ``fact`` satisfies ``spec``; fills ``captures`` with what in_list matched."""
    caps: dict[str, Any] = {} if captures is None else captures
    kinds = spec.get("fact")
    if kinds is not None:
        allowed = [kinds] if isinstance(kinds, str) else list(kinds)
        if fact.kind not in allowed:
            return False
    where = spec.get("where") or {}
    for attr, cond in where.items():
        if not _condition(attr, fact.get(attr), cond, lists, caps):
            return False
    alternatives = spec.get("any")
    if alternatives is not None and not any(matches(fact, alt, lists, caps)
                                            for alt in alternatives):
        return False
    negated = spec.get("not")
    return negated is None or not matches(fact, negated, lists, {})


def validate(spec: Mapping[str, Any], lists: Mapping[str, NameList], where: str) -> None:
    """Raise MatchError for unknown operators or list names (rules are linted on load)."""
    unknown_keys = set(spec) - {"fact", "where", "any", "not"}
    if unknown_keys:
        raise MatchError(f"{where}: unknown match keys {sorted(unknown_keys)}")
    for attr, cond in (spec.get("where") or {}).items():
        if isinstance(cond, Mapping):
            for op, arg in cond.items():
                if op not in OPERATORS:
                    raise MatchError(f"{where}: unknown operator {op!r} on {attr!r}")
                if op in ("in_list", "not_in_list"):
                    for name in [arg] if isinstance(arg, str) else arg:
                        if name not in lists:
                            raise MatchError(f"{where}: unknown name list {name!r}")
                if op == "matches":
                    re.compile(str(arg))
    for alt in spec.get("any") or []:
        validate(alt, lists, where)
    if spec.get("not") is not None:
        validate(spec["not"], lists, where)


class _Defaulting(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return "?"


def render_template(template: str, fact: Fact, captures: Mapping[str, Any]) -> str:
    """Fill ``{attr}`` placeholders from the fact's attributes and captures; unknown -> '?'."""
    values = _Defaulting({k: v for k, v in fact.attrs.items()})
    values.update(captures)
    try:
        return template.format_map(values)
    except (ValueError, AttributeError, IndexError, KeyError):
        return template
