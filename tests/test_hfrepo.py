"""The hf-repo parser: a repository folder judged as one unit."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.hfrepo import chat_templates, code_references, parse, split_reference
from ckptguard.formats.hfrepo_weights import pickle_beside_safetensors
from ckptguard.limits import Limits
from ckptguard.source import MemorySource


def _parse(folder: Path, limits: Limits | None = None) -> ParseOutput:
    artifact = Artifact(("repo/",), MemorySource(b""), directory=str(folder),
                        format_hint="hf-repo")
    return parse(artifact, ParseContext(limits=limits or Limits()))


def _kinds(output: ParseOutput) -> list[str]:
    return [f.kind for f in output.facts]


def test_split_reference() -> None:
    assert split_reference("modeling_x.MyModel") == (None, "modeling_x", "MyModel")
    assert split_reference("org/repo--pkg.modeling_x.M") == ("org/repo", "pkg.modeling_x", "M")
    assert split_reference("NoDot") is None
    assert split_reference(".Leading") is None


def test_code_references_auto_map_lists_and_pipelines() -> None:
    data = {"auto_map": {"AutoTokenizer": ["tok.Slow", None], "AutoModel": "m.Model",
                         "Weird": 5},
            "custom_pipelines": {"my-task": {"impl": "pipe.MyPipeline", "pt": ["m.Model"],
                                             "type": "text"}}}
    refs = [(r.key, r.reference) for r in code_references("config.json", data)]
    assert refs == [("auto_map.AutoTokenizer", "tok.Slow"), ("auto_map.AutoModel", "m.Model"),
                    ("custom_pipelines.my-task.impl", "pipe.MyPipeline"),
                    ("custom_pipelines.my-task.pt", "m.Model")]
    assert list(code_references("config.json", ["not", "a", "dict"])) == []


def test_chat_templates_string_and_list() -> None:
    assert chat_templates({"chat_template": "{{ x }}"}) == [("default", "{{ x }}")]
    named = {"chat_template": [{"name": "default", "template": "a"},
                               {"name": "tool_use", "template": "b"}, {"name": "bad"}, 7]}
    assert chat_templates(named) == [("default", "a"), ("tool_use", "b")]
    assert chat_templates({"chat_template": 3}) == []


def test_pickle_pairs() -> None:
    files = ["pytorch_model.bin", "model.safetensors", "training_args.bin",
             "pytorch_model.bin.index.json", "model.safetensors.index.json",
             "pytorch_model-00001-of-00002.bin", "model-00001-of-00002.safetensors",
             "unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors",
             "vae/diffusion_pytorch_model.bin", "adapter_model.bin", "adapter_model.safetensors"]
    assert pickle_beside_safetensors(files) == [
        ("pytorch_model.bin", "model.safetensors"),
        ("pytorch_model.bin.index.json", "model.safetensors.index.json"),
        ("pytorch_model-00001-of-00002.bin", "model-00001-of-00002.safetensors"),
        ("unet/diffusion_pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors"),
        ("adapter_model.bin", "adapter_model.safetensors")]


def test_hostile_repo_facts(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = _parse(make_fixture("hfrepo_shell_at_import"))
    call = next(output.of_kind("pycode.call"))
    assert call.attrs["name"] == "os.system" and call.attrs["scope"] == "module"
    assert call.location.chain == ("repo/modeling_tiny.py",) and call.location.line == 3
    remote = next(output.of_kind("hfrepo.remote_code"))
    assert remote.attrs["references"] == ("modeling_tiny.TinyConfig", "modeling_tiny.TinyModel")


def test_init_of_auto_mapped_class_is_init_scope(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = _parse(make_fixture("hfrepo_obfuscated_exec"))
    call = next(output.of_kind("pycode.call"))
    assert (call.attrs["scope"], call.attrs["args"]) == ("init", "decoded")


def test_clean_repo_has_only_template_facts(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = _parse(make_fixture("hfrepo_clean"))
    assert "pycode.call" not in _kinds(output) and "hfrepo.auto_map" not in _kinds(output)
    template = next(output.of_kind("hfrepo.chat_template"))
    assert template.attrs["file"] == "tokenizer_config.json" and template.attrs["length"] > 50
    assert "template.summary" in _kinds(output)


def test_remote_reference_is_marked(make_fixture) -> None:  # type: ignore[no-untyped-def]
    output = _parse(make_fixture("hfrepo_remote_repo"))
    ref = next(output.of_kind("hfrepo.auto_map"))
    assert ref.attrs["remote"] is True and ref.attrs["repo"] == "someone-else/tiny-code"
    assert "hfrepo.remote_code" not in _kinds(output)


def test_limits_file_count_and_size(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"auto_map": {"AutoModel": "m.M"}}))
    (tmp_path / "m.py").write_text("import os\nos.system('x')\n" + "#" * 4096)
    for index in range(5):
        (tmp_path / f"z{index}.txt").write_text("x")
    small = dataclasses.replace(Limits(), max_repo_files=3, max_text_file_bytes=1024)
    output = _parse(tmp_path, small)
    limits = [f.attrs["limit"] for f in output.of_kind("limit.hit")]
    assert "max_repo_files" in limits and "max_text_file_bytes" in limits
    assert "pycode.call" not in _kinds(output)


def test_hostile_json_never_crashes(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("[" * 100_000)
    (tmp_path / "tokenizer_config.json").write_text('{"chat_template": ["x", {"name": 1}]}')
    output = _parse(tmp_path)
    assert [f.attrs["file"] for f in output.of_kind("parse.error")] == ["config.json"]


def test_not_a_folder_is_a_parse_error() -> None:
    output = parse(Artifact(("x",), MemorySource(b"")), ParseContext())
    assert _kinds(output) == ["parse.error"]


def test_symlinked_folders_are_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "evil.py").write_text("import os\nos.system('x')\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text("{}")
    (repo / "linked").symlink_to(outside, target_is_directory=True)
    assert "pycode.call" not in _kinds(_parse(repo))
