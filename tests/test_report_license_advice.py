"""LIC006's advice fits the card: a card that already says `license: other` with `license_name`
is not told to do so again."""

from __future__ import annotations

from pathlib import Path

from ckptguard.api import scan
from ckptguard.config import Config


def _repo(tmp_path: Path, front_matter: str) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text(f"---\n{front_matter}---\n# model\n", encoding="utf-8")
    (repo / "config.json").write_text('{"model_type": "bert"}', encoding="utf-8")
    (repo / "model.safetensors").write_bytes(b"\x02\x00\x00\x00\x00\x00\x00\x00{}")
    return repo


def _lic006(repo: Path) -> list[str]:
    result = scan([repo], Config(), root=repo.parent)
    return [f.message for f in result.findings if f.rule_id == "LIC006"]


def test_card_following_the_other_convention_is_told_to_read_the_terms(tmp_path: Path) -> None:
    messages = _lic006(_repo(tmp_path, "license: other\nlicense_name: acme-model-terms\n"
                                       "license_link: LICENSE\n"))
    assert messages, "an unknown license name is still worth a low finding"
    assert all("`license: other` with `license_name`" not in m for m in messages)
    assert any("read" in m for m in messages)


def test_free_text_license_gets_the_convention(tmp_path: Path) -> None:
    messages = _lic006(_repo(tmp_path, "license: my own terms\n"))
    assert any("`license: other` with `license_name`" in m for m in messages)
