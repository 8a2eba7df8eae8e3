"""Repeated calls of a named global are summarised; calls judged one by one never are."""

from __future__ import annotations

from ckptguard.api import scan
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.parser import parse
from ckptguard.formats.pickle.trace import CALLS_PER_CALLEE
from ckptguard.source import MemorySource

SET_CALL = b"cbuiltins\nset\n)R0"  # set() and drop it: an allowlisted call
DYNAMIC_CALL = b"cbuiltins\nset\n)R)R0"  # set()() : a call of a computed value


def _stream(repeats: int, tail: bytes) -> bytes:
    return b"\x80\x02" + SET_CALL * repeats + tail + b"N."


def test_repeated_named_calls_keep_a_few_facts() -> None:
    output = parse(Artifact(("m.pkl",), MemorySource(_stream(500, b""))), ParseContext())
    calls = list(output.of_kind("pickle.call"))
    assert len(calls) == CALLS_PER_CALLEE
    assert next(output.of_kind("pickle.calls_summarized")).attrs["dropped"] == 500 - len(calls)


def test_a_dynamic_call_after_many_named_calls_is_still_judged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "padded.pkl"
    path.write_bytes(_stream(25_000, DYNAMIC_CALL))
    result = scan([path], rules=RuleSet.load(), root=tmp_path)
    assert "PKL007" in {f.rule_id for f in result.findings}
    assert result.failed
