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


# --- tar --------------------------------------------------------------------------------------

def tarfile_view(data: bytes) -> list[tuple[str, int, int]]:
    """(name, data offset, extracted size) of each member as Python's tarfile lists it."""
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return [(m.name, m.offset_data, m.size) for m in archive.getmembers()]


def ckptguard_view(data: bytes) -> list[tuple[str, int, int]]:
    from ckptguard.formats.tar_reader import read_members
    from ckptguard.source import MemorySource

    members, _ = read_members(MemorySource(data), 1000)
    return [(m.name, m.offset, m.real_size if m.sparse is not None else m.size)
            for m in members]


def _tar_cases(canary: Path) -> dict[str, bytes]:
    from fixtures import differentials as d

    payload = canary_pickle(canary)
    global_size = d.pax_record("size", "600")
    global_path = d.pax_record("path", "renamed.pkl")
    return {
        "pax size hides a member": d.pax_size_hiding_tar(payload),
        "unknown type": d.unknown_type_tar(payload),
        "sparse S": d.old_sparse_tar(payload),
        "sparse S with a hole": d.old_sparse_tar(payload, 100),
        "global pax size": d.tar_header("g", len(global_size), b"g") + d.padded(global_size)
        + d.tar_header("a.txt", 0) + d.tar_header("b.pkl", len(payload)) + d.padded(payload)
        + bytes(1024),
        "global pax path": d.tar_header("g", len(global_path), b"g") + d.padded(global_path)
        + d.tar_header("a.txt", len(payload)) + d.padded(payload) + bytes(1024),
        "symlink with a size": d.tar_header("link", 512, b"2", link="target")
        + d.tar_header("hidden.pkl", len(payload)) + d.padded(payload) + bytes(1024),
        "gnu long name": d.tar_header("././@LongLink", 300, b"L") + d.padded(b"n" * 299 + b"\0")
        + d.tar_header("short", len(payload)) + d.padded(payload) + bytes(1024),
        "signed checksum": _signed_checksum_tar(payload),
    }


def _signed_checksum_tar(payload: bytes) -> bytes:
    from fixtures import differentials as d

    header = bytearray(d.tar_header("caf\xe9.pkl", len(payload)))
    signed = 256 + sum(b - 256 if b > 127 else b for b in header[:148] + header[156:])
    header[148:156] = f"{signed:06o}\0 ".encode()
    return bytes(header) + d.padded(payload) + bytes(1024)


def test_tar_members_match_tarfile(canary: Path) -> None:
    for label, data in _tar_cases(canary).items():
        assert ckptguard_view(data) == tarfile_view(data), label


@pytest.mark.parametrize("fixture", ["tar_pax_size_hides_member", "tar_unknown_type_member",
                                     "tar_gnu_sparse_member"])
def test_tar_payload_members_are_judged(make_fixture, canary: Path,  # type: ignore[no-untyped-def]
                                        fixture: str) -> None:
    path = make_fixture(fixture)
    assert any(name.endswith(".pkl") for name, _, _ in tarfile_view(path.read_bytes()))
    assert "CON013" in rule_ids(path)
    assert scanned_payload(path, canary)


def test_sparse_member_is_rebuilt_with_its_holes(tmp_path: Path, canary: Path) -> None:
    import tarfile

    from fixtures.differentials import old_sparse_tar

    path = tmp_path / "s.tar"
    path.write_bytes(old_sparse_tar(b"hello", 7))
    with tarfile.open(path) as archive:
        archive.extractall(tmp_path / "out")
    from ckptguard.formats.tar_reader import read_members
    from ckptguard.formats.tarfmt import SparseSource
    from ckptguard.source import FileSource

    (member,), _ = read_members(FileSource(str(path)), 10)
    assert member.sparse is not None
    rebuilt = SparseSource(FileSource(str(path)), member.offset, member.sparse, member.real_size)
    assert rebuilt.read(0, 100) == (tmp_path / "out" / "model.pkl").read_bytes()


def test_negative_pax_size_is_an_error_not_a_loop() -> None:
    from ckptguard.formats.tar_reader import TarError, read_members
    from ckptguard.source import MemorySource
    from fixtures import differentials as d

    records = d.pax_record("size", "-2048")
    data = d.tar_header("x", len(records), b"x") + d.padded(records) + d.tar_header("a", 0) + \
        bytes(1024)
    with pytest.raises(TarError):
        read_members(MemorySource(data), 100)


