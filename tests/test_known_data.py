"""Data-only formats under checkpoint extensions are named by their headers, not left as
"content unknown" (which blocks), and a pickle under the same names is still a pickle."""

from __future__ import annotations

import pickle
import struct

import pytest

import ckptguard
from ckptguard.formats.known_data import identify
from fixtures.known_data import FASTTEXT_ARGS
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
    pickle.dumps({"a": 1}, protocol=2), pickle.dumps([1, 2], protocol=0), b"PK\x03\x04" + bytes(60),
    struct.pack("<II", 21, 2) + bytes(60),  # Core ML's layout, but not where Core ML keeps it
    struct.pack("<ii", 793712314, 12) + bytes(100),  # the magic with impossible arguments
    b"SR\x00\x05" + bytes(60), b"12 x\n" + bytes(60),
])
def test_other_content_is_not_taken_for_data(head: bytes) -> None:
    assert identify(head + bytes(64), "model.bin") is None


@pytest.mark.parametrize("name", ["data_fasttext_bin", "data_fasttext_old_bin",
                                  "data_word2vec_bin", "data_idl_sav", "data_coreml_weights"])
def test_real_data_formats_pass_the_gate(make_fixture: FixtureFactory, name: str) -> None:
    result = ckptguard.scan([make_fixture(name)])
    assert not result.failed and result.findings == (), [f.rule_id for f in result.findings]
