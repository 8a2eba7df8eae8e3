"""Data-only formats under checkpoint extensions are named by their headers, not left as
"content unknown" (which blocks), and a pickle under the same names is still a pickle."""

from __future__ import annotations

import pickle
import struct
from pathlib import Path

import pytest

import ckptguard
from ckptguard.formats.known_data import identify
from fixtures.known_data import FASTTEXT_ARGS, sentencepiece_model, tiktoken_ranks
from tests._loader_proof import LOADERS, run_loader
from tests.conftest import FixtureFactory


@pytest.mark.parametrize(("head", "name", "expected"), [
    (b"SR\x00\x04" + bytes(60), "a.sav", "idl-save"),
    (b"SR\x00\x06" + bytes(60), "a.sav", "idl-save"),
    (struct.pack("<ii", 793712314, 12) + FASTTEXT_ARGS, "a.bin", "fasttext"),
    (FASTTEXT_ARGS, "a.bin", "fasttext"),
    (b"2747 10\nthe \x01\x02", "a.bin", "word2vec"),
    (struct.pack("<II", 21, 2) + bytes(8), "x.mlpackage/Data/com.apple.CoreML/weights/weight.bin",
     "coreml-weights"),
])
def test_headers_are_recognised(head: bytes, name: str, expected: str) -> None:
    assert identify(head + bytes(64), name) == expected


@pytest.mark.parametrize("head", [
    struct.pack("<I7i", 0x67676D6C, 32000, 4096, 256, 32, 32, 128, 2),  # ggml
    struct.pack("<II7i", 0x67676A74, 3, 32000, 4096, 256, 32, 32, 128, 2),  # ggjt v3
    struct.pack("<II7i", 0x67676D66, 1, 32000, 4096, 256, 32, 32, 128, 2),  # ggmf v1
    struct.pack("<IIii", 0x67676C61, 1, 8, 16),  # ggla: a LoRA adapter, rank 8, alpha 16
])
def test_llama_cpp_files_from_before_gguf_are_data(head: bytes) -> None:
    assert identify(head + bytes(64), "ggml-model-q4_0.bin") == "ggml-legacy"
    with pytest.raises(pickle.UnpicklingError):  # 'l', 't', 'f', 'a': the loader stops there
        pickle.loads(head + bytes(64))


@pytest.mark.parametrize("head", [
    struct.pack("<II7i", 0x67676A74, 9, 32000, 4096, 256, 32, 32, 128, 2),  # no such version
    struct.pack("<I7i", 0x67676D6C, -5, 4096, 256, 32, 32, 128, 2),  # negative vocabulary
])
def test_impossible_ggml_headers_are_not_data(head: bytes) -> None:
    assert identify(head + bytes(64), "model.bin") is None


def test_tokenizer_models_are_recognised_whole_and_cut_off() -> None:
    model, ranks = sentencepiece_model(), tiktoken_ranks()
    assert identify(model, "tokenizer.model") == "sentencepiece"
    assert identify(ranks, "tokenizer.model") == "tiktoken"
    assert identify(model[:40], "tokenizer.model") == "sentencepiece"  # a piece cut off
    assert identify(ranks[:100], "tokenizer.model") == "tiktoken"  # a line cut off


@pytest.mark.parametrize("head", [
    b"\x0a\x05\x0a\x03abc" + b"\x0a\x03\x0a\x01z" + b"\xff" * 8,  # a field no model has after
    b"\x0a\x07\x0a\x03abc\x18\x09" + b"\x0a\x03\x0a\x01z",  # piece type 9
    b"\x0a\x05\x0a\x03\xff\xfe\xfd" + b"\x0a\x03\x0a\x01z",  # not UTF-8
    b"\x0a\x05\x0a\x03abc",  # one piece only
    b"".join(b"IQ== %d\n" % r for r in (0, 2, 1, 3, 4, 5, 6, 7, 8)),  # ranks out of order
    b"".join(b"Uz== %d\n" % r for r in range(12)),  # 'U' reads on in a pickle loader
    b"IQ== 0\nIg== 1\n",  # too few lines to tell
])
def test_look_alikes_of_tokenizer_models_are_not_data(head: bytes) -> None:
    assert identify(head, "tokenizer.model") is None


def test_the_real_readers_read_the_tokenizer_fixtures() -> None:
    """SentencePiece loads the fixture's pieces; a pickle loader stops at the first byte of
    both (no opcode; INT with no integer)."""
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(sentencepiece_model())
    with pytest.raises(ValueError):
        pickle.loads(tiktoken_ranks())
    spm = pytest.importorskip("sentencepiece")
    processor = spm.SentencePieceProcessor(model_proto=sentencepiece_model())
    assert processor.get_piece_size() == 8 and processor.id_to_piece(3) == "\u2581the"


def test_tiktoken_shaped_lines_a_loader_skips_through_are_a_pickle(
        make_fixture: FixtureFactory, canary: Path) -> None:
    """Lines that look like tiktoken's but start with SHORT_BINSTRING lead a pickle loader past
    the first 4 KiB to os.system: judged as the pickle they are, and blocked."""
    path = make_fixture("evasion_tiktoken_shaped_skip")
    result = ckptguard.scan([path])
    assert result.failed and "PKL001" in {f.rule_id for f in result.findings}
    assert not canary.exists()
    proof = run_loader(LOADERS["pickle.load"], path, canary)
    assert proof.at_load, proof  # the real loader reaches the payload
    canary.unlink()


@pytest.mark.parametrize("head", [
    pickle.dumps({"a": 1}, protocol=2), pickle.dumps([1, 2], protocol=0), b"PK\x03\x04" + bytes(60),
    struct.pack("<II", 21, 2) + bytes(60),  # Core ML's layout, but not where Core ML keeps it
    struct.pack("<ii", 793712314, 12) + bytes(100),  # the magic with impossible arguments
    b"SR\x00\x05" + bytes(60), b"12 x\n" + bytes(60),
])
def test_other_content_is_not_taken_for_data(head: bytes) -> None:
    assert identify(head + bytes(64), "model.bin") is None


@pytest.mark.parametrize("name", ["data_fasttext_bin", "data_fasttext_old_bin",
                                  "data_word2vec_bin", "data_idl_sav", "data_coreml_weights",
                                  "data_sentencepiece_model", "data_tiktoken_model",
                                  "data_ggml_legacy_bin"])
def test_real_data_formats_pass_the_gate(make_fixture: FixtureFactory, name: str) -> None:
    result = ckptguard.scan([make_fixture(name)])
    assert not result.failed and result.findings == (), [f.rule_id for f in result.findings]
