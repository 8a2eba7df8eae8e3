"""Keras configs (.keras config.json and Keras-2 HDF5 model_config): Lambda bytecode, custom
objects, nesting, malformed input and a missing h5py."""

from __future__ import annotations

import base64
import dataclasses
import json
import marshal
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext, keras_fmt, keras_h5
from ckptguard.formats.keras_fmt import MAX_DEPTH, bytecode_names, is_keras_module
from ckptguard.limits import Limits
from ckptguard.source import FileSource, MemorySource

h5py = pytest.importorskip("h5py")


def _config(data: Any) -> ParseOutput:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return keras_fmt.parse(Artifact(("m.keras", "config.json"), MemorySource(raw)),
                           ParseContext())


def _kinds(output: ParseOutput) -> list[str]:
    return [f.kind for f in output.facts]


def _code(source: str) -> str:
    return base64.b64encode(marshal.dumps(compile(source, "<l>", "eval"))).decode()


def test_bytecode_names_never_unmarshal(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object) -> None:
        raise AssertionError("marshal.loads must never be called")

    monkeypatch.setattr(marshal, "loads", refuse)
    encoding, names, size = bytecode_names(_code("__import__('os').system('id')"))
    assert encoding == "base64" and size > 0
    assert "system" in names and "__import__" in names
    assert bytecode_names("\xe3\x00\x00 latin text open")[0] == "latin-1"


def test_keras3_lambda_and_nested_models() -> None:
    lam = {"module": "keras.layers", "class_name": "Lambda",
           "config": {"name": "l1", "function": {"class_name": "__lambda__",
                                                 "config": {"code": _code("x + 1")}}}}
    inner = {"module": "keras", "class_name": "Sequential",
             "config": {"name": "inner", "layers": [lam]}}
    outer = {"module": "keras", "class_name": "Functional",
             "config": {"name": "outer", "layers": [inner]}}
    output = _config(outer)
    lambdas = list(output.of_kind("keras.lambda"))
    assert [f.attrs["layer"] for f in lambdas] == ["l1"]
    assert "Sequential(inner)" in lambdas[0].attrs["path"]
    assert "keras.custom_object" not in _kinds(output)


def test_keras2_lambda_forms() -> None:
    listed = {"class_name": "Lambda", "config": {"name": "a", "function": [_code("1"), None,
                                                                           None],
                                                 "function_type": "lambda"}}
    text = {"class_name": "Lambda", "config": {"name": "b", "function": "\xe3\x00raw",
                                               "function_type": "lambda"}}
    named = {"class_name": "Lambda", "config": {"name": "c", "function": "system",
                                                "function_type": "function", "module": "os"}}
    builtin = {"class_name": "Lambda", "config": {"name": "d", "function": "relu",
                                                  "function_type": "function",
                                                  "module": "keras.activations"}}
    output = _config({"class_name": "Sequential", "config": {"layers": [listed, text, named,
                                                                         builtin]}})
    assert [f.attrs["layer"] for f in output.of_kind("keras.lambda")] == ["a", "b"]
    custom = [f.attrs["qualname"] for f in output.of_kind("keras.custom_object")]
    assert custom == ["os.system"]


@pytest.mark.parametrize(("node", "qualname"), [
    ({"module": "evil_pkg", "class_name": "Layer", "config": {}}, "evil_pkg.Layer"),
    ({"module": "builtins", "class_name": "function", "config": "exec"}, "builtins.exec"),
    ({"class_name": "Pkg>Thing", "config": {}}, "Pkg>Thing"),
    ({"module": None, "class_name": "X", "registered_name": "Mine>X", "config": {}}, "X"),
])
def test_custom_objects(node: dict[str, Any], qualname: str) -> None:
    dense = {"module": "keras.layers", "class_name": "Dense",
             "config": {"name": "d", "kernel_regularizer": node}}
    facts = list(_config({"class_name": "Sequential", "config": {"layers": [dense]}})
                 .of_kind("keras.custom_object"))
    assert [f.attrs["qualname"] for f in facts] == [qualname]


def test_keras_family_modules_are_not_custom() -> None:
    assert is_keras_module("keras.src.layers") and is_keras_module("tensorflow.python.ops")
    assert is_keras_module("keras_hub.models") and not is_keras_module("kerasx")
    node = {"module": "keras_hub.layers", "class_name": "X", "registered_name": "keras_hub>X",
            "config": {}}
    assert "keras.custom_object" not in _kinds(_config(node))


@pytest.mark.parametrize("raw", [b"{", b"\xff\xfe", b"[1, 2]", b"null", b"[" * 100_000])
def test_malformed_config_is_a_parse_error(raw: bytes) -> None:
    output = _config(raw)
    assert _kinds(output) == ["parse.error"]
    assert output.facts[0].attrs["format"] == "keras-config"


def test_deep_config_is_a_limit() -> None:
    node: Any = {"class_name": "Dense", "config": {}}
    for _ in range(MAX_DEPTH + 10):
        node = {"class_name": "Wrapper", "config": {"layer": node}}
    output = _config(node)
    assert any(f.kind == "limit.hit" for f in output.facts)


def _h5(path: Path, attrs: dict[str, Any]) -> Path:
    with h5py.File(path, "w") as handle:
        for key, value in attrs.items():
            handle.attrs[key] = value
        handle.create_dataset("w", data=[1.0, 2.0])
    return path


def _h5_parse(source: Any, limits: Limits | None = None) -> ParseOutput:
    return keras_h5.parse(Artifact(("m.h5",), source), ParseContext(limits=limits or Limits()))


