"""Hostile filesystems: every path that cannot be judged is a finding on that path and the scan
goes on; nothing outside the scanned folder is read or quoted; skipped folders are listed; a scan
that judged nothing says so with its own exit code."""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptguard import Config, scan
from ckptguard.api import load_rules
from ckptguard.cli import main
from ckptguard.report import renderer
from fixtures.filesystem import SECRET

PAYLOAD = b"cos\nsystem\n(Vtrue\ntR."  # os.system('true'): never run, only scanned


def rules_by_path(result: object) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for item in getattr(result, "findings", ()):
        found.setdefault(item.location.path, set()).add(item.rule_id)
    return found


def cli(*args: str) -> tuple[int, str, str]:
    outcome = CliRunner().invoke(main, list(args))
    return outcome.exit_code, outcome.stdout, outcome.stderr


# -- unreadable paths --------------------------------------------------------------------------

@pytest.fixture()
def locked_tree() -> Iterator[Path]:
    """A tree another user can reach (not under pytest's 0700 temp folder): a readable clean
    file, an unreadable file, and an unreadable folder holding a payload."""
    top = Path(tempfile.mkdtemp(prefix="ckg-fs-"))
    try:
        top.chmod(0o755)
        (top / "clean.pkl").write_bytes(b"\x80\x02}q\x00.")
        (top / "clean.pkl").chmod(0o644)
        (top / "secret.pkl").write_bytes(PAYLOAD)
        (top / "secret.pkl").chmod(0o000)
        (top / "locked").mkdir()
        (top / "locked" / "model.pkl").write_bytes(PAYLOAD)
        (top / "locked").chmod(0o000)
        (top / "listable").mkdir()  # may be listed, not entered: names known, files unreachable
        (top / "listable" / "model.pkl").write_bytes(PAYLOAD)
        (top / "listable").chmod(0o744)
        yield top
    finally:
        (top / "locked").chmod(0o755)
        (top / "listable").chmod(0o755)
        for path in sorted(top.rglob("*"), reverse=True):
            path.unlink() if not path.is_dir() else path.rmdir()
        top.rmdir()


def _scan_as_unprivileged(top: Path) -> dict[str, object]:
    """The scan as a user that cannot read the locked paths: as root, in a forked child that
    drops to ``nobody`` first (root reads everything, so a root scan would prove nothing).
    ``nobody`` may not be able to read the Python installation, so everything the scan needs
    is imported and loaded here first (a scan of the same tree, and the rules)."""
    rules = load_rules(Config())
    scan([str(top), str(top / "listable" / "model.pkl")], Config(), root=top.parent,
         rules=rules)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(read)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            named = str(top / "listable" / "model.pkl")  # named, but cannot even be stat()ed
            result = scan([str(top), named], Config(), root=top.parent, rules=rules)
            document = {"exit": "ok", "rules": {k: sorted(v) for k, v in
                                                rules_by_path(result).items()},
                        "failed": result.failed, "nothing": result.judged_nothing}
            os.write(write, json.dumps(document).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    reply: dict[str, object] = json.loads(b"".join(chunks))
    return reply


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform == "win32", reason="POSIX only")
def test_unreadable_files_and_folders_are_findings(locked_tree: Path) -> None:
    reply = _scan_as_unprivileged(locked_tree)
    name = locked_tree.name
    rules = reply["rules"]
    assert isinstance(rules, dict)
    assert rules[f"{name}/secret.pkl"] == ["FSY001"]
    assert rules[f"{name}/locked/"] == ["FSY001"]
    assert rules[f"{name}/listable/model.pkl"] == ["FSY001"]
    assert f"{name}/clean.pkl" not in rules  # the readable file was judged (and is clean)
    assert reply["failed"] is True and reply["nothing"] is False


# -- links, special files, depth ---------------------------------------------------------------

def test_links_out_of_the_tree_are_reported_and_never_quoted(make_fixture) -> None:  # type: ignore[no-untyped-def]
    tree: Path = make_fixture("link_out_of_tree")
    result = scan([tree], Config(), root=tree.parent)
    found = rules_by_path(result)
    assert found["tree/model.pt"] == {"FSY002"} and found["tree/LICENSE"] == {"FSY002"}
    marker = SECRET.decode().split(":")[0]
    for name in ("text", "json", "sarif"):
        assert marker not in renderer(name)(result), name


def test_a_named_link_out_of_the_working_folder_is_not_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "outside.txt").write_bytes(SECRET)
    work = tmp_path / "work"
    work.mkdir()
    (work / "x.pt").symlink_to(tmp_path / "outside.txt")
    monkeypatch.chdir(work)
    code, out, _ = cli("scan", "x.pt", "--format", "json", "--timeout", "0")
    document = json.loads(out)
    assert code == 1
    assert [f["rule_id"] for f in document["findings"]] == ["FSY002"]
    assert SECRET.decode().split(":")[0] not in out
    assert SECRET[:8].hex() not in out  # not even the first bytes (the unknown-format finding)


def test_a_hub_cache_snapshot_may_link_into_its_blobs(tmp_path: Path) -> None:
    repo = tmp_path / "models--org--name"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "abc123").write_bytes(PAYLOAD)
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "model.pkl").symlink_to(Path("..") / ".." / "blobs" / "abc123")
    found = rules_by_path(scan([snapshot], Config(), root=tmp_path))
    rules = found[str((snapshot / "model.pkl").relative_to(tmp_path))]
    assert "FSY002" not in rules and "PKL001" in rules  # followed, and judged


