"""Every place a loader reads a chat template or follows an auto_map is found in a repo folder."""

from __future__ import annotations

import ckptguard
from ckptguard.formats.hfrepo_sources import (
    chat_templates,
    model_index_components,
    module_file,
    reference_configs,
)
from tests.conftest import FixtureFactory


def _by_rule(name: str, make_fixture: FixtureFactory) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in ckptguard.scan([make_fixture(name)]).findings:
        found.setdefault(item.rule_id, set()).add(item.location.path)
    return found


def test_reference_configs_cover_subfolder_processors_but_not_subrepos() -> None:
    files = ["config.json", "tokenizer_config.json", "model.safetensors.index.json",
             "feature_extractor/preprocessor_config.json", "processor/processor_config.json",
             "text_encoder/config.json", "text_encoder/tokenizer_config.json",
             "unet/diffusion_config.json", "special_tokens_map.json"]
    assert reference_configs(files) == [
        "config.json", "tokenizer_config.json", "feature_extractor/preprocessor_config.json",
        "processor/processor_config.json", "special_tokens_map.json"]


def test_module_file_prefers_the_configs_own_folder() -> None:
    present = {"proc/image_proc.py", "modeling.py"}
    assert module_file("proc/preprocessor_config.json", "image_proc", present) == \
        "proc/image_proc.py"
    assert module_file("proc/preprocessor_config.json", "modeling", present) == "modeling.py"
    assert module_file("config.json", "pkg.mod", present) == "pkg/mod.py"


def test_model_index_components_only_for_repo_files() -> None:
    index = {"_class_name": ["pipeline_x", "XPipeline"], "unet": ["my_unet", "U"],
             "vae": ["diffusers", "AutoencoderKL"], "text_encoder": ["transformers", "CLIP"],
             "tokenizer": [None, None], "_diffusers_version": "0.30.0"}
    present = {"pipeline_x.py", "unet/my_unet.py"}
    assert model_index_components(index, present) == [
        ("model_index._class_name", "pipeline_x.py", "XPipeline"),
        ("model_index.unet", "unet/my_unet.py", "U")]
    assert model_index_components(["x"], present) == []


def test_chat_template_mapping_form() -> None:
    assert chat_templates({"chat_template": {"default": "a", "rag": "b", "x": 3}}) == \
        [("default", "a"), ("rag", "b")]


def test_processor_config_template_is_analysed(make_fixture: FixtureFactory) -> None:
    found = _by_rule("hfrepo_processor_template_ssti", make_fixture)
    assert any(p.endswith("processor_config.json") for p in found["TPL001"])
    assert not make_fixture.canary.exists()


def test_named_template_in_chat_template_json(make_fixture: FixtureFactory) -> None:
    found = _by_rule("hfrepo_named_templates_ssti", make_fixture)
    assert any(p.endswith("chat_template.json") for p in found["TPL001"])


def test_additional_jinja_template_is_analysed(make_fixture: FixtureFactory) -> None:
    found = _by_rule("hfrepo_additional_template_ssti", make_fixture)
    assert {p.rsplit("/", 2)[-2] for p in found["TPL001"]} == {"additional_chat_templates"}


def test_subfolder_tokenizer_remote_refs_reported_once_each(
        make_fixture: FixtureFactory) -> None:
    result = ckptguard.scan([make_fixture("hfrepo_subfolder_remote_tokenizer")])
    refs = sorted(f.message.split(": ", 1)[1].split(";")[0] for f in result.findings
                  if f.rule_id == "HFR002")
    assert refs == ["someone-else/tok--tokenization_x.FastTok",
                    "someone-else/tok--tokenization_x.SlowTok"]


def test_diffusers_component_code_is_an_entry_point(make_fixture: FixtureFactory) -> None:
    found = _by_rule("hfrepo_diffusers_custom_component", make_fixture)
    assert any(p.endswith("model_index.json") for p in found["HFR001"])
    assert any(p.endswith("unet/my_unet.py") for p in found["HFR004"])
