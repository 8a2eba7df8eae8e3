"""License discovery, normalisation, identification and policy."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.license.catalog import load_catalog
from ckptguard.license.policy import LicensePolicy
from ckptguard.license.sources import front_matter
from ckptguard.license.textid import identify
from ckptguard.model import Category, Severity
from fixtures.licenses import APACHE_TEXT, LLAMA31_TEXT, MIT_TEXT, make_repo

CATALOG = load_catalog()


@pytest.mark.parametrize(("raw", "expected", "spdx"), [
    ("apache-2.0", "apache-2.0", "Apache-2.0"),
    ("Apache 2.0", "apache-2.0", "Apache-2.0"),
    ("Apache License 2.0", "apache-2.0", "Apache-2.0"),
    ("MIT License", "mit", "MIT"),
    ("GPL-3.0-or-later", "gpl-3.0", "GPL-3.0-or-later"),
    ("gpl-3.0", "gpl-3.0", "GPL-3.0-only"),
    ("cc-by-nc-4.0", "cc-by-nc-4.0", "CC-BY-NC-4.0"),
    ("llama3.1", "llama3.1", "LicenseRef-scancode-llama-3.1-license-2024"),
    ("LicenseRef-scancode-llama-2-license-2023", "llama2",
     "LicenseRef-scancode-llama-2-license-2023"),
])
def test_normalize_known_ids(raw: str, expected: str, spdx: str) -> None:
    normalized = CATALOG.normalize(raw)
    assert normalized.terms is not None
    assert normalized.id == expected
    assert normalized.terms.license_ref == spdx


@pytest.mark.parametrize("raw", ["", None, "my own terms", "((((", "MIT AND", "x" * 5000,
                                 "GPL-2.0 WITH", "Apache-2.0 OR OR MIT", 42, ["mit"]])
def test_normalize_never_raises_on_odd_input(raw: object) -> None:
    assert CATALOG.normalize(raw).terms is None


def test_compound_expression_is_kept_but_not_single_terms() -> None:
    normalized = CATALOG.normalize("MIT OR Apache-2.0")
    assert normalized.terms is None
    assert normalized.expression == "MIT OR Apache-2.0"


def test_gpl_family_ids_are_flagged_ambiguous_and_explicit_ids_are_not() -> None:
    assert CATALOG.by_hf["gpl-3.0"].ambiguous
    explicit = CATALOG.normalize("GPL-3.0-only").terms
    assert explicit is not None and not explicit.ambiguous


def test_every_hub_id_has_terms_and_every_terms_entry_is_a_hub_id() -> None:
    table = (Path(__file__).parent.parent / "rules/data/licenses/hf_to_spdx.tsv").read_text()
    hub_ids = {line.split("\t")[0] for line in table.splitlines()[1:] if line}
    assert hub_ids == set(CATALOG.by_hf)


def test_base_model_families() -> None:
    llama = CATALOG.base_license("meta-llama/Llama-3.1-8B-Instruct")
    assert llama is not None and llama.hf_id == "llama3.1"
    gemma = CATALOG.base_license("google/gemma-2-9b")
    assert gemma is not None and gemma.hf_id == "gemma"
    assert CATALOG.base_license("someone/unknown-model") is None


@pytest.mark.parametrize(("text", "expected"), [
    (APACHE_TEXT, "apache-2.0"), (MIT_TEXT, "mit"), (LLAMA31_TEXT, "llama3.1"),
])
def test_identify_license_texts(text: str, expected: str) -> None:
    match = identify(text, CATALOG)
    assert match is not None and match.hf_id == expected and 0 < match.confidence <= 1


def test_identify_unknown_text() -> None:
    assert identify("All rights reserved. Do not copy.", CATALOG) is None


def test_front_matter_refuses_yaml_aliases() -> None:
    bomb = "---\na: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b]\n---\n"
    data, problem = front_matter(bomb)
    assert data is None and problem is not None and "aliases" in problem


def test_front_matter_reports_invalid_yaml() -> None:
    data, problem = front_matter("---\nlicense: [unclosed\n---\n")
    assert data is None and problem is not None


def test_policy_rejects_unknown_keys() -> None:
    with pytest.raises(ValueError, match="fail-on-conflcit"):
        LicensePolicy.from_options({"fail-on-conflcit": True})
    policy = LicensePolicy.from_options({"fail_on_conflict": True, "denied": ["MIT"]})
    assert policy.fail_on_conflict and policy.denied == frozenset({"mit"})


def _rules(result_findings: object) -> set[str]:
    return {f.rule_id for f in result_findings}  # type: ignore[attr-defined]


def test_license_findings_stay_below_the_default_gate(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "Llama-relabelled", {"license": "apache-2.0",
                                                    "base_model": "meta-llama/Llama-3.1-8B"},
                     files={"LICENSE": MIT_TEXT})
    result = scan([repo], root=tmp_path)
    assert {"LIC001", "LIC002"} <= _rules(result.findings)
    license_findings = [f for f in result.findings if f.category is Category.LICENSE]
    assert all(f.severity <= Severity.MEDIUM for f in license_findings)
    assert not result.failed


def test_fail_on_conflict_policy_raises_conflicts(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "conflict", {"license": "apache-2.0"}, files={"LICENSE": MIT_TEXT})
    result = scan([repo], Config(license_policy={"fail-on-conflict": True}), root=tmp_path)
    conflict = [f for f in result.findings if f.rule_id == "LIC001"]
    assert conflict and conflict[0].severity is Severity.HIGH
    assert "fail-on-conflict" in conflict[0].message
    assert result.failed


def test_commercial_policy_fails_on_noncommercial_base(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "nc-derivative", {"license": "cc-by-nc-4.0",
                                                 "base_model": "CohereForAI/aya-23-8B"})
    relaxed = scan([repo], root=tmp_path)
    strict = scan([repo], Config(license_policy={"commercial-use": True}), root=tmp_path)
    assert not relaxed.failed
    assert strict.failed
    assert any(f.rule_id == "LIC008" and "Commercial-use policy" in f.message
               for f in strict.findings)


def test_embedded_metadata_disagreeing_with_card_is_reported(tmp_path: Path) -> None:
    repo = make_repo(tmp_path, "meta", {"license": "apache-2.0"},
                     weights_metadata={"license": "cc-by-nc-4.0"})
    result = scan([repo], root=tmp_path)
    # The embedded key is read by the safetensors parser; without it the repo still agrees.
    from ckptguard.formats import parser_for

    if parser_for("safetensors") is None:
        pytest.skip("safetensors parser not available")
    assert "LIC001" in _rules(result.findings)
