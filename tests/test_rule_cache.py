"""The parsed-rules cache: used when the rule files are unchanged, ignored when they change,
and never a reason for a scan to fail."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ckptguard.engine import documents
from ckptguard.engine.ruleset import RuleSet, rules_directory


@pytest.fixture()
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(rules_directory(), target)
    return target


def test_cache_is_written_then_served(rules_copy: Path, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setenv("CKPTGUARD_CACHE_DIR", str(cache))
    first = documents.read_documents(rules_copy)
    assert len(list(cache.glob("rules-*.json"))) == 1
    calls: list[str] = []
    monkeypatch.setattr(documents, "load_yaml", lambda text: calls.append(text))
    assert documents.read_documents(rules_copy) == first
    assert calls == []  # served from the cache, no YAML parsed


def test_an_edited_rule_is_never_served_stale(rules_copy: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTGUARD_CACHE_DIR", str(tmp_path / "cache"))
    documents.read_documents(rules_copy)
    rule = rules_copy / "format" / "FMT003.yaml"
    rule.write_text(rule.read_text().replace("severity: high", "severity: medium"))
    ruleset = RuleSet.load(rules_copy)
    assert ruleset.rules["FMT003"].severity.label == "medium"


def test_unwritable_or_corrupt_cache_falls_back_to_parsing(
        rules_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("CKPTGUARD_CACHE_DIR", str(blocker))
    assert "format/FMT003.yaml" in documents.read_documents(rules_copy)
    good = tmp_path / "cache"
    monkeypatch.setenv("CKPTGUARD_CACHE_DIR", str(good))
    documents.read_documents(rules_copy)
    for cached in good.glob("rules-*.json"):
        cached.write_text("{not json")
    assert "format/FMT003.yaml" in documents.read_documents(rules_copy)


def test_cache_can_be_turned_off(rules_copy: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CKPTGUARD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CKPTGUARD_NO_CACHE", "1")
    documents.read_documents(rules_copy)
    assert not (tmp_path / "cache").exists()
