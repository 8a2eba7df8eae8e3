"""The scan command: exit codes, several reports, the stderr summary, errors without tracebacks,
and the same answer as the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptguard import Config, Severity, scan
from ckptguard.cli import main, pair_outputs
from ckptguard.report import renderer
from fixtures.workflow import sevenzip


@pytest.fixture()
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "bundle.7z").write_bytes(sevenzip())  # high
    (tmp_path / "models" / "model.pt").write_bytes(_links_tar())  # medium only (a symlink)
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "notes.txt").write_text("nothing to see\n")
    (tmp_path / "benign").mkdir()
    (tmp_path / "benign" / "data.pkl").write_bytes(b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01s.")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _links_tar() -> bytes:
    import io
    import tarfile

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        link = tarfile.TarInfo("latest")
        link.type, link.linkname = tarfile.SYMTYPE, "weights"
        archive.addfile(link)
    return buffer.getvalue()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_exit_codes(project: Path) -> None:
    assert run("scan", "benign")[0] == 0
    # A folder with nothing to judge is not a pass: a gate pointed at the wrong place says so.
    code, _, err = run("scan", "clean")
    assert code == 3 and "nothing was judged" in err
    assert run("scan", "models")[0] == 1
    assert run("scan", "models/model.pt")[0] == 0  # medium is below the default gate
    assert run("scan", "models/model.pt", "--fail-on", "medium")[0] == 1
    assert run("scan", "models", "--fail-on", "critical")[0] == 0
    code, _, err = run("scan", "missing.pt")
    assert code == 2 and "missing.pt: no such file or directory" in err
    assert run("scan")[0] == 2  # no path
    assert run("scan", "models", "--format", "xml")[0] == 2


def test_sarif_to_file_leaves_a_summary_on_stderr(project: Path) -> None:
    code, out, err = run("scan", "models", "--format", "sarif", "--output", "out.sarif")
    assert code == 1 and out == ""
    assert json.loads(Path("out.sarif").read_text())["version"] == "2.1.0"
    assert err.startswith("ckptguard: ") and "FAIL" in err and len(err.strip().splitlines()) == 1


def test_formats_pair_with_outputs_in_order(project: Path) -> None:
    code, out, err = run("scan", "models", "--format", "sarif", "--output", "r.sarif",
                         "--format", "json", "--output", "r.json", "--format", "text")
    assert code == 1
    assert json.loads(Path("r.sarif").read_text())["version"] == "2.1.0"
    assert json.loads(Path("r.json").read_text())["verdict"] == "fail"
    assert "FMT004" in out and err == ""  # the text report on stdout carries the summary


def test_output_pairing_rules() -> None:
    assert pair_outputs((), ()) == [("text", None)]
    assert pair_outputs(("json",), ("a.json",)) == [("json", "a.json")]
    assert pair_outputs(("sarif", "text"), ("a.sarif",)) == [("sarif", "a.sarif"),
                                                             ("text", None)]
    with pytest.raises(Exception, match="more --output than --format"):
        pair_outputs(("json",), ("a", "b"))
    with pytest.raises(Exception, match="only one report can go to standard output"):
        pair_outputs(("json", "text"), ())


def test_quiet_shows_only_failing_findings(project: Path) -> None:
    code, out, _ = run("scan", "models", "--quiet")
    assert code == 1
    assert "FMT004" in out and "CON009" not in out
    _, loud, _ = run("scan", "models")
    assert "CON009" in loud


def test_exclude_skips_paths(project: Path) -> None:
    code, out, _ = run("scan", "models", "--exclude", "*.7z", "--format", "json")
    assert code == 0
    assert {f["location"]["path"] for f in json.loads(out)["findings"]} == {"models/model.pt"}


def test_config_file_and_flags(project: Path) -> None:
    Path(".ckptguard.toml").write_text('fail-on = "medium"\n[severity]\nFMT004 = "low"\n')
    assert run("scan", "models/bundle.7z")[0] == 0  # FMT004 lowered to low
    assert run("scan", "models/model.pt")[0] == 1  # medium now fails
    assert run("scan", "models/model.pt", "--fail-on", "high")[0] == 0  # flag beats file
    Path(".ckptguard.toml").write_text('[ignore]\n"models/*.7z" = "*"\n')
    code, out, _ = run("scan", "models", "--format", "json")
    assert code == 0 and json.loads(out)["summary"]["suppressed"] == 1


def test_internal_error_is_one_line_unless_debug(project: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr("ckptguard.cli.scan", broken)
    code, _, err = run("scan", "models")
    assert code == 2
    assert "internal error: RuntimeError: boom" in err and "Traceback" not in err
    result = CliRunner().invoke(main, ["scan", "models", "--debug"])
    assert isinstance(result.exception, RuntimeError)


@pytest.mark.parametrize("args", [[], ["--fail-on", "medium"], ["--exclude", "*.pt"]])
def test_cli_and_api_give_the_same_answer(project: Path, args: list[str]) -> None:
    config = Config(fail_on=Severity.MEDIUM if "medium" in args else Severity.HIGH,
                    excludes=("*.pt",) if "*.pt" in args else ())
    api = scan(["models", "clean"], config)
    code, out, _ = run("scan", "models", "clean", "--format", "json", *args)
    assert out == renderer("json")(api)
    assert code == (1 if api.failed else 0)


def test_jobs_give_the_same_report(project: Path) -> None:
    one = run("scan", "models", "clean", "--format", "json")
    two = run("scan", "models", "clean", "--format", "json", "--jobs", "2")
    assert one == two


def test_version_and_help() -> None:
    code, out, _ = run("--version")
    assert code == 0 and "ckptguard" in out
    code, out, _ = run("scan", "--help")
    assert code == 0 and "--hf-cache" in out and "--baseline" in out


def test_interrupt_is_an_error_not_a_finding(project: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr("ckptguard.cli.scan", interrupted)
    code, _, err = run("scan", "models")
    assert code == 2 and "interrupted" in err


@pytest.mark.parametrize("command", [["scan"], ["sbom"], ["probe"], ["baseline", "create"],
                                     ["fleet", "scan"]])
def test_a_file_named_like_an_option_is_refused_not_obeyed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: list[str]) -> None:
    """Names appended by a tool (pre-commit, ``$(git diff --name-only)``) must not become
    options: a committed ``--exclude=*.pkl`` once excluded the malicious pickle beside it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pkl").write_bytes(b"cos\nsystem\n(S'true'\ntR.")  # scanned, never run
    (tmp_path / "--exclude=*.pkl").write_bytes(b"\x80\x02}q\x00.")
    runner = CliRunner()
    refused = runner.invoke(main, [*command, "--exclude=*.pkl", "model.pkl"])
    assert refused.exit_code == 2
    assert "'--exclude=*.pkl' reads as an option but is also a file" in refused.stderr
    if command == ["scan"]:
        after = runner.invoke(main, ["scan", "--", "--exclude=*.pkl", "model.pkl"])
        assert after.exit_code == 1 and "PKL001" in after.stdout  # both scanned as paths
        (tmp_path / "--exclude=*.pkl").unlink()  # an option typed by a user still works
        typed = runner.invoke(main, ["scan", "--exclude=*.pkl", "model.pkl"])
        assert typed.exit_code == 0 and "PKL001" not in typed.stdout


def test_a_report_is_never_written_through_a_symbolic_link(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In CI the report lands in a checkout of the code under review: a ``ckptguard.sarif``
    committed as a link would have aimed the write at any file the runner can change."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data.pkl").write_bytes(b"\x80\x02}q\x00.")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (tmp_path / "ckptguard.sarif").symlink_to(victim)
    runner = CliRunner()
    refused = runner.invoke(main, ["scan", "data.pkl", "--format", "sarif",
                                   "--output", "ckptguard.sarif"])
    assert refused.exit_code == 2, refused.output
    assert "ckptguard.sarif is a symbolic link; not writing through it" in refused.stderr
    assert victim.read_text() == "keep me\n"
    (tmp_path / "report.sarif").write_text("an older report, longer than the new one" * 999)
    written = runner.invoke(main, ["scan", "data.pkl", "--format", "sarif",
                                   "--output", "report.sarif"])
    assert written.exit_code == 0, written.output
    assert json.loads((tmp_path / "report.sarif").read_text())["version"] == "2.1.0"
