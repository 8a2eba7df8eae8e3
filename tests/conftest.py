"""Shared test fixtures: a session-wide directory of generated fixture files and a canary path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from fixtures.registry import Fixture, all_fixtures  # noqa: E402


class FixtureFactory:
    """Builds each fixture once per test session, into its own folder."""

    def __init__(self, directory: Path, canary: Path) -> None:
        self.directory = directory
        self.canary = canary
        self.fixtures: dict[str, Fixture] = dict(all_fixtures())
        self._built: dict[str, Path] = {}

    def __call__(self, name: str) -> Path:
        if name not in self._built:
            fixture = self.fixtures[name]
            if not fixture.available():
                pytest.skip(f"fixture {name} needs {', '.join(fixture.requires)}")
            target = self.directory / name
            target.mkdir(parents=True, exist_ok=True)
            self._built[name] = fixture.build(target, self.canary)
        return self._built[name]


@pytest.fixture(scope="session")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("canary") / "PWNED"


@pytest.fixture(scope="session")
def make_fixture(tmp_path_factory: pytest.TempPathFactory,
                 canary: Path) -> Iterator[FixtureFactory]:
    yield FixtureFactory(tmp_path_factory.mktemp("fixtures"), canary)
