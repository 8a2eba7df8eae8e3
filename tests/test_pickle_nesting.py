"""Containers nested too deep for the code that walks a loaded result: lists, dicts, tuples and
objects inside each other past ``Limits.max_pickle_nesting`` are a limit hit (SCN001), whatever
opcodes build them; what CPython's own pickler writes at its default recursion limit, shared and
cyclic structures included, is not.

The deep streams are written by CPython's pickler with its recursion limit raised (writing is
not loading: nothing here is unpickled)."""

from __future__ import annotations

import pickle
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.limits import DEFAULT_LIMITS, Limits
from ckptguard.model import ScanResult

LIMIT = DEFAULT_LIMITS.max_pickle_nesting


@contextmanager
def deep_recursion(limit: int) -> Iterator[None]:
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


def written(value: Any, protocol: int = 2) -> bytes:
    with deep_recursion(20_000):
        return pickle.dumps(value, protocol=protocol)


def scanned(tmp_path: Path, data: bytes, limits: Limits = DEFAULT_LIMITS) -> ScanResult:
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    return scan([path], Config(limits=limits), root=tmp_path)


def nesting_hits(result: ScanResult) -> list[str]:
    """SCN001 for the nesting bound (containers, or the MARKs that older protocols open for
    each level)."""
    return [f.message for f in result.findings
            if f.rule_id == "SCN001" and "pickle nesting" in f.message]


def nested(depth: int, wrap: Callable[[Any], Any]) -> Any:
    value: Any = 0
    for _ in range(depth - 1):
        value = wrap(value)
    return value


SHAPES: dict[str, Callable[[Any], Any]] = {
    "lists": lambda inner: [inner],
    "lists with siblings": lambda inner: [1, inner, 2],  # APPENDS under a MARK
    "dicts": lambda inner: {"k": inner},
    "tuples": lambda inner: (inner,),
    "tuples in lists": lambda inner: [(inner, 1)],
    "OrderedDicts": lambda inner: OrderedDict(k=inner),  # items set on the object
    "slices": lambda inner: slice(inner, 1),  # a call whose argument holds the level below
    "frozensets": lambda inner: frozenset({(inner,)}),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("protocol", [0, 2, 4])
def test_nesting_past_the_limit_is_a_limit_hit(tmp_path: Path, shape: str,
                                               protocol: int) -> None:
    result = scanned(tmp_path, written(nested(2 * LIMIT, SHAPES[shape]), protocol))
    hits = nesting_hits(result)
    assert hits, (shape, [f.rule_id for f in result.findings])
    assert result.failed  # SCN001 is high: the rest of the stream was not examined


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_nesting_within_the_limit_passes(tmp_path: Path, shape: str) -> None:
    result = scanned(tmp_path, written(nested(LIMIT // 2, SHAPES[shape])))
    assert not nesting_hits(result), result.findings


def test_the_limit_is_the_configured_one(tmp_path: Path) -> None:
    data = written(nested(60, SHAPES["lists"]))
    assert not nesting_hits(scanned(tmp_path, data))
    assert nesting_hits(scanned(tmp_path, data, Limits(max_pickle_nesting=50)))


def test_shared_and_cyclic_structures_are_measured_once(tmp_path: Path) -> None:
    """A tuple shared by both halves of its parent at every level (2^60 paths, 60 levels) and a
    list that holds itself are ordinary for the pickler; neither is deep."""
    shared: Any = 0
    for _ in range(60):
        shared = (shared, shared)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    node: dict[str, Any] = {"children": []}
    for _ in range(50):  # a tree with parent links: cycles at every level
        child: dict[str, Any] = {"parent": node, "children": []}
        node["children"].append(child)
        node = child
    for value in (shared, cyclic, node):
        result = scanned(tmp_path, written(value))
        assert not nesting_hits(result), result.findings


def test_a_deep_result_left_on_the_stack_by_the_last_opcode_is_measured(tmp_path: Path) -> None:
    """A tuple chain is only measured where it lands; the value STOP returns lands in the
    caller's hands."""
    data = b"\x80\x02N" + b"\x85" * (LIMIT + 5) + b"."  # NONE, then TUPLE1 again and again
    assert nesting_hits(scanned(tmp_path, data))
    assert not nesting_hits(scanned(tmp_path, b"\x80\x02N" + b"\x85" * (LIMIT - 5) + b"."))


def test_a_tuple_is_measured_once_however_often_it_is_placed() -> None:
    """A stream can place one huge flat tuple a million times through the memo: measuring it
    again each time would be quadratic, so a long tuple is remembered after its first
    measurement, a nested one always, and a short flat one is simply looked at again."""
    from ckptguard.formats.pickle.nesting import SHORT_TUPLE, Nesting
    from ckptguard.formats.pickle.trace import LimitHit
    from ckptguard.formats.pickle.values import ListV

    nesting = Nesting(LIMIT)
    long_flat = tuple(range(10_000))
    short_flat = tuple(range(SHORT_TUPLE))
    deep: Any = ()
    for _ in range(LIMIT // 2):
        deep = (deep,)
    for value, depth, remembered in ((long_flat, 1, True), (short_flat, 1, False),
                                     (deep, LIMIT // 2 + 1, True)):
        target = ListV()
        nesting.place(target, [value, value], offset=0)
        assert target.depth == depth + 1
        assert (nesting._stored(value) is not None) is remembered
    deeper = deep
    for _ in range(LIMIT):
        deeper = (deeper,)
    with pytest.raises(LimitHit, match="containers nested more than"):
        nesting.place(ListV(), [deeper], offset=0)
