"""One regression test per published scanner-bypass advisory that applies to ckptguard, named after
it.  Each scans a hostile file from ``fixtures/evasion.py`` through the public API and asserts the
default gate fails, which rules fire and where (member and byte offset).  Nothing is ever loaded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

import ckptguard
from ckptguard.model import Finding, ScanResult, Severity
from fixtures.pickle_asm import glob, stack_global
from tests._loader_proof import LOADERS, run_loader, skip_unless_installed
from tests.conftest import FixtureFactory


@dataclass(frozen=True)
class At:
    """A finding expected from ``rule`` on the member ``members`` (inside the scanned file) at
    ``offset``: an int (negative counts from the end of the file), the position of the first
    occurrence of a byte string in the scanned file, "end" (the file's size), or None."""

    rule: str
    members: tuple[str, ...] = ()
    offset: int | bytes | Literal["end"] | None = None


def scan(make_fixture: FixtureFactory, name: str) -> tuple[Path, ScanResult]:
    path = make_fixture(name)
    return path, ckptguard.scan([path])


def where(finding: Finding) -> tuple[str, tuple[str, ...], int | None]:
    return finding.rule_id, tuple(finding.location.chain[1:]), finding.location.offset


def resolve(path: Path, expected: At) -> tuple[str, tuple[str, ...], int | None]:
    offset = expected.offset
    if isinstance(offset, bytes):
        data = path.read_bytes()
        assert offset in data, f"{offset!r} not in {path.name}"
        offset = data.index(offset)
    elif offset == "end":
        offset = path.stat().st_size
    elif offset is not None and offset < 0:
        offset += path.stat().st_size
    return expected.rule, expected.members, offset


def assert_caught(make_fixture: FixtureFactory, name: str, *expected: At,
                  only: set[str] | None = None) -> ScanResult:
    """The file fails the default gate and every expected finding is present at its location;
    with ``only``, no rule outside that set fires."""
    path, result = scan(make_fixture, name)
    assert result.failed, f"{name} passed the default gate: {[where(f) for f in result.findings]}"
    seen = {where(f) for f in result.findings}
    for item in expected:
        assert resolve(path, item) in seen, f"{name}: {resolve(path, item)} not in {sorted(seen)}"
    if only is not None:
        assert {f.rule_id for f in result.findings} <= only, sorted(seen)
    return result


def test_cve_2025_1716_pip_main(make_fixture: FixtureFactory) -> None:
    """picklescan missed pip.main: a pickle that pip-installs an arbitrary package on load."""
    result = assert_caught(make_fixture, "evasion_unlisted_pip_main",
                           At("PKL001", (), stack_global("pip", "main")[-1:]), only={"PKL001"})
    assert any("pip.main" in f.message for f in result.findings)


def test_ghsa_xp4f_hrf8_rxw7_ensurepip_run_pip(make_fixture: FixtureFactory) -> None:
    """ensurepip._run_pip runs pip in-process with attacker arguments."""
    assert_caught(make_fixture, "evasion_unlisted_ensurepip_run_pip",
                  At("PKL001", (), glob("ensurepip", "_run_pip")), only={"PKL001"})


def test_ghsa_v7x6_rv5q_mhwc_timeit(make_fixture: FixtureFactory) -> None:
    """timeit.timeit / timeit.Timer.timeit compile and run the statement they are given."""
    assert_caught(make_fixture, "evasion_unlisted_timeit_timeit",
                  At("PKL001", (), glob("timeit", "timeit")), only={"PKL001"})
    assert_caught(make_fixture, "evasion_unlisted_timeit_timer_timeit",
                  At("PKL001", (), glob("timeit", "Timer.timeit")), only={"PKL001"})


def test_ghsa_vvpj_8cmc_gx39_pkgutil_resolve_name(make_fixture: FixtureFactory) -> None:
    """pkgutil.resolve_name('os:system') returns os.system without naming it as a global; the
    result is then called (a call of a call's result)."""
    assert_caught(make_fixture, "evasion_unlisted_pkgutil_resolve_name",
                  At("PKL001", (), glob("pkgutil", "resolve_name")),
                  At("PKL007", (), -2), only={"PKL001", "PKL007"})  # the outer REDUCE


def test_cve_2025_10156_zip_crc_mismatch(make_fixture: FixtureFactory) -> None:
    """A wrong CRC made picklescan's zipfile give up on the member while torch.load ignored it:
    the member must still be scanned, and the mismatch reported."""
    assert_caught(make_fixture, "evasion_zip_crc_both",
                  At("CON003", ("archive/data.pkl",)),
                  At("PKL001", ("archive/data.pkl",), 0), only={"CON003", "PKL001"})


def test_cve_2025_1944_zip_name_mismatch(make_fixture: FixtureFactory) -> None:
    """The local header names a different file than the central directory: readers disagree on
    which member holds which bytes, so the disagreement itself fails the gate."""
    result = assert_caught(make_fixture, "evasion_zip_local_name",
                           At("CON002", ("archive/version",)))
    [finding] = [f for f in result.findings if f.rule_id == "CON002"]
    assert "archive/payload" in finding.message
    assert finding.severity >= Severity.HIGH


def test_cve_2025_1945_zip_flag_bits(make_fixture: FixtureFactory) -> None:
    """Encryption flag bits on a stored member: picklescan skipped it, torch (miniz) reads the
    bytes as they are.  ckptguard must not pass an unread member."""
    assert_caught(make_fixture, "evasion_zip_flag_bits",
                  At("CON008", ("archive/data.pkl",)), only={"CON008"})
    # a data-descriptor flag with no descriptor written: the member is read and scanned
    assert_caught(make_fixture, "evasion_zip_data_descriptor",
                  At("PKL001", ("archive/data.pkl",), 0), only={"PKL001"})


def test_cve_2025_1889_nonstandard_pickle_name(make_fixture: FixtureFactory) -> None:
    """torch.load(..., pickle_file=<any record>) unpickles any member; picklescan only looked at
    .pkl names.  Members are sniffed by content, whatever their name."""
    assert_caught(make_fixture, "evasion_zip_config_p",
                  At("PKL001", ("archive/config.p",), 0),
                  At("CON006", ("archive/config.p",)), only={"PKL001", "CON006"})


def test_cve_2025_1889_pickle_under_storage_folder(make_fixture: FixtureFactory) -> None:
    """torch.load(pickle_file='data/config.json') would unpickle it: only numbered records
    under data/ are storages; any other is read and judged."""
    assert_caught(make_fixture, "evasion_zip_odd_pickle_name",
                  At("PKL001", ("archive/data/config.json",), 0))


def test_cve_2025_10155_raw_pickle_under_model_names(make_fixture: FixtureFactory) -> None:
    """picklescan routed by extension: a raw pickle named .pt/.ckpt/.json was not scanned as one."""
    for name in ("evasion_raw_pickle_pt", "evasion_raw_pickle_ckpt",
                 "evasion_raw_pickle_safetensors_idx"):
        assert_caught(make_fixture, name, At("PKL001", (), 0))


def test_cve_2025_10157_asyncio_submodules(make_fixture: FixtureFactory) -> None:
    """The denylist matched 'asyncio' exactly, not its submodules; here neither the denylisted
    submodules nor an unlisted one (windows_utils) pass."""
    assert_caught(make_fixture, "evasion_asyncio_base_subprocess",
                  At("PKL001", (), glob("asyncio.base_subprocess",
                                        "BaseSubprocessTransport._start")), only={"PKL001"})
    assert_caught(make_fixture, "evasion_asyncio_create_subprocess",
                  At("PKL001", (), b"\x93"), only={"PKL001"})
    assert_caught(make_fixture, "evasion_asyncio_windows_popen",
                  At("PKL002", (), glob("asyncio.windows_utils", "Popen")), only={"PKL002"})


def test_cve_2025_32434_torch_legacy_tar(make_fixture: FixtureFactory) -> None:
    """weights_only=True was bypassable through the legacy tar layout, which unpickles its
    'pickle' record without the restricted unpickler: that record must be scanned."""
    assert_caught(make_fixture, "evasion_torch_tar_pickle", At("PKL001", ("pickle",), 0),
                  only={"PKL001"})


def test_cve_2025_32434_legacy_torch_non_first_pickle(make_fixture: FixtureFactory) -> None:
    """The same advisory's path through the legacy (non-zip) format: payload in a later pickle."""
    payload = glob("os", "system")
    for name in ("evasion_stream_legacy_torch_keys", "evasion_stream_legacy_torch_sysinfo"):
        assert_caught(make_fixture, name, At("PKL001", (), payload))


def test_legacy_torch_module_persistent_id_is_the_class_it_names(
        make_fixture: FixtureFactory, canary: Path) -> None:
    """torch's legacy loader answers a ('module', <class>, <file>, <source>) persistent id with
    the class itself: a pickle calling it calls that global.  The scan names os.system (not an
    opaque persistent_load call), and the real loader proves the call runs."""
    path = make_fixture("evasion_stream_legacy_torch_module_pid")
    assert_caught(make_fixture, "evasion_stream_legacy_torch_module_pid",
                  At("PKL001", (), glob("os", "system")), only={"PKL001"})
    assert not canary.exists()
    loader = LOADERS["torch.load"]
    skip_unless_installed(loader)
    proof = run_loader(loader, path, canary)
    assert proof.at_load, proof
    canary.unlink()


@pytest.mark.parametrize(("name", "rule"), [
    ("evasion_unlisted_osx_support_read_output", "PKL002"),
    ("evasion_unlisted_aix_support_read_cmd_output", "PKL002"),
    ("evasion_unlisted_pyrepl_pipe_pager", "PKL002"),
    ("evasion_unlisted_uuid_get_command_stdout", "PKL001"),
    ("evasion_unlisted_imaplib_imap4_stream", "PKL001"),
])
def test_cve_2026_56315_stdlib_command_helpers(make_fixture: FixtureFactory, name: str,
                                               rule: str) -> None:
    """picklescan < 1.0.4 did not block uuid, imaplib, _pyrepl.pager, _osx_support, _aix_support
    helpers that run OS commands; allowlist-first catches those no denylist names (PKL002)."""
    assert_caught(make_fixture, name, At(rule, (), 2), only={rule})


def test_picklescan_dotted_stack_global_walk(make_fixture: FixtureFactory) -> None:
    """Protocol 4 STACK_GLOBAL names 'a.b.c' walked past scanners that compared only the first
    segment (torch.* allowlisted, so torch.serialization.os.system passed)."""
    assert_caught(make_fixture, "evasion_walk_torch_serialization_os",
                  At("PKL001", (), b"\x93"), only={"PKL001"})


ADVISORY_FIXTURES = {
    "evasion_unlisted_pip_main", "evasion_unlisted_ensurepip_run_pip",
    "evasion_unlisted_timeit_timeit", "evasion_unlisted_timeit_timer_timeit",
    "evasion_unlisted_pkgutil_resolve_name", "evasion_zip_crc_both", "evasion_zip_local_name",
    "evasion_zip_flag_bits", "evasion_zip_data_descriptor", "evasion_zip_config_p",
    "evasion_zip_odd_pickle_name", "evasion_raw_pickle_pt", "evasion_raw_pickle_ckpt",
    "evasion_raw_pickle_safetensors_idx", "evasion_asyncio_base_subprocess",
    "evasion_asyncio_create_subprocess", "evasion_asyncio_windows_popen",
    "evasion_torch_tar_pickle", "evasion_stream_legacy_torch_keys",
    "evasion_stream_legacy_torch_sysinfo", "evasion_stream_legacy_torch_module_pid",
    "evasion_walk_torch_serialization_os",
    "evasion_unlisted_aix_support_read_cmd_output", "evasion_unlisted_pyrepl_pipe_pager",
    "evasion_unlisted_uuid_get_command_stdout", "evasion_unlisted_imaplib_imap4_stream",
}
