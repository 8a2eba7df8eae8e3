"""Inputs that bench/fuzz.py found crashing a parser, reduced to their cause."""

from __future__ import annotations

import lzma
import struct

from ckptguard.facts import Artifact
from ckptguard.formats import ParseContext
from ckptguard.formats.compressed import parse_lzma
from ckptguard.formats.numpy_npy import parse as parse_npy
from ckptguard.formats.onnx_external import external_ref
from ckptguard.source import MemorySource


def _npy(header: str) -> bytes:
    text = header.encode("latin-1")
    text += b" " * (-(len(text) + 11) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text


def test_npy_descr_that_numpy_cannot_parse_is_a_parse_error() -> None:
    data = _npy("{'descr': ')', 'fortran_order': False, 'shape': (1,), }")
    output = parse_npy(Artifact(("a.npy",), MemorySource(data)), ParseContext())
    assert [f.kind for f in output.facts] == ["parse.error"]


def test_onnx_external_data_fields_that_are_not_utf8_are_read_as_text() -> None:
    ref = external_ref("w", {"location": b"\xff\xfe/etc/x", "offset": b"12",  # type: ignore[dict-item]
                             "length": b"4"})  # type: ignore[dict-item]
    assert isinstance(ref.location, str) and ref.offset == 12 and ref.length == 4


def test_lzma_header_claiming_a_huge_dictionary_is_refused_not_allocated() -> None:
    good = lzma.compress(b"x" * 100, format=lzma.FORMAT_ALONE)
    bad = good[:1] + struct.pack("<I", 0xFFFFFFFF) + good[5:]
    output = parse_lzma(Artifact(("m.lzma",), MemorySource(bad)), ParseContext())
    errors = [f for f in output.facts if f.kind == "parse.error"]
    assert errors and "Memory usage limit" in str(errors[0].attrs["error"])
