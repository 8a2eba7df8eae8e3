"""Hypothesis mutation fuzzing of every parser (bounded: seconds).  Seeds are the fixtures'
own files; a parser must turn any mutation into facts (parse errors, limits) and never raise,
and the scanner must never let anything escape."""

from __future__ import annotations

import random
import signal
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ckptguard.config import Config
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import PARSERS, ParseContext, parser_for
from ckptguard.scanner import Scanner
from ckptguard.sniff import sniff
from ckptguard.source import FileSource, MemorySource
from fixtures.mutate import mutate

SECONDS_PER_INPUT = 20


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"parser ran longer than {seconds} s on one input")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def seeds(make_fixture) -> dict[str, list[tuple[str, bytes]]]:  # type: ignore[no-untyped-def]
    """Fixture files by sniffed format (small ones only)."""
    by_format: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for name, fixture in sorted(make_fixture.fixtures.items()):
        if not fixture.available():
            continue
        built: Path = make_fixture(name)
        files = [built] if built.is_file() else sorted(p for p in built.rglob("*")
                                                       if p.is_file())
        for path in files:
            if path.stat().st_size > 2_000_000:
                continue
            fmt = sniff(Artifact((str(path),), FileSource(str(path)))).format
            if fmt in PARSERS and fmt != "hf-repo":
                by_format[fmt].append((path.name, path.read_bytes()))
    return by_format


FUZZED = sorted(f for f in PARSERS if f not in ("hf-repo", "filesystem"))  # no bytes of their own


def test_every_parser_has_seeds(seeds: dict[str, list[tuple[str, bytes]]]) -> None:
    missing = [f for f in FUZZED if not seeds.get(f)]
    assert not missing, f"no fixture seeds for: {missing}"


@pytest.mark.parametrize("fmt", FUZZED)
@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1),
       rounds=st.integers(min_value=1, max_value=8))
def test_parser_survives_mutations(fmt: str, seed: int, rounds: int,
                                   seeds: dict[str, list[tuple[str, bytes]]]) -> None:
    samples = seeds.get(fmt)
    if not samples:
        pytest.skip(f"no seeds for {fmt}")
    rng = random.Random(seed)
    name, original = samples[rng.randrange(len(samples))]
    data = mutate(original, rng, rounds)
    parser = parser_for(fmt)
    assert parser is not None
    artifact = Artifact((name,), MemorySource(data), format_hint=fmt)
    with time_limit(SECONDS_PER_INPUT):
        output = parser(artifact, ParseContext())
    assert isinstance(output, ParseOutput)


RULES = RuleSet.load()


@settings(max_examples=100, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1),
       rounds=st.integers(min_value=1, max_value=6))
def test_scanner_never_raises_on_mutated_fixtures(
        seed: int, rounds: int, seeds: dict[str, list[tuple[str, bytes]]]) -> None:
    rng = random.Random(seed)
    fmt = rng.choice(sorted(seeds))
    name, original = seeds[fmt][rng.randrange(len(seeds[fmt]))]
    artifact = Artifact((name,), MemorySource(mutate(original, rng, rounds)))
    scanner = Scanner(RULES, Config())
    with time_limit(SECONDS_PER_INPUT):
        outcomes = list(scanner.scan(artifact))
    assert outcomes and outcomes[0].summary.chain == (name,)
    internal = [f for o in outcomes for f in o.findings if f.rule_id == "SCN002"]
    assert not internal, f"a parser crashed on a mutated {fmt}: {internal[0].message}"
