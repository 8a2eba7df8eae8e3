"""Configuration files: discovery, every key, and the errors a typo produces."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptguard import scan
from ckptguard.cli import main
from ckptguard.config import Config
from ckptguard.config_file import ConfigError, find_config, open_config, resolve_config
from ckptguard.limits import Limits
from ckptguard.model import Severity

FULL = """
[tool.ckptguard]
fail-on = "medium"
enable = ["FMT001", "FMT004", "SCN001"]
disable = ["SCN001"]
allowed-globals = ["mycompany.models.**", "mylib.layers.*"]
exclude = ["build/**", "*.tmp"]
weights = true
baseline = "ckpt-baseline.json"
timeout = 45
include-skipped = true

[tool.ckptguard.severity]
FMT004 = "low"

[tool.ckptguard.ignore]
"tests/fixtures/**" = "*"
"legacy/*.pt" = ["FMT001"]

[tool.ckptguard.license]
fail-on-conflict = true
denied = ["cc-by-nc-4.0"]

[tool.ckptguard.limits]
max-pickle-opcodes = 1000
max_archive_depth = 3
"""


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_every_key_reaches_the_config(tmp_path: Path) -> None:
    write(tmp_path / "pyproject.toml", FULL)
    config = resolve_config(start=tmp_path)
    assert config.fail_on is Severity.MEDIUM
    assert config.enable == ("FMT001", "FMT004", "SCN001")
    assert config.disable == ("SCN001",)
    assert config.severity_overrides == {"FMT004": Severity.LOW}
    assert config.ignores == {"tests/fixtures/**": ("*",), "legacy/*.pt": ("FMT001",)}
    assert config.allowed_globals == ("mycompany.models.**", "mylib.layers.*")
    assert config.excludes == ("build/**", "*.tmp", "*.tmp/**")  # a folder named so, too
    assert config.weights is True
    assert config.license_policy == {"fail-on-conflict": True, "denied": ["cc-by-nc-4.0"]}
    assert config.limits == Limits(max_pickle_opcodes=1000, max_archive_depth=3,
                                  scale_pickle_limits=False)
    assert config.baseline == str(tmp_path / "ckpt-baseline.json")
    assert config.artifact_timeout == 45.0 and config.include_skipped is True
    assert config.source is not None and config.source.endswith("pyproject.toml [tool.ckptguard]")


@pytest.mark.parametrize(("flag", "configured", "expected"), [
    (None, None, 300.0), (None, 45.0, 45.0), (None, 0.0, None), (10.0, 45.0, 10.0),
    (0.0, 45.0, None), (10.0, 0.0, 10.0)])
def test_the_timeout_comes_from_the_flag_then_the_file_then_the_default(
        flag: float | None, configured: float | None, expected: float | None) -> None:
    from ckptguard.cli import effective_timeout

    assert effective_timeout(flag, configured) == expected


def test_the_configured_timeout_and_skipped_folders_reach_a_cli_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ckptguard.cli

    seen: list[Config] = []
    real = ckptguard.cli.scan

    def recording(paths: object, config: Config, **kwargs: object) -> object:
        seen.append(config)
        return real(paths, config, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ckptguard.cli, "scan", recording)
    config_file = write(tmp_path / ".ckptguard.toml", "timeout = 0\ninclude-skipped = true\n")
    write(tmp_path / "model" / ".git" / "inside.pkl", "")
    target = write(tmp_path / "model" / "notes.txt", "hello\n")
    runner = CliRunner()
    runner.invoke(main, ["scan", str(target.parent), "--config", str(config_file)])
    runner.invoke(main, ["scan", str(target.parent), "--config", str(config_file),
                         "--timeout", "7"])
    assert [(c.artifact_timeout, c.include_skipped) for c in seen] == [(None, True), (7.0, True)]


def test_discovery_walks_up_and_prefers_dot_file(tmp_path: Path) -> None:
    write(tmp_path / ".ckptguard.toml", 'fail-on = "critical"\n')
    write(tmp_path / "pyproject.toml", '[tool.ckptguard]\nfail-on = "low"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    found = find_config(deep)
    assert found is not None and found.path == tmp_path / ".ckptguard.toml"
    assert resolve_config(start=deep).fail_on is Severity.CRITICAL


def test_pyproject_without_table_is_passed_over(tmp_path: Path) -> None:
    write(tmp_path / ".ckptguard.toml", 'fail-on = "low"\n')
    write(tmp_path / "sub" / "pyproject.toml", '[project]\nname = "x"\n')
    assert resolve_config(start=tmp_path / "sub").fail_on is Severity.LOW


def test_discovery_stops_at_the_vcs_root(tmp_path: Path) -> None:
    write(tmp_path / ".ckptguard.toml", 'fail-on = "low"\n')
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    (repo / "src").mkdir()
    assert find_config(repo / "src") is None
    assert resolve_config(start=repo / "src") == Config()


def test_cli_values_override_the_file(tmp_path: Path) -> None:
    write(tmp_path / ".ckptguard.toml", 'fail-on = "critical"\nweights = true\n')
    config = resolve_config(start=tmp_path, overrides={"fail_on": Severity.LOW, "weights": None})
    assert config.fail_on is Severity.LOW and config.weights is True
    assert config.source is not None and config.source.endswith("+ command line")


@pytest.mark.parametrize(("text", "expected"), [
    ('fial-on = "high"', "unknown key 'fial-on' (did you mean 'fail-on'?)"),
    ('weights = "yes"', "'weights' must be true or false, not a string"),
    ('disable = ["FMT01"]', "unknown rule 'FMT01' (did you mean 'FMT001'?)"),
    ('fail-on = "severe"', "unknown severity 'severe'"),
    ('[severity]\nFMT001 = "huge"', "'severity.FMT001' unknown severity 'huge'"),
    ('[ignore]\n"*.pt" = ["NOPE999"]', "unknown rule 'NOPE999'"),
    ('license = "mit"', "'license' must be a table, not a string"),
    ('allowed-globals = ["**"]', "no wildcard in the first segment"),
    ('exclude = [1]', "'exclude' must be a list of strings"),
    ('[limits]\nmax-pickle-opcode = 5', "did you mean 'max-pickle-opcodes'?"),
    ('[limits]\nmax-archive-depth = -1', "must be a positive integer"),
    ('timeout = -5', "'timeout' must be a number of seconds (0 turns it off), not -5"),
    ('timeout = "300"', "'timeout' must be a number of seconds"),
    ('timeout = nan', "'timeout' must be a number of seconds"),
    ('include-skipped = 1', "'include-skipped' must be true or false, not an integer"),
    ('fail-on = ', "not valid TOML"),
    ('[license]\nfail-on-conflicts = true',
     "'license.fail-on-conflicts' is not a license policy key (did you mean 'fail-on-conflict'?)"),
    ('[license]\ndenied = ["cc-by-nc-4.O"]',
     "'license.denied' names unknown license 'cc-by-nc-4.O'"),
    ('[license]\nallowed = ["not-a-license"]', "names unknown license 'not-a-license'"),
    ('[license]\nallowed = [1]', "'license.allowed' must be a list of strings"),
    ('[license]\ncommercial-use = "yes"', "'license.commercial-use' must be true or false"),
])
def test_invalid_config_is_an_error_naming_file_and_key(tmp_path: Path, text: str,
                                                         expected: str) -> None:
    path = write(tmp_path / ".ckptguard.toml", text + "\n")
    with pytest.raises(ConfigError) as error:
        resolve_config(start=tmp_path)
    assert str(path) in str(error.value)
    assert expected in str(error.value)


def test_explicit_config_without_table_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", "[project]\nname = 'x'\n")
    with pytest.raises(ConfigError, match=r"has no \[tool.ckptguard\] table"):
        open_config(path)
    with pytest.raises(ConfigError, match="not found"):
        open_config(tmp_path / "missing.toml")


def test_cli_exits_2_on_invalid_config(tmp_path: Path) -> None:
    write(tmp_path / ".ckptguard.toml", 'fail-on = "severe"\n')
    target = write(tmp_path / "notes.txt", "hello\n")
    result = CliRunner().invoke(main, ["scan", str(target), "--config",
                                       str(tmp_path / ".ckptguard.toml")])
    assert result.exit_code == 2
    assert "'fail-on' unknown severity 'severe'" in result.output


def test_config_show_reports_values_and_source(tmp_path: Path) -> None:
    path = write(tmp_path / "pyproject.toml", FULL)
    runner = CliRunner()
    shown = runner.invoke(main, ["config", "show", "--config", str(path), "--format", "json"])
    assert shown.exit_code == 0, shown.output
    settings = json.loads(shown.output)
    assert settings["fail-on"] == "medium"
    assert settings["severity"] == {"FMT004": "low"}
    assert settings["limits"]["max-pickle-opcodes"] == 1000
    assert settings["source"] == f"{path} [tool.ckptguard]"
    text = runner.invoke(main, ["config", "show", "--config", str(path)])
    assert text.exit_code == 0
    assert f"# source: {path} [tool.ckptguard]" in text.output
    assert 'fail-on = "medium"' in text.output


@pytest.mark.skipif(importlib.util.find_spec("ckptguard.formats.pickle") is None,
                    reason="the pickle parser is not in this checkout")
def test_allowed_globals_reach_the_pickle_rules(tmp_path: Path) -> None:
    model = tmp_path / "net.pkl"
    # A protocol-2 pickle that builds mycompany.models.Net() via NEWOBJ: plain data, own class.
    model.write_bytes(b"\x80\x02cmycompany.models\nNet\nq\x00)\x81q\x01.")
    flagged = scan([model], Config(), root=tmp_path)
    assert any("mycompany.models.Net" in f.message for f in flagged.findings)
    write(tmp_path / ".ckptguard.toml", 'allowed-globals = ["mycompany.models.**"]\n')
    allowed = scan([model], resolve_config(start=tmp_path), root=tmp_path)
    assert not any("mycompany.models.Net" in f.message for f in allowed.findings)


@pytest.mark.parametrize("document", ["README.md", "docs/configuration.md"])
def test_documented_examples_are_valid(tmp_path: Path, document: str) -> None:
    text = (Path(__file__).resolve().parent.parent / document).read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```toml\n")[1:]]
    assert blocks, f"{document} has no TOML example"
    for block in blocks:
        write(tmp_path / "pyproject.toml", block)
        assert resolve_config(start=tmp_path).source is not None


def test_license_ids_may_be_one_string_hub_or_spdx(tmp_path: Path) -> None:
    write(tmp_path / ".ckptguard.toml",
          '[license]\ndenied = "cc-by-nc-4.0"\nallowed = ["Apache-2.0", "llama3.1"]\n'
          'fail_on_conflict = true\n')
    config = resolve_config(start=tmp_path)
    assert config.license_policy == {"denied": ["cc-by-nc-4.0"],
                                     "allowed": ["Apache-2.0", "llama3.1"],
                                     "fail-on-conflict": True}
    from ckptguard.license.policy import LicensePolicy

    policy = LicensePolicy.from_options(config.license_policy)
    assert policy.denied == frozenset({"cc-by-nc-4.0"}) and policy.fail_on_conflict
    # The API takes a single string as one id too (never its characters).
    assert LicensePolicy.from_options({"denied": "mit"}).denied == frozenset({"mit"})


@pytest.mark.parametrize("written", ["models/tmp", "models/tmp/", "./models/tmp", "models/tmp/**"])
def test_exclude_names_a_folder_as_people_write_it(tmp_path: Path, written: str,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from ckptguard.api import scan
    from ckptguard.config import Config

    for folder in ("tmp", "keep"):
        write(tmp_path / "models" / folder / "model.pkl", "hello\n")
    monkeypatch.chdir(tmp_path)
    config = Config(excludes=(written,))
    assert "models/tmp/**" in config.excludes
    scanned = {a.name for a in scan(["models"], config).artifacts}
    assert scanned == {"models/keep/model.pkl"}
    # A file named directly inside the excluded folder is excluded too.
    assert scan(["models/tmp/model.pkl"], config).artifacts == ()
