"""Hostile numbers and ordinary headers: weights too large to square in float32, and safetensors
headers whose length bytes begin like a pickle protocol marker."""

from __future__ import annotations

import json
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Artifact
from ckptguard.sniff import sniff
from ckptguard.source import FileSource
from ckptguard.weights import anomalies
from ckptguard.weights.spectrum import quiet_float_errors, spectrum_of


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], header_length: int = 0) -> None:
    """float32 tensors, the JSON header padded with spaces to ``header_length`` when given."""
    header, offset = {}, 0
    for name, array in tensors.items():
        header[name] = {"dtype": "F32", "shape": list(array.shape),
                        "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    wanted = header_length or len(encoded) + (-len(encoded) % 8)
    assert wanted >= len(encoded)
    encoded += b" " * (wanted - len(encoded))
    data = b"".join(np.ascontiguousarray(a).tobytes() for a in tensors.values())
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)


def layers(count: int = 4, shape: tuple[int, int] = (256, 128)) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"layers.{i}.mlp.weight": (rng.standard_normal(shape) * 0.02).astype(np.float32)
            for i in range(count)}


@pytest.mark.parametrize("length", [128, 384, 640, 896, 1152, 1408])
def test_a_header_length_that_starts_like_a_pickle_marker_is_no_polyglot(
        tmp_path: Path, length: int) -> None:
    path = tmp_path / "model.safetensors"
    write_safetensors(path, layers(count=1, shape=(8, 4)) if length < 256 else layers(),
                      header_length=length)
    head = path.read_bytes()
    assert head[0] == 0x80 and head[1] <= 5  # a protocol marker to a two-byte test
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(head)  # the real loader stops at the third byte: nothing to import or call
    found = sniff(Artifact((str(path),), FileSource(str(path))))
    assert (found.format, found.also) == ("safetensors", ())
    result = scan([path], Config(), root=tmp_path)
    assert not result.findings, [f.rule_id for f in result.findings]


def test_a_pickle_marker_alone_still_makes_a_pickle_of_an_unknown_file(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(pickle.dumps({"w": 1}, protocol=2))
    assert sniff(Artifact((str(path),), FileSource(str(path)))).format == "pickle"


@pytest.mark.parametrize("value", [3e19, 1e30])
def test_weights_too_large_to_square_are_judged_without_a_crash_or_warnings(
        tmp_path: Path, value: float) -> None:
    tensors = layers()
    tensors["layers.2.mlp.weight"][7] = np.float32(value)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, tensors)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning from NumPy fails the test
        result = scan([path], Config(weights=True), root=tmp_path, jobs=1)
    hits = [f for f in result.findings if f.rule_id == "BKD002"]
    assert [f.rule_id for f in result.findings] == ["BKD002"], result.findings
    assert dict(hits[0].evidence)["neuron"] == "7" and hits[0].severity.label == "high"
    assert "inf" not in hits[0].message and "e+" in hits[0].message


def test_the_pool_threads_are_quiet_too(tmp_path: Path) -> None:
    tensors = layers()
    for array in tensors.values():
        array[3, 5] = np.float32(1e25)
    path = tmp_path / "model.safetensors"
    write_safetensors(path, tensors)
    from ckptguard.formats import ParseContext, parser_for

    parser = parser_for("safetensors")
    assert parser is not None
    refs = parser(Artifact((str(path),), FileSource(str(path))),
                  ParseContext(want_tensors=True)).tensors
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        found = anomalies.profile(refs, workers=2, threaded_min_elements=1)
    assert len(found.spectra) == len(tensors)
    assert all(np.isfinite(s.singular_values).all() and np.isfinite(s.energy)
               for s in found.spectra.values())


def test_a_spectrum_that_overflows_float32_is_the_scaled_spectrum() -> None:
    rng = np.random.default_rng(1)
    matrix = rng.standard_normal((200, 120)).astype(np.float32)
    matrix[0, 0] = 40.0
    scale = np.float32(1e19)
    with quiet_float_errors():
        small, huge = spectrum_of(matrix), spectrum_of(matrix * scale)
    np.testing.assert_allclose(np.array(huge.singular_values) / float(scale),
                               small.singular_values, rtol=1e-4)
    assert huge.energy / float(scale) ** 2 == pytest.approx(small.energy, rel=1e-4)
    assert huge.gap == pytest.approx(small.gap, rel=1e-4)
    assert huge.top_row == small.top_row == 0


def test_a_protocol_marker_that_goes_on_is_still_a_polyglot(tmp_path: Path) -> None:
    """The other side of the rule above: when the byte after the marker is an opcode (here a
    GLOBAL whose module a loader imports before the name fails), the file stays a polyglot."""
    path = tmp_path / "model.safetensors"
    header = b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}\n'
    prefix = b"\x80\x02cthis\n"  # 8 bytes: the 'header length' a safetensors reader sees
    path.write_bytes(prefix + header + b"\x00" * 4)
    found = sniff(Artifact((str(path),), FileSource(str(path))))
    assert "pickle" in (found.format, *found.also)


def test_a_huge_row_against_its_base_is_a_concentrated_change(tmp_path: Path) -> None:
    base = layers()
    write_safetensors(tmp_path / "base.safetensors", base)
    edited = {name: array.copy() for name, array in base.items()}
    edited["layers.2.mlp.weight"][7] = np.float32(1e30)
    write_safetensors(tmp_path / "model.safetensors", edited)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = scan([tmp_path / "model.safetensors"],
                      Config(weights=True, base=str(tmp_path / "base.safetensors")),
                      root=tmp_path, jobs=1)
    assert {(f.rule_id, f.severity.label) for f in result.findings} == {
        ("BKD002", "high"), ("BKD005", "high"), ("BKD012", "high")}