def test_special_files_are_findings_and_never_opened(make_fixture, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tree: Path = make_fixture("fifo_in_tree")
    found = rules_by_path(scan([tree], Config(), root=tree.parent))
    assert found["tree/model.pt"] == {"FSY003"}  # a FIFO: opening it would block the scan
    other = tmp_path / "other"
    other.mkdir()
    os.mknod(other / "sock.pt", stat.S_IFSOCK | 0o600)
    expected = {"other/sock.pt"}
    if os.geteuid() == 0:
        os.mknod(other / "dev.pt", stat.S_IFCHR | 0o600, os.makedev(1, 3))  # like /dev/null
        expected.add("other/dev.pt")
    (other / "ok.pkl").write_bytes(b"\x80\x02}q\x00.")
    result = scan([other], Config(), root=tmp_path)
    assert {path for path, rules in rules_by_path(result).items() if "FSY003" in rules} == \
        expected
    assert any(a.name == "other/ok.pkl" for a in result.artifacts)  # the scan went on


def test_broken_links_and_deep_trees(make_fixture) -> None:  # type: ignore[no-untyped-def]
    tree: Path = make_fixture("broken_links_in_tree")
    found = rules_by_path(scan([tree], Config(), root=tree.parent))
    assert found == {"tree/dangling.pt": {"FSY004"}, "tree/loop.pt": {"FSY004"}}
    deep: Path = make_fixture("tree_too_deep")
    result = scan([deep], Config(), root=deep.parent)
    assert [f.rule_id for f in result.findings] == ["FSY005"] and result.failed


def test_the_cli_never_gives_up_on_a_hostile_tree(  # type: ignore[no-untyped-def]
        make_fixture, monkeypatch: pytest.MonkeyPatch) -> None:
    trees = [make_fixture(name) for name in ("fifo_in_tree", "broken_links_in_tree",
                                              "link_out_of_tree", "tree_too_deep")]
    monkeypatch.chdir(trees[0].parent.parent)
    code, out, err = cli("scan", *(str(t.relative_to(Path.cwd())) for t in trees))
    assert code == 1, err
    for rule in ("FSY002", "FSY003", "FSY004", "FSY005"):
        assert rule in out


# -- skipped folders and scans that judged nothing -----------------------------------------------

def test_skipped_folders_are_listed_and_can_be_included(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "ok.pkl").write_bytes(b"\x80\x02}q\x00.")
    for hidden in (".git", "node_modules", "venv"):
        (tmp_path / "models" / hidden).mkdir()
    (tmp_path / "models" / "venv" / "evil.pkl").write_bytes(PAYLOAD)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("scan", "models", "--format", "json")
    document = json.loads(out)
    assert code == 0
    assert document["skipped_folders"] == ["models/.git/", "models/node_modules/",
                                           "models/venv/"]
    code, out, _ = cli("scan", "models")
    assert "Skipped by name" in out and "models/venv/" in out
    code, out, _ = cli("scan", "models", "--include-skipped", "--format", "json")
    document = json.loads(out)
    assert code == 1 and document["skipped_folders"] == []
    assert any(f["location"]["path"] == "models/venv/evil.pkl" for f in document["findings"])


def test_a_scan_that_judged_nothing_exits_3(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("nothing here\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.pkl").write_bytes(PAYLOAD)
    monkeypatch.chdir(tmp_path)
    for args in (["empty"], ["docs"], ["models", "--exclude", "*.pkl"]):
        code, out, err = cli("scan", *args, "--format", "json")
        assert code == 3, args
        assert json.loads(out)["summary"]["judged_nothing"] is True
        assert "nothing was judged" in err
    # Named files were looked at: a pre-commit hook that names a lone config passes.
    code, _, _ = cli("scan", "docs/notes.txt")
    assert code == 0
    code, _, _ = cli("scan", "models")
    assert code == 1


def test_a_file_that_reads_past_its_stated_size_is_not_judged(tmp_path: Path) -> None:
    from ckptguard.fsguard import file_problem

    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x02}q\x00.")
    assert file_problem(path, path.stat().st_size) is None
    # As the walk would see a file that grows after its size was read, or a pseudo-file.
    kind, detail = file_problem(path, 2) or ("", "")
    assert kind == "special" and "stated as 2 bytes" in detail
    fifo = tmp_path / "swapped.pt"
    os.mkfifo(fifo)  # as if swapped in after the walk's stat: opened, never read
    assert file_problem(fifo, 0) == ("special", "named pipe (FIFO): content is produced when read")
    absent = file_problem(tmp_path / "absent.pkl", 0)
    assert absent is not None and absent[0] == "unreadable"
    assert absent[1].startswith("cannot open: ")  # the system's words follow, in its language


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="needs Linux /proc")
def test_a_proc_file_is_a_finding_not_an_empty_pass() -> None:
    """/proc states 0 bytes and produces its content when read: scanned as the 0 bytes it
    states, it once passed the gate as a file with nothing in it."""
    result = scan(["/proc/self/status"], Config())
    assert [(f.rule_id, f.severity.label) for f in result.findings] == [("FSY003", "high")]
    assert result.failed
