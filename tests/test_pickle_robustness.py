"""Hostile input never crashes the pickle parser: random bytes, mutated and truncated real pickles
always end in facts (an error or a limit at worst), within the limits."""

from __future__ import annotations

import pickle
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.parser import parse
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.source import MemorySource
from fixtures.pickle_asm import STOP, proto

SMALL = ParseContext(limits=replace(DEFAULT_LIMITS, max_pickle_opcodes=20_000,
                                    max_pickle_stack=2_000, max_pickle_memo=2_000))
SEED = pickle.dumps({"a": [1, 2.5, "x", b"y", (None, True)], "s": {1}, "n": 2**70}, protocol=4)


def run(data: bytes) -> ParseOutput:
    return parse(Artifact(("fuzz.pkl",), MemorySource(data)), SMALL)


def _well_formed(output: ParseOutput) -> None:
    assert len(list(output.of_kind("pickle.stream"))) == 1
    for fact in output.facts:
        if fact.kind == "pickle.import":
            assert fact.attrs["use"] in ("called", "instantiated", "referenced", "resolver")
            assert len(fact.attrs["reconstruction"]) <= 240


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    _well_formed(run(data))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(SEED) - 1), st.integers(0, 255), st.integers(1, len(SEED)))
def test_mutated_and_truncated_pickles(where: int, byte: int, cut: int) -> None:
    mutated = SEED[:where] + bytes([byte]) + SEED[where + 1:]
    _well_formed(run(mutated[:cut]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b"(", b")", b"\x85", b"\x86", b"\x87", b"t", b"R", b"b", b"2",
                                 b"0", b"1", b"\x94", b"h\x00", b"}", b"]", b"e", b"u", b"s",
                                 b"\x93", b"\x81", b"\x8c\x02os", b"\x8c\x06system", b"N",
                                 b"cbuiltins\ngetattr\n", b"cos\nsystem\n", b"Q", b"\x82\x01"]),
                max_size=60))
def test_opcode_soup(ops: list[bytes]) -> None:
    _well_formed(run(proto(4) + b"".join(ops) + STOP))


def test_deeply_nested_tuples_render_without_recursion() -> None:
    stream = proto(2) + b"cos\nsystem\n" + b"N" + b"\x85" * 5000 + b"\x85R."
    output = run(stream)
    (fact,) = list(output.of_kind("pickle.import"))
    assert fact.attrs["use"] == "called" and len(fact.attrs["reconstruction"]) <= 240
