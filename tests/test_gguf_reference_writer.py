"""Files written by llama.cpp's own gguf-py writer parse without a single violation, and the
ggml type table agrees with gguf-py's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ckptguard.formats import ParseContext
from ckptguard.formats.gguf_types import GGML_TYPES
from fixtures._chat_templates import LLAMA3
from tests._format_a_helpers import parse_file

gguf = pytest.importorskip("gguf")


def test_type_table_matches_gguf_py() -> None:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    for code, (name, block, size) in GGML_TYPES.items():
        reference = GGMLQuantizationType(code)
        assert reference.name == name
        if name != "Q8_1":  # gguf-py's 40 bytes disagrees with ggml-common.h's 36
            assert GGML_QUANT_SIZES[reference] == (block, size), name


def test_reference_writer_output_is_clean(tmp_path: Path) -> None:
    path = tmp_path / "ref.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("reference")
    writer.add_license("mit")
    writer.add_token_list([f"tok{i}" for i in range(1000)])
    writer.add_chat_template(LLAMA3)
    writer.add_uint32("llama.block_count", 1)
    weights = np.arange(64 * 32, dtype=np.float32).reshape(64, 32)
    writer.add_tensor("tok_embd.weight", weights)
    writer.add_tensor("norm.weight", np.ones(32, dtype=np.float16))
    quant = gguf.quants.quantize(weights, gguf.GGMLQuantizationType.Q8_0)
    writer.add_tensor("q.weight", quant, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    output = parse_file(path, ParseContext(want_tensors=True))
    assert not list(output.of_kind("gguf.violation"))
    header = next(output.of_kind("gguf.header"))
    assert header.attrs["tensors"] == 3 and header.attrs["name"] == "reference"
    assert [f.attrs["value"] for f in output.of_kind("metadata.license")] == ["mit"]
    assert not list(output.of_kind("template.risk"))
    refs = {t.name: t for t in output.tensors}
    embd = refs["tok_embd.weight"]
    assert embd.shape == (64, 32)
    assert np.array_equal(np.frombuffer(embd.source.read(0, embd.source.size), np.float32),
                          weights.ravel())
