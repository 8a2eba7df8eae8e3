"""License lineage read from what the files say: the model's name from the card (title,
model_name, model-index) or the weights (GGUF general.name), base models from the card or a
weight file's own metadata, and the base-model family table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Fact
from ckptguard.license.catalog import load_catalog
from ckptguard.license.embedded import lineage_facts
from ckptguard.license.families import BaseRef, parse_families
from ckptguard.license.lineage import embedded_bases, embedded_name, name_begins_with
from ckptguard.license.naming import card_title
from ckptguard.model import Finding, Location, Severity
from ckptguard.yamlio import load_yaml
from fixtures.license_lineage import (
    LLAMA3_BASE,
    LLAMA3_NOTICE,
    LLAMA3_TEXT,
    META_LLAMA3,
    gguf_model,
)
from fixtures.licenses import make_repo

CATALOG = load_catalog()
TABLE = Path(__file__).parent.parent / "rules/data/licenses/base_models.yaml"
HERE = Location(("model.bin",))


def _findings(path: Path, rule: str, config: Config | None = None) -> list[Finding]:
    result = scan([path], config or Config(), root=path.parent)
    return [f for f in result.findings if f.rule_id == rule]


def _llama3_repo(tmp_path: Path, folder: str, front: dict[str, object], *, title: str | None,
                 extra: dict[str, bytes] | None = None) -> Path:
    return make_repo(tmp_path, folder, {"license": "llama3", "base_model": LLAMA3_BASE, **front},
                     title=title, body=f"{LLAMA3_NOTICE}.", files={"LICENSE": LLAMA3_TEXT},
                     extra=extra)


# --- the name judged ---------------------------------------------------------------------
def test_card_title_is_judged_not_the_folder(tmp_path: Path) -> None:
    """The reported miss: a card titled 'Llama 3 …' cloned into a folder of another name."""
    repo = _llama3_repo(tmp_path, "checkout", {}, title="Llama 3 Instruct Tuned")
    assert _findings(repo, "LIC003") == []
    misnamed = _llama3_repo(tmp_path, "Llama-3-folder", {}, title="Instruct Tuned")
    [finding] = _findings(misnamed, "LIC003")
    evidence = finding.evidence_dict()
    assert evidence["name"] == "Instruct Tuned" and evidence["name_source"] == "card:title"
    assert "from card:title" in finding.message and "Llama 3" in finding.message


@pytest.mark.parametrize(("front", "title", "source"), [
    ({"model_name": "bad-1", "model-index": [{"name": "bad-2"}]}, "bad-0", "card:title"),
    ({"model_name": "bad-1", "model-index": [{"name": "bad-2"}]}, None, "card:model_name"),
    ({"model-index": [{"name": "bad-2"}]}, None, "card:model-index"),
    ({}, None, "gguf:general.name"),
])
def test_name_sources_in_order(tmp_path: Path, front: dict[str, object], title: str | None,
                               source: str) -> None:
    gguf = gguf_model([("general.name", "bad-3")])
    repo = _llama3_repo(tmp_path, "Llama-3-named-folder", front, title=title,
                        extra={"m.gguf": gguf})
    [finding] = _findings(repo, "LIC003")
    assert finding.evidence_dict()["name_source"] == source


def test_folder_name_is_the_last_resort_and_says_so(tmp_path: Path) -> None:
    repo = _llama3_repo(tmp_path, "some-folder", {}, title=None)
    [finding] = _findings(repo, "LIC003")
    assert finding.evidence_dict()["name_source"] == "folder name"
    assert _findings(_llama3_repo(tmp_path / "b", "Llama-3-x", {}, title=None), "LIC003") == []


@pytest.mark.parametrize(("text", "expected"), [
    ("# Llama 3 Tuned\n", "Llama 3 Tuned"),
    ("intro\n## Not a title\n# Real Title #\n", "Real Title"),
    ("```\n# inside a fence\n```\n# After\n", "After"),
    ("# Model Card for Llama-3-8B-x\n", "Llama-3-8B-x"),
    ("# [**Llama 3 Linked**](https://example.org)\n", "Llama 3 Linked"),
    ("# Model Card for {{ model_id }}\n# Second\n", "Second"),
    ("#NoSpace\n", None),
    ("", None),
])
def test_card_title(text: str, expected: str | None) -> None:
    found = card_title(text)
    assert (found[0] if found else None) == expected


@pytest.mark.parametrize(("name", "prefix", "ok"), [
    ("Llama 3 8B Tuned", "Llama 3", True), ("Llama-3-8B-tuned", "Llama 3", True),
    ("llama_3_chat", "Llama 3", True), ("Llama3-chat", "Llama 3", True),
    ("Meta-Llama-3-8B-tuned", "Llama 3", False), ("My Llama 3", "Llama 3", False),
    ("Llama-2-7b", "Llama 3", False), ("Llama-3.1-8B-x", "Llama", True), ("", "Llama", False),
    ("\U0001f999 Llama 3 Chat", "Llama 3", True), ("x Llama 3", "Llama 3", False),
])
def test_name_begins_with(name: str, prefix: str, ok: bool) -> None:
    assert name_begins_with(name, prefix) is ok


# --- lone files ----------------------------------------------------------------------------
def test_lone_gguf_mit_on_meta_llama3_is_flagged(tmp_path: Path) -> None:
    """The reported miss: a GGUF declaring mit on a Meta Llama 3 base, scanned on its own."""
    path = tmp_path / "tuned.gguf"
    path.write_bytes(gguf_model([("general.name", "Llama 3 Tuned"), ("general.license", "mit")],
                                bases=(META_LLAMA3,)))
    [finding] = _findings(path, "LIC002")
    evidence = finding.evidence_dict()
    assert evidence["base_license"] == "llama3" and evidence["declared"] == "mit"
    assert evidence["base_stated_in"] == "gguf:general.base_model.0"
    assert evidence["matched_by"] == "repository URL"
    assert evidence["declared_in"] == "gguf:general.license"
    assert finding.severity <= Severity.MEDIUM  # default severities unchanged
    strict = _findings(path, "LIC002", Config(license_policy={"fail-on-conflict": True}))
    assert strict and strict[0].severity is Severity.HIGH


@pytest.mark.parametrize(("base", "how"), [
    ({"name": "Meta Llama 3 8B", "organization": "Meta Llama"}, "organisation and name"),
    ({"name": "Meta Llama 3 8B Instruct"}, "display name"),
    ({"name": "meta-llama/Meta-Llama-3-8B"}, "repository id"),
    ({"repo_url": "https://huggingface.co/meta-llama/Meta-Llama-3-8B"}, "repository URL"),
])
def test_lone_gguf_base_recognised_every_way(tmp_path: Path, base: dict[str, str],
                                             how: str) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_model([("general.license", "apache-2.0")], bases=(base,)))
    [finding] = _findings(path, "LIC002")
    assert finding.evidence_dict()["matched_by"] == how


def test_lone_gguf_naming_rule_needs_a_stated_name(tmp_path: Path) -> None:
    unnamed = tmp_path / "Llama-3-x.gguf"
    unnamed.write_bytes(gguf_model([("general.license", "llama3")], bases=(META_LLAMA3,)))
    assert _findings(unnamed, "LIC003") == []  # no name stated: nothing to judge
    named = tmp_path / "other.gguf"
    named.write_bytes(gguf_model([("general.license", "llama3"), ("general.name", "Chat")],
                                 bases=(META_LLAMA3,)))
    [finding] = _findings(named, "LIC003")
    assert finding.evidence_dict()["name_source"] == "gguf:general.name"
    assert "LICENSE" not in finding.message  # a lone file is not asked for a LICENSE file


def test_gguf_in_a_repo_without_card_base_stands_for_the_repo(tmp_path: Path) -> None:
    gguf = gguf_model([("general.license", "apache-2.0"), ("general.name", "Chat")],
                      bases=(META_LLAMA3,))
    repo = make_repo(tmp_path, "repo", {"license": "apache-2.0"}, extra={"m.gguf": gguf},
                     title=None)
    findings = _findings(repo, "LIC002")
    stated = {str(f.evidence_dict()["base_stated_in"]) for f in findings}
    assert stated == {"gguf:general.base_model.0"}
    # the repository (its card says apache-2.0) and the GGUF file (it says so too) are judged
    assert sorted(f.location.chain for f in findings) == [("repo/", "m.gguf"), ("repo/m.gguf",)]
    # in the repo the file's own name is not judged alone; it names the repository (no title)
    [naming] = _findings(repo, "LIC003")
    assert naming.location.chain == ("repo/",)
    assert naming.evidence_dict()["name_source"] == "gguf:general.name"


def test_the_same_file_scanned_alone_is_judged_on_its_own_name(tmp_path: Path) -> None:
    gguf = gguf_model([("general.license", "llama3"), ("general.name", "Chat")],
                      bases=(META_LLAMA3,))
    repo = make_repo(tmp_path, "repo", {"license": "llama3"}, extra={"m.gguf": gguf})
    [alone] = _findings(repo / "m.gguf", "LIC003")
    assert alone.location.chain == ("m.gguf",)
    assert "from gguf:general.name" in alone.message


def test_unknown_base_is_not_judged(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_model([("general.license", "mit")],
                                bases=({"name": "Some Model 7B", "organization": "Someone"},)))
    assert _findings(path, "LIC002") == []


# --- facts from metadata ------------------------------------------------------------------
@pytest.mark.parametrize(("value", "expected"), [
    ("meta-llama/Llama-3.1-8B", ["meta-llama/Llama-3.1-8B"]),
    ('["a/b", "c/d"]', ["a/b", "c/d"]),
    ("a/b, c/d", ["a/b", "c/d"]),
    ("[not json", ["[not json"]),
    ("  ", []),
])
def test_lineage_facts_base_model_values(value: str, expected: list[str]) -> None:
    facts = list(lineage_facts(HERE, "base_model", value, "x:base_model"))
    assert [f.get("value") for f in facts] == expected
    assert [f.get("index") for f in facts] == list(range(len(expected)))


def test_lineage_facts_ignore_other_keys_and_read_names() -> None:
    assert list(lineage_facts(HERE, "format", "pt", "x")) == []
    [name] = lineage_facts(HERE, "modelspec.title", "Llama 3 X", "x")
    assert name.kind == "metadata.name" and name.get("value") == "Llama 3 X"


def test_embedded_bases_group_gguf_fields_per_index() -> None:
    def fact(index: int, field: str, value: str) -> Fact:
        key = f"general.base_model.{index}.{field}"
        return Fact.of("metadata.base_model", HERE.within(key=key), index=index, field=field,
                       value=value, source=f"gguf:{key}", key=key)
    bases = embedded_bases([fact(0, "name", "Meta Llama 3 8B"),
                            fact(0, "organization", "Meta Llama"),
                            fact(1, "name", "Gemma 2 9b"), fact(1, "organization", "Google")])
    assert [(b.ref.name, b.ref.organization, b.stated_in) for b in bases] == [
        ("Meta Llama 3 8B", "Meta Llama", "gguf:general.base_model.0"),
        ("Gemma 2 9b", "Google", "gguf:general.base_model.1")]


def test_embedded_name_prefers_gguf_general_name() -> None:
    facts = [Fact.of("metadata.name", HERE, key=key, value=value, source=f"x:{key}")
             for key, value in (("name", "second"), ("general.name", "first"))]
    found = embedded_name(facts)
    assert found is not None and found.value == "first"
    assert embedded_name([]) is None


# --- the family table ----------------------------------------------------------------------
@pytest.mark.parametrize(("ref", "license_id"), [
    (BaseRef("Meta Llama 3 8B", "Meta Llama"), "llama3"),
    (BaseRef("Llama 3.1 8B Instruct", "Meta Llama"), "llama3.1"),
    (BaseRef("Meta Llama 3.1 70B"), "llama3.1"),
    (BaseRef("Llama 3.2 1B"), "llama3.2"),
    (BaseRef("Gemma 2 9b", "Google"), "gemma"),
    (BaseRef("Mistral 7B v0.1", "Mistralai"), "apache-2.0"),
    (BaseRef("", "", "https://huggingface.co/google/gemma-2-2b"), "gemma"),
    (BaseRef("Qwen2.5 32B Instruct", "Qwen"), "apache-2.0"),
    (BaseRef("Qwen2.5 72B Instruct", "Qwen"), "qwen"),  # specific entries before general
    (BaseRef("DeepSeek R1 Distill Llama 8B", "Deepseek Ai"), "llama3.1"),
])
def test_family_table_maps_gguf_style_names(ref: BaseRef, license_id: str) -> None:
    found = CATALOG.base_family(ref)
    assert found is not None and found.family.license == license_id


def test_family_table_does_not_guess() -> None:
    for ref in (BaseRef("Some Model 7B", "Someone"), BaseRef("llama 30b"),
                BaseRef("", "", "https://huggingface.co/datasets/meta-llama/Llama-3-x")):
        assert CATALOG.base_family(ref) is None, ref


def test_every_family_names_its_source_and_a_known_or_noted_license() -> None:
    raw = load_yaml(TABLE.read_text(encoding="utf-8"))
    assert len(raw["families"]) == len(CATALOG.families) >= 50
    for entry, family in zip(raw["families"], CATALOG.families, strict=True):
        assert family.source.startswith("https://"), family.family
        assert family.license in CATALOG.by_hf or entry.get("note"), family.family


def test_family_entries_without_source_or_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="source"):
        parse_families({"families": [{"license": "mit", "repos": ["a/*"]}]})
    with pytest.raises(ValueError, match="neither"):
        parse_families({"families": [{"license": "mit", "source": "https://x"}]})


# --- the SBOM of a lone file ---------------------------------------------------------------
def test_sbom_of_a_lone_gguf_carries_its_declared_lineage(tmp_path: Path) -> None:
    from ckptguard.sbom.inventory import inventory
    from ckptguard.sbom.spdx_document import build_document, render_json, validate

    path = tmp_path / "tuned.gguf"
    path.write_bytes(gguf_model([("general.name", "Llama 3 Tuned"), ("general.license", "mit")],
                                bases=(META_LLAMA3, {"name": "Gemma 2 9b",
                                                     "organization": "Google"})))
    units = inventory([path], root=tmp_path)
    [unit] = units
    assert unit.name == "Llama 3 Tuned"
    document = build_document(units)
    assert validate(document) == []
    doc = json.loads(render_json(document))
    packages = {p["name"]: p for p in doc["packages"]}
    model = packages["Llama 3 Tuned"]
    assert model["licenseDeclared"] == "MIT"
    assert model["licenseConcluded"] == "NOASSERTION"  # mit does not carry llama3's terms
    llama = packages["Meta Llama / Meta Llama 3 8B"]
    assert llama["downloadLocation"] == META_LLAMA3["repo_url"]
    assert packages["Google / Gemma 2 9b"]["downloadLocation"] == "NOASSERTION"
    kinds = [r["relationshipType"] for r in doc["relationships"]]
    assert kinds.count("DESCENDANT_OF") == 2


@pytest.mark.parametrize(("raw", "expected"), [
    ("Llama 3 Community License", "llama3"),
    ("META LLAMA 3 COMMUNITY LICENSE AGREEMENT", "llama3"),
    ("Llama 3.1 Community License", "llama3.1"),
    ("Apache License, Version 2.0", "apache-2.0"),
])
def test_full_license_names_as_publishers_write_them(raw: str, expected: str) -> None:
    assert CATALOG.normalize(raw).id == expected


def test_other_with_a_license_name_is_read_as_the_name(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(gguf_model([("general.license", "other"),
                                 ("general.license.name", "Meta Llama 3 Community License")],
                                bases=(META_LLAMA3,)))
    assert _findings(path, "LIC001") == [] and _findings(path, "LIC002") == []
    relabelled = tmp_path / "r.gguf"
    relabelled.write_bytes(gguf_model([("general.license", "other"),
                                       ("general.license.name", "MIT")], bases=(META_LLAMA3,)))
    [finding] = _findings(relabelled, "LIC002")
    assert finding.evidence_dict()["declared_in"] == "gguf:general.license.name"


def test_discovered_files_know_the_repository_folder_they_belong_to(tmp_path: Path) -> None:
    from ckptguard.discover import discover
    from ckptguard.facts import Artifact

    repo = make_repo(tmp_path / "models", "repo", {"license": "mit"})
    (repo / "sub").mkdir()
    (repo / "sub" / "x.gguf").write_bytes(gguf_model([]))
    (tmp_path / "models" / "loose.gguf").write_bytes(gguf_model([]))
    found = {a.chain[0]: a.in_repo for a in discover([tmp_path / "models"], root=tmp_path)
             if isinstance(a, Artifact) and a.directory is None}
    assert found["models/repo/sub/x.gguf"] == "models/repo/"
    assert found["models/repo/model.safetensors"] == "models/repo/"
    assert found["models/loose.gguf"] is None
    [alone] = [a for a in discover([repo / "sub" / "x.gguf"], root=tmp_path)
               if isinstance(a, Artifact)]
    assert alone.in_repo is None  # named on its own: scanned on its own
