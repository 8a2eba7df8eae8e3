"""The SPDX 2.3 document: validated by spdx-tools, with checksums, licenses and lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from click.testing import CliRunner

from ckptguard.cli import main
from ckptguard.sbom.inventory import inventory
from ckptguard.sbom.spdx_document import build_document, validate
from fixtures.basic_formats import plain_data_pickle
from fixtures.licenses import LLAMA31_TEXT, make_repo


def _document(tmp_path: Path) -> dict[str, object]:
    result = CliRunner().invoke(main, ["sbom", str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_document_validates_and_describes_each_model(tmp_path: Path) -> None:
    make_repo(tmp_path, "Llama-3.1-tuned", {"license": "llama3.1",
                                             "base_model": "meta-llama/Llama-3.1-8B"},
              body="Built with Llama", files={"LICENSE": LLAMA31_TEXT})
    lone = tmp_path / "extra.pkl"
    lone.write_bytes(plain_data_pickle())
    units = inventory([tmp_path])
    assert validate(build_document(units)) == []
    doc = _document(tmp_path)
    assert doc["spdxVersion"] == "SPDX-2.3"
    packages = {p["name"]: p for p in doc["packages"]}  # type: ignore[attr-defined]
    model = packages["Llama-3.1-tuned"]
    assert model["licenseDeclared"] == "LicenseRef-scancode-llama-3.1-license-2024"
    assert model["licenseConcluded"] == model["licenseDeclared"]
    weights = next(p for name, p in packages.items() if name.endswith("model.safetensors"))
    digest = hashlib.sha256((tmp_path / "Llama-3.1-tuned/model.safetensors").read_bytes())
    assert weights["checksums"] == [{"algorithm": "SHA256", "checksumValue": digest.hexdigest()}]
    lone_package = packages["extra.pkl"]
    assert lone_package["checksums"][0]["checksumValue"] == \
        hashlib.sha256(lone.read_bytes()).hexdigest()
    refs = {r["licenseId"] for r in doc["hasExtractedLicensingInfos"]}  # type: ignore[attr-defined]
    assert "LicenseRef-scancode-llama-3.1-license-2024" in refs
    kinds = {(r["relationshipType"]) for r in doc["relationships"]}  # type: ignore[attr-defined]
    assert {"DESCRIBES", "CONTAINS", "DESCENDANT_OF"} <= kinds


def test_conflicting_lineage_concludes_no_assertion(tmp_path: Path) -> None:
    make_repo(tmp_path, "relabelled", {"license": "apache-2.0",
                                       "base_model": "meta-llama/Llama-3.1-8B"})
    doc = _document(tmp_path)
    model = next(p for p in doc["packages"] if p["name"] == "relabelled")  # type: ignore[attr-defined]
    assert model["licenseDeclared"] == "Apache-2.0"
    assert model["licenseConcluded"] == "NOASSERTION"
    assert "conflicts with base" in model["licenseComments"]


def test_adapter_and_quantized_relations(tmp_path: Path) -> None:
    make_repo(tmp_path, "adapter", {"license": "apache-2.0", "base_model": "google-bert/x",
                                    "base_model_relation": "adapter"})
    make_repo(tmp_path, "quant", {"license": "apache-2.0", "base_model": "google-bert/y",
                                  "base_model_relation": "quantized"})
    doc = _document(tmp_path)
    kinds = {r["relationshipType"] for r in doc["relationships"]}  # type: ignore[attr-defined]
    assert {"DEPENDS_ON", "VARIANT_OF"} <= kinds


def test_no_models_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    result = CliRunner().invoke(main, ["sbom", str(tmp_path)])
    assert result.exit_code == 2


def _hub_ids() -> list[str]:
    import csv

    table = Path(__file__).resolve().parent.parent / "rules" / "data" / "licenses" / \
        "hf_to_spdx.tsv"
    with table.open(encoding="utf-8") as handle:
        return [row["hf_id"] for row in csv.DictReader(handle, delimiter="\t")]


def test_every_hub_license_id_gives_a_valid_document(tmp_path: Path) -> None:
    """The whole Hub list (the project's copy, rules/data/licenses/hf_to_spdx.tsv): each id as
    a card's license, all in one document, which spdx-tools must accept."""
    ids = _hub_ids()
    assert {"openrail++", "llama2", "llama3", "apache-2.0"} <= set(ids) and len(ids) >= 80
    for index, hf_id in enumerate(ids):
        make_repo(tmp_path, f"model-{index:03d}", {"license": hf_id})
    assert validate(build_document(inventory([tmp_path]))) == []
    doc = _document(tmp_path)
    declared = {p["name"]: p["licenseDeclared"] for p in doc["packages"]}  # type: ignore[attr-defined]
    plus = declared[f"model-{ids.index('openrail++'):03d}"]
    assert plus == "LicenseRef-hf-openrail-plus-plus"
    assert plus != declared[f"model-{ids.index('openrail'):03d}"]


def test_license_ids_follow_one_order_spdx_then_scancode_then_hub() -> None:
    from ckptguard.license.catalog import load_catalog

    catalog = load_catalog()
    assert catalog.by_hf["mit"].license_ref == "MIT"
    assert catalog.by_hf["llama2"].license_ref == "LicenseRef-scancode-llama-2-license-2023"
    # ScanCode's LicenseDB has no Llama 3 entry: the Hub id, by the same rule as every other.
    assert catalog.by_hf["llama3"].license_ref == "LicenseRef-hf-llama3"
