"""The shipped generated lists (rules/lists/safe_globals/generated/): well-formed, inside their
package, never a denylisted name, merged into safe_globals, and reproducible."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from ckptguard.engine.namelists import load_list_file
from ckptguard.engine.ruleset import RuleSet, rules_directory
from ckptguard.yamlio import load_yaml

GENERATED = rules_directory() / "lists" / "safe_globals" / "generated"
FILES = sorted(GENERATED.glob("*.yaml"))
RULES = RuleSet.load()


def _header(path: Path) -> dict[str, Any]:
    data = load_yaml(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    source = data.get("generated-from")
    assert isinstance(source, dict), f"{path.name}: no generated-from header"
    return source


def test_there_are_generated_lists() -> None:
    assert len(FILES) >= 5, [p.name for p in FILES]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_a_generated_list_is_well_formed(path: Path) -> None:
    source = _header(path)
    packages = tuple(source["packages"])
    assert source["version"] != "unknown" and len(source["source-sha256"]) == 64
    listed = load_list_file(path)
    assert listed.description.strip()
    dangerous = RULES.lists["dangerous_callables"]
    for entry in listed.entries():
        assert entry.pattern.split(".")[0] in packages, entry.pattern
        assert "*" not in entry.pattern and "?" not in entry.pattern, entry.pattern
        assert len(entry.why.split()) >= 4 and entry.category, entry
        assert entry.pattern not in dangerous, f"{path.name}: {entry.pattern} is denylisted"


def test_generated_entries_are_part_of_safe_globals() -> None:
    safe = RULES.lists["safe_globals"]
    for path in FILES:
        first = next(iter(load_list_file(path).entries()))
        assert first.pattern in safe, f"{path.name} is not merged into safe_globals"


def _load_generator() -> Any:
    script = Path(__file__).resolve().parent.parent / "bench" / "gen_allowlists.py"
    spec = importlib.util.spec_from_file_location("gen_allowlists", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_allowlists"] = module
    spec.loader.exec_module(module)
    return module


def test_regenerating_gives_the_same_bytes() -> None:
    # joblib is small and installed with ckptguard's extras; the committed list must be exactly
    # what the generator writes for the pinned version.
    gen = _load_generator()
    committed = GENERATED / "joblib.yaml"
    if not committed.is_file():
        pytest.skip("no generated joblib list")
    lib = gen.BY_NAME["joblib"]
    source = gen.sources_of(lib, {}) if lib.installed else None
    if source is None or source.version != _header(committed)["version"]:
        pytest.skip("the installed joblib is not the pinned version")
    from ckptguard.allowgen.listfile import dump

    result = gen.generate(lib, {"joblib": source}, gen.hand_list())
    assert dump(result, tool="bench/gen_allowlists.py") == committed.read_text(encoding="utf-8")