# --- sniffing ---------------------------------------------------------------------------------

def long_first_argument_pickle(canary: Path) -> bytes:
    """A protocol-1 pickle whose first opcode (BINUNICODE) carries 6000 characters, past the
    4 KiB the sniffer reads first; the payload follows."""
    text = ("x" * 6000).encode()
    return b"X" + len(text).to_bytes(4, "little") + text + b"0" + canary_pickle(canary)


@pytest.mark.parametrize("name", ["model.pt", "model.pkl", "model", "weights.joblib"])
def test_pickle_with_a_long_first_argument_is_parsed(tmp_path: Path, canary: Path,
                                                     name: str) -> None:
    import pickletools

    data = long_first_argument_pickle(canary)
    ops = [op.name for op, _, _ in pickletools.genops(data)]  # the real opcode reader
    assert ops[:3] == ["BINUNICODE", "POP", "GLOBAL"]
    path = tmp_path / name
    path.write_bytes(data)
    # Named relative to root: without one, a report names files below the working folder
    # relative to it, so the key would depend on where the suite runs.
    assert {a.name: a.format for a in scan([path], root=tmp_path).artifacts}[name] == "pickle"
    assert scanned_payload(path, canary)


def test_opcode_first_byte_under_a_loader_extension_is_a_pickle(tmp_path: Path) -> None:
    from ckptguard.facts import Artifact
    from ckptguard.sniff import sniff
    from ckptguard.source import MemorySource

    # 'K' (BININT1) then garbage: pickle.load reads it as a pickle and fails later; ckptguard
    # parses it as one too (and reports where it stops), instead of calling it unknown.
    odd = MemorySource(b"K\x01\xff\xfe\xfd" * 20)
    assert sniff(Artifact(("m.pt",), odd)).format == "pickle"
    assert sniff(Artifact(("m.npy",), odd)).format == "pickle"
    assert sniff(Artifact(("m.dat",), odd)).format == "unknown"


@pytest.mark.parametrize("content", [b"cthis\nnot a name\n.", b"cantigravity\nnot a name\n.",
                                     b"cpip.__main__\nnot a name\n."])
def test_a_global_whose_module_runs_on_import_is_a_pickle_whatever_its_name(
        tmp_path: Path, content: bytes) -> None:
    """CPython's find_class imports the module before it looks the name up: a name that is no
    identifier still runs a module whose import does something.  Without a loader extension
    (the all-files hook, a folder scan) the file is a pickle, and it blocks."""
    path = tmp_path / "checkpoint"
    path.write_bytes(content)
    result = scan([path], root=tmp_path)
    assert {a.name: a.format for a in result.artifacts}["checkpoint"] == "pickle"
    assert result.failed