def test_h5_model_config_lambda(tmp_path: Path) -> None:
    lam = {"class_name": "Lambda", "config": {"name": "l", "function": [_code("1"), None, None],
                                              "function_type": "lambda"}}
    path = _h5(tmp_path / "m.h5", {"model_config": json.dumps(
        {"class_name": "Sequential", "config": {"layers": [lam]}}), "keras_version": "2.15.0"})
    output = _h5_parse(FileSource(str(path)))
    assert output.format == "keras-h5"
    assert "keras.lambda" in _kinds(output)


def test_h5_as_archive_member_slice_and_memory(tmp_path: Path) -> None:
    inner = _h5(tmp_path / "m.h5", {"model_config": json.dumps({"class_name": "Sequential",
                                                                "config": {"layers": []}})})
    data = inner.read_bytes()
    padded = tmp_path / "padded.bin"
    padded.write_bytes(b"\0" * 100 + data)
    for source in (FileSource(str(padded), 100, len(data)), MemorySource(data)):
        output = _h5_parse(source)
        assert output.format == "keras-h5" and "keras.model" in _kinds(output)


def test_plain_hdf5_and_oversized_attribute(tmp_path: Path) -> None:
    plain = _h5_parse(FileSource(str(_h5(tmp_path / "p.h5", {}))))
    assert plain.format == "hdf5" and plain.facts == []
    small = dataclasses.replace(Limits(), max_header_bytes=1000)
    big_config = json.dumps({"class_name": "Sequential",
                             "config": {"layers": [], "pad": "x" * 5000}})
    for value in (big_config.encode(), big_config):  # fixed-length bytes, variable-length str
        big = _h5(tmp_path / "b.h5", {"model_config": value})
        output = _h5_parse(FileSource(str(big)), small)
        assert _kinds(output) == ["hdf5.unexamined"]
        assert "keras.model" in _kinds(_h5_parse(FileSource(str(big))))


def test_undecodable_model_config_is_not_examined_and_garbage_is_plain(tmp_path: Path) -> None:
    for value in ([1, 2, 3], "not json at all"):
        path = _h5(tmp_path / "n.h5", {"model_config": value})
        assert _kinds(_h5_parse(FileSource(str(path)))) == ["hdf5.unexamined"]
    garbage = _h5_parse(MemorySource(b"\x89HDF\r\n\x1a\n" + b"\0" * 64))
    assert garbage.format == "hdf5" and garbage.facts == []


def test_hdf5_reader_never_needs_libhdf5(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """libhdf5 can hang on malformed files beyond any timeout: the reader works on bytes."""
    lam = {"class_name": "Lambda", "config": {"function": [_code("1"), None, None],
                                              "function_type": "lambda"}}
    path = _h5(tmp_path / "m.h5", {"model_config": json.dumps(
        {"class_name": "Sequential", "config": {"layers": [lam]}})})
    monkeypatch.setitem(sys.modules, "h5py", None)
    assert "keras.lambda" in _kinds(_h5_parse(FileSource(str(path))))


def test_keras_zip_members_reach_the_config_parser(make_fixture) -> None:  # type: ignore[no-untyped-def]
    from ckptguard.api import scan

    path: Path = make_fixture("keras_zip_lambda")
    with zipfile.ZipFile(path) as archive:
        assert "config.json" in archive.namelist()
    result = scan([path], root=path.parent)
    rules = {f.rule_id for f in result.findings}
    assert "KER001" in rules
    lam = next(f for f in result.findings if f.rule_id == "KER001")
    assert lam.location.chain[-1] == "config.json"


def test_keras_metadata_version() -> None:
    raw = json.dumps({"keras_version": "3.6.0", "date_saved": "2025-01-01@00:00:00"}).encode()
    output = keras_fmt.parse_metadata(Artifact(("m.keras", "metadata.json"), MemorySource(raw)),
                                      ParseContext())
    version = next(output.of_kind("keras.version"))
    assert (version.attrs["keras_version"], version.attrs["source"]) == ("3.6.0", "metadata.json")
    broken = keras_fmt.parse_metadata(Artifact(("m.keras", "metadata.json"), MemorySource(b"[")),
                                      ParseContext())
    assert _kinds(broken) == ["parse.error"]


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=4) |
                     st.dictionaries(st.sampled_from(["class_name", "config", "module",
                                                      "function", "function_type", "layers",
                                                      "registered_name", "name", "code"]),
                                     children, max_size=5), max_leaves=30)


@settings(max_examples=80, deadline=None)
@given(_JSON)
def test_arbitrary_configs_never_crash(data: Any) -> None:
    output = _config({"class_name": "Sequential", "config": {"layers": [data]}})
    assert "keras.model" in _kinds(output)


def test_loose_keras_json_is_sniffed() -> None:
    from ckptguard.sniff import magic_format

    assert magic_format(b'{"module": "keras", "class_name": "Sequential"}', 50,
                        "config.json") == ["keras-config"]
    assert magic_format(b'{"class_name": "Functional", "config": {}}', 40,
                        "model.json") == ["keras-config"]
    assert magic_format(b'{"keras_version": "3.6.0"}', 26, "metadata.json") == ["keras-metadata"]
    assert magic_format(b'{"model_type": "llama"}', 23, "config.json") == ["json"]


def test_unpacked_keras_folder(make_fixture) -> None:  # type: ignore[no-untyped-def]
    from ckptguard.api import scan

    folder: Path = make_fixture("keras_unpacked_lambda")
    result = scan([folder], root=folder.parent)
    formats = {a.chain[-1]: a.format for a in result.artifacts}
    assert formats["model/config.json"] == "keras-config"
    assert formats["model/metadata.json"] == "keras-metadata"
    assert [f.location.chain[-1] for f in result.findings if f.rule_id == "KER001"] == \
        ["model/config.json"]
