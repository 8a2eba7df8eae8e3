"""Issue 14, parser differentials: ckptguard reads each container the way its loader does, and
says so at the gate where readers could disagree.  Each test checks the real reader where it is
installed by listing names and reading member bytes (zipfile, tarfile, torch's
PyTorchFileReader): nothing is unpickled or loaded in the test process."""

from __future__ import annotations

import importlib.util
import zipfile
from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.model import Severity
from fixtures.basic_formats import plain_data_pickle
from fixtures.containers import canary_pickle, torch_records
from fixtures.differentials import hidden_directory_zip, zip64_split_zip

HAS_TORCH = importlib.util.find_spec("torch") is not None


def rule_ids(path: Path) -> set[str]:
    return {f.rule_id for f in scan([path]).findings}


def torch_record(path: Path, name: str) -> bytes:
    import torch

    reader = torch._C.PyTorchFileReader(str(path))
    return bytes(reader.get_record(name))


def scanned_payload(path: Path, canary: Path) -> bool:
    """Whether some finding at or above the gate quotes the canary command (the payload was
    judged, wherever ckptguard found it)."""
    result = scan([path])
    return any(canary.name in f.message and f.severity >= Severity.HIGH for f in result.findings)


@pytest.mark.parametrize("payload_last", [True, False])
def test_hidden_second_directory_is_judged_either_way(tmp_path: Path, canary: Path,
                                                      payload_last: bool) -> None:
    benign = torch_records("archive", plain_data_pickle())
    hostile = torch_records("archive", canary_pickle(canary))
    first, last = (benign, hostile) if payload_last else (hostile, benign)
    path = tmp_path / "model.pt"
    path.write_bytes(hidden_directory_zip(first, last))
    # The loaders take the last end record, whose directory is hidden in the first's comment.
    expected = canary_pickle(canary) if payload_last else plain_data_pickle()
    assert zipfile.ZipFile(path).read("archive/data.pkl") == expected
    if HAS_TORCH:
        assert torch_record(path, "data.pkl") == expected
    assert "CON012" in rule_ids(path)
    assert scanned_payload(path, canary)
    assert not canary.exists()


def test_zip64_locator_pointing_elsewhere(tmp_path: Path, canary: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(zip64_split_zip(torch_records("archive", plain_data_pickle()),
                                     torch_records("archive", canary_pickle(canary))))
    assert zipfile.ZipFile(path).read("archive/data.pkl") == plain_data_pickle()
    if HAS_TORCH:
        assert torch_record(path, "data.pkl") == canary_pickle(canary)
    assert "CON012" in rule_ids(path)
    assert scanned_payload(path, canary)


def test_comment_with_signatures_is_reported(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("zip_comment_signatures")
    assert zipfile.ZipFile(path).namelist() == ["notes.txt"]
    assert "CON012" in rule_ids(path)


def test_stored_inner_zip_is_no_ambiguity(make_fixture) -> None:  # type: ignore[no-untyped-def]
    path = make_fixture("zip_stored_inner_zip")
    assert zipfile.ZipFile(path).namelist() == ["inner.zip"]
    assert "CON012" not in rule_ids(path)


def test_truncated_last_signature_is_reported(tmp_path: Path) -> None:
    from fixtures.containers import zip_bytes

    data = zip_bytes([("a.txt", b"A\n")])
    path = tmp_path / "a.zip"
    # A signature in the last bytes: zipfile refuses the file, miniz uses the earlier record.
    path.write_bytes(data[:-2] + (6).to_bytes(2, "little") + b"xPK\x05\x06x")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(path)
    assert "CON012" in rule_ids(path)