def test_the_real_loader_imports_the_module_of_a_nameless_global() -> None:
    import subprocess
    import sys

    script = ("import pickle\ntry:\n    pickle.loads(b'cthis\\nnot a name\\n.')\n"
              "except AttributeError:\n    print('AttributeError')\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, timeout=60)
    assert "Beautiful is better than ugly" in done.stdout  # 'this' ran on import
    assert done.stdout.rstrip().endswith("AttributeError")  # then the name failed


@pytest.mark.parametrize("content", [b"cmath\nsome text\n", b"credits\nJohn Doe\n"])
def test_a_text_line_that_spells_a_global_is_still_text(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "CREDITS"
    path.write_bytes(content)
    assert not scan([path], root=tmp_path).findings


def test_unknown_content_under_a_checkpoint_extension_blocks(tmp_path: Path) -> None:
    for name in ("model.pt", "model.ckpt", "arrays.npy", "model.joblib"):
        path = tmp_path / name
        path.write_bytes(b"\x00\x01\x02\x03" * 64)  # no format, no opcode first
        result = scan([path])
        assert "FMT005" in {f.rule_id for f in result.findings}, name
        assert result.failed, name


# --- pickle stream: the C unpickler's own reading, by the stub oracle --------------------------

def frame_hidden_payload(canary: Path) -> bytes:
    """A FRAME of 2 bytes holding BINBYTES and the first byte of its length.  pickle.loads
    reads the length on inside the stream and swallows the payload as data; an unpickler over a
    file (torch.load, pickle.load) reads the length afresh after the frame (zero) and then runs
    the payload."""
    payload = canary_pickle(canary)
    return (b"\x80\x04\x95" + (2).to_bytes(8, "little") + b"B" + bytes([1 + len(payload)])
            + bytes(4) + payload + b".")


def ckptguard_imports(path: Path) -> set[str]:
    """Raw "module name" of every pickle.import fact, in the file and in its children."""
    from ckptguard.facts import Artifact
    from ckptguard.formats import ParseContext, parser_for
    from ckptguard.sniff import sniff
    from ckptguard.source import FileSource

    found: set[str] = set()
    pending = [Artifact((path.name,), FileSource(str(path)))]
    while pending:
        artifact = pending.pop()
        parser = parser_for(sniff(artifact).format)
        if parser is None:
            continue
        output = parser(artifact, ParseContext())
        found |= {str(f.get("raw")) for f in output.of_kind("pickle.import")}
        pending += output.children
    return found


def test_frame_left_unread_by_file_readers(tmp_path: Path, canary: Path) -> None:
    from tests.pickle_oracle import run_oracle

    data = frame_hidden_payload(canary)
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    oracle = run_oracle(data)
    assert oracle is not None
    assert oracle["memory"].imports == ()
    assert oracle["file"].calls == ("posix system",) or oracle["file"].calls == ("os system",)
    assert set(oracle["file"].imports) <= ckptguard_imports(path)
    assert "PKL008" in rule_ids(path)
    assert scanned_payload(path, canary)
    assert not canary.exists()


def test_file_reading_equals_memory_reading_for_real_pickles() -> None:
    import pickle

    from ckptguard.formats.pickle.reader import file_reading

    value = {"weights": [float(i) for i in range(50_000)], "name": "x" * 200_000,
             "blob": bytes(300_000), "nested": [{"k": i} for i in range(2000)]}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        data = pickle.dumps(value, protocol=protocol) + pickle.dumps([1, 2], protocol=protocol)
        assert file_reading(memoryview(data), 2) is None, protocol


def test_oracle_agrees_on_the_pickle_fixtures(make_fixture) -> None:  # type: ignore[no-untyped-def]
    from fixtures.registry import all_fixtures
    from tests.pickle_oracle import run_oracle

    checked = 0
    for name, fixture in sorted(all_fixtures().items()):
        if not (name.startswith(("pkl_", "pickle_")) and fixture.available()):
            continue
        path = make_fixture(name)
        if not path.is_file() or path.stat().st_size > 1 << 20:
            continue
        oracle = run_oracle(path.read_bytes(), pickles=8)
        if oracle is None:
            continue
        loader = set(oracle["memory"].imports) | set(oracle["file"].imports)
        assert loader <= ckptguard_imports(path), name
        checked += 1
    assert checked >= 20


# --- regressions found by bench/differential.py ------------------------------------------------

def test_regression_second_pickle_after_a_frame_left_unread(tmp_path: Path, canary: Path) -> None:
    """Found by bench/differential.py: the in-memory reading fails (stack underflow) inside a
    FRAME; a file reader skips the frame's rest, stops cleanly, and the next load runs the
    payload that follows."""
    from tests.pickle_oracle import run_oracle

    data = (b"\x80\x03\x95\x06\x00\x00\x00\x00\x00\x00\x00X\x03\x00\x00\x00abcs\x94."
            + canary_pickle(canary))
    oracle = run_oracle(data, pickles=2)
    assert oracle is not None and oracle["memory"].error is not None
    assert "os system" in oracle["file"].imports
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    assert "os system" in ckptguard_imports(path)
    assert scanned_payload(path, canary)


def test_regression_sparse_member_after_a_global_header(canary: Path) -> None:
    """Found by bench/differential.py: a global pax header before a GNU sparse member made
    ckptguard take the stored size for the real size."""
    from fixtures import differentials as d

    records = d.pax_record("size", "157")
    data = (d.tar_header("g", len(records), b"g") + d.padded(records)
            + d.old_sparse_tar(canary_pickle(canary), 100))
    assert ckptguard_view(data) == tarfile_view(data)


def test_regression_names_cut_at_nul_are_duplicates(tmp_path: Path) -> None:
    """Found by bench/differential.py: zipfile cuts a name at its first NUL byte."""
    from fixtures.containers import zip_bytes

    path = tmp_path / "bundle.zip"
    path.write_bytes(zip_bytes([("model.pkl\x00.txt", b"A"), ("model.pkl", b"B")]))
    assert zipfile.ZipFile(path).namelist() == ["model.pkl", "model.pkl"]
    assert "CON001" in rule_ids(path)


TEXT_NUMBERS = [b"I010\n.", b"I09\n.", b"I1_0\n.", b"I 1\n.", b"I+1\n.", b"I12\x00zz\n.",
                b"I-0\n.", b"I 01\n.", b"I0x1f\n.", b"I0x\n.", b"I99999999999999999999\n.",
                b"I00\n.", b"I01\n.", b"I0777777777777777777777777\n.", b"L010\n.",
                b"L0x10L\n.", b"L1_0\n.", b"L12\x00zz\n.", b"LL\n.", b"F1_0\n.", b"F 1.5\n.",
                b"Finf\n.", b"F1e5\n.", b"F2.5\x00x\n.", b"S'abc' \n.", b"S'a'\n."]


@pytest.mark.parametrize("stream", TEXT_NUMBERS)
def test_text_arguments_read_as_the_c_unpickler_reads_them(stream: bytes) -> None:
    """Plain values only (no global): pickle.loads itself is the reference here."""
    import pickle

    from ckptguard.formats.pickle.reader import ReadError, iter_ops

    try:
        expected = repr(pickle.loads(stream))
    except Exception:  # noqa: BLE001 - the C unpickler refuses it
        expected = "error"
    try:
        actual = repr(next(iter(iter_ops(memoryview(stream)))).arg)
    except ReadError:
        actual = "error"
    assert (actual == "error") == (expected == "error")
    if stream[:1] in b"ILF" and expected != "error":
        assert actual == expected


def test_memo_index_with_underscores_reaches_the_global(tmp_path: Path, canary: Path) -> None:
    """PUT/GET indices are read with int(base 10): "1_0" is memo 10 to the loader."""
    from tests.pickle_oracle import run_oracle

    command = canary_pickle(canary)[len(b"cos\nsystem\n"):]
    data = b"cos\nsystem\np1_0\n0g10\n" + command
    oracle = run_oracle(data)
    assert oracle is not None and "os system" in oracle["memory"].calls
    path = tmp_path / "model.pkl"
    path.write_bytes(data)
    assert scanned_payload(path, canary)


def test_zip_appended_with_a_lying_comment_length_is_still_found(tmp_path: Path,
                                                                 canary: Path) -> None:
    from fixtures.containers import zip_bytes

    inner = zip_bytes(torch_records("archive", canary_pickle(canary)))
    inner = inner[:-2] + (500).to_bytes(2, "little")  # a comment length past the end
    path = tmp_path / "model.pkl"
    path.write_bytes(plain_data_pickle() + inner)
    assert zipfile.ZipFile(path).read("archive/data.pkl") == canary_pickle(canary)
    assert scanned_payload(path, canary)


def test_regression_broken_record_in_another_directory_is_still_judged(tmp_path: Path,
                                                                      canary: Path) -> None:
    """Found by bench/differential.py: Info-ZIP lists the members of the ZIP64 directory the
    locator points at even when a record's extra length runs past the directory; ckptguard
    dropped that whole candidate directory."""
    import struct
    import subprocess

    data = bytearray(zip64_split_zip(torch_records("archive", plain_data_pickle()),
                                     [("archive/data.pkl", canary_pickle(canary))]))
    locator = data.rindex(b"PK\x06\x07")
    (declared,) = struct.unpack_from("<Q", data, locator + 8)
    (central,) = struct.unpack_from("<Q", data, declared + 48)
    struct.pack_into("<H", data, central + 30, 0x4000)  # extra field length past the directory
    path = tmp_path / "model.pt"
    path.write_bytes(bytes(data))
    import shutil

    if shutil.which("zipinfo"):
        listing = subprocess.run(["zipinfo", "-1", str(path)], capture_output=True, check=False)
        assert b"archive/data.pkl" in listing.stdout
    assert "CON012" in rule_ids(path)
    assert scanned_payload(path, canary)
