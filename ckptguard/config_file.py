"""Finding, reading and validating configuration files.

``.ckptguard.toml`` (top-level keys) or ``pyproject.toml`` (``[tool.ckptguard]``), looked for from
the working directory upward, stopping at the root of a version-controlled checkout.  Every
mistake is a ``ConfigError`` that names the file and the key.
"""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from ckptguard.config import Config
from ckptguard.limits import Limits
from ckptguard.model import Severity

CONFIG_FILE = ".ckptguard.toml"
PYPROJECT = "pyproject.toml"
VCS_MARKERS = (".git", ".hg", ".svn")
# One dotted name per entry; "*" / "**" / "?" wildcards inside, never as the first segment (a
# pattern like "**" or "*.system" would allow every module).
GLOBAL_PATTERN = re.compile(r"^[A-Za-z_][\w?*]*(\.[\w?*]+)*$")
LIMIT_NAMES = {f.name for f in fields(Limits)}


class ConfigError(ValueError):
    """Invalid configuration: the CLI reports it and exits with code 2."""


@dataclass(frozen=True)
class ConfigSource:
    """Where a configuration table came from."""

    path: Path
    table: Mapping[str, Any]

    @property
    def label(self) -> str:
        return f"{self.path} [tool.ckptguard]" if self.path.name == PYPROJECT else str(self.path)


def read_toml(path: Path) -> dict[str, Any]:
    # Imported here: most runs have no configuration file to read.
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with path.open("rb") as handle:
            table: dict[str, Any] = tomllib.load(handle)
            return table
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read configuration ({exc.strerror or exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None


def _table_of(path: Path) -> Mapping[str, Any] | None:
    """The ckptguard table of a configuration file, or None when a pyproject has none."""
    data = read_toml(path)
    if path.name != PYPROJECT:
        return data
    tool = data.get("tool")
    if not isinstance(tool, Mapping) or "ckptguard" not in tool:
        return None
    table = tool["ckptguard"]
    if not isinstance(table, Mapping):
        raise ConfigError(f"{path}: [tool.ckptguard] must be a table")
    return table


def find_config(start: Path) -> ConfigSource | None:
    """The nearest configuration from ``start`` upward; the search stops at a VCS root."""
    directory = start.resolve()
    while True:
        for name in (CONFIG_FILE, PYPROJECT):
            candidate = directory / name
            if candidate.is_file():
                table = _table_of(candidate)
                if table is not None:
                    return ConfigSource(candidate, table)
        if any((directory / marker).exists() for marker in VCS_MARKERS) or \
                directory.parent == directory:
            return None
        directory = directory.parent


def open_config(path: Path) -> ConfigSource:
    """A configuration file named explicitly (``--config``)."""
    if not path.is_file():
        raise ConfigError(f"{path}: configuration file not found")
    table = _table_of(path)
    if table is None:
        raise ConfigError(f"{path}: has no [tool.ckptguard] table")
    return ConfigSource(path, table)


def _known_rule_ids() -> frozenset[str]:
    from ckptguard.engine.rules import load_rules
    from ckptguard.engine.ruleset import rules_directory

    return frozenset(load_rules(rules_directory()))


class _Reader:
    """Validates one table against the schema below, with messages naming file and key."""

    def __init__(self, where: str, known_rules: Collection[str] | None) -> None:
        self.where = where
        self._known = known_rules

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.where}: '{key}' {problem}")

    def rule_id(self, key: str, value: Any) -> str:
        if not isinstance(value, str):
            raise self.error(key, f"holds {value!r}, which is not a rule id")
        if self._known is None:
            self._known = _known_rule_ids()
        if value not in self._known:
            hint = _did_you_mean(value, self._known)
            raise self.error(key, f"names unknown rule {value!r}{hint}")
        return value

    def strings(self, key: str, value: Any) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"must be a list of strings, not {_type_name(value)}")
        return tuple(value)

    def severity(self, key: str, value: Any) -> Severity:
        if not isinstance(value, str):
            raise self.error(key, f"must be a severity name, not {_type_name(value)}")
        try:
            return Severity.parse(value)
        except ValueError as exc:
            raise self.error(key, str(exc)) from None

    def table(self, key: str, value: Any) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.error(key, f"must be a table, not {_type_name(value)}")
        return value


def _type_name(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
            list: "a list", dict: "a table"}.get(type(value), type(value).__name__)


def _did_you_mean(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _fail_on(r: _Reader, v: Any) -> dict[str, Any]:
    return {"fail_on": r.severity("fail-on", v)}


def _enable(r: _Reader, v: Any) -> dict[str, Any]:
    return {"enable": tuple(r.rule_id("enable", x) for x in r.strings("enable", v))}


def _disable(r: _Reader, v: Any) -> dict[str, Any]:
    return {"disable": tuple(r.rule_id("disable", x) for x in r.strings("disable", v))}


def _severity(r: _Reader, v: Any) -> dict[str, Any]:
    table = r.table("severity", v)
    return {"severity_overrides": {r.rule_id("severity", rule): r.severity(f"severity.{rule}", lvl)
                                   for rule, lvl in table.items()}}


def _ignore(r: _Reader, v: Any) -> dict[str, Any]:
    ignores: dict[str, tuple[str, ...]] = {}
    for glob, ids in r.table("ignore", v).items():
        listed = r.strings(f"ignore.{glob}", ids)
        ignores[glob] = tuple(x if x == "*" else r.rule_id(f"ignore.{glob}", x) for x in listed)
    return {"ignores": ignores}


def _allowed_globals(r: _Reader, v: Any) -> dict[str, Any]:
    names = r.strings("allowed-globals", v)
    for name in names:
        if not GLOBAL_PATTERN.match(name):
            raise r.error("allowed-globals", f"holds {name!r}: expected a dotted name such as "
                          "'mycompany.models.**' (no wildcard in the first segment)")
    return {"allowed_globals": names}


def _allowlist_files(r: _Reader, v: Any) -> dict[str, Any]:
    files = r.strings("allowlist-files", v)
    if any(not name for name in files):
        raise r.error("allowlist-files", "holds an empty path")
    return {"allowlist_files": files}


def check_allowlist_file(path: Path, where: str) -> None:
    """An included list file must exist, parse, and hold only dotted names whose first segment
    is not a wildcard (the same rule as ``allowed-globals``)."""
    from ckptguard.engine.namelists import load_list_file

    key = "allowlist-files"
    if not path.is_file():
        raise ConfigError(f"{where}: '{key}' names {path}, which is not a file")
    try:
        listed = load_list_file(path)
    except (ValueError, OSError) as exc:
        raise ConfigError(f"{where}: '{key}' names {path}, which is not a list file "
                          f"({' '.join(str(exc).split())[:300]})") from None
    for entry in listed.entries():
        if not GLOBAL_PATTERN.match(entry.pattern):
            raise ConfigError(f"{where}: '{key}': {path} holds {entry.pattern!r}: expected a "
                              "dotted name with no wildcard in the first segment")


def _exclude(r: _Reader, v: Any) -> dict[str, Any]:
    return {"excludes": r.strings("exclude", v)}


def _weights(r: _Reader, v: Any) -> dict[str, Any]:
    if not isinstance(v, bool):
        raise r.error("weights", f"must be true or false, not {_type_name(v)}")
    return {"weights": v}


LICENSE_FLAGS = ("fail-on-conflict", "commercial-use")
LICENSE_LISTS = ("allowed", "denied")


def _digests(r: _Reader, v: Any) -> dict[str, Any]:
    if not isinstance(v, bool):
        raise r.error("digests", f"must be true or false, not {_type_name(v)}")
    return {"digests": v}


def _include_skipped(r: _Reader, v: Any) -> dict[str, Any]:
    if not isinstance(v, bool):
        raise r.error("include-skipped", f"must be true or false, not {_type_name(v)}")
    return {"include_skipped": v}


def _timeout(r: _Reader, v: Any) -> dict[str, Any]:
    """Seconds per top-level file (``--timeout``); 0 turns the budget off.  Kept as 0.0, not
    None, so the command line can tell "turned off here" from "not set" (scans treat both as no
    budget)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not v >= 0 or v == float("inf"):
        raise r.error("timeout", f"must be a number of seconds (0 turns it off), not {v!r}")
    return {"artifact_timeout": float(v)}


def _license(r: _Reader, v: Any) -> dict[str, Any]:
    """``[license]``: known keys only, booleans as booleans, and every license id one that
    ckptguard can recognise (a Hub license id or an SPDX id); a single id may be a string."""
    policy: dict[str, Any] = {}
    for raw_key, value in r.table("license", v).items():
        key = str(raw_key).replace("_", "-")
        name = f"license.{raw_key}"
        if key in LICENSE_FLAGS:
            if not isinstance(value, bool):
                raise r.error(name, f"must be true or false, not {_type_name(value)}")
            policy[key] = value
        elif key in LICENSE_LISTS:
            policy[key] = [_license_id(r, name, item) for item in r.strings(name, value)]
        else:
            hint = _did_you_mean(key, (*LICENSE_FLAGS, *LICENSE_LISTS))
            raise r.error(name, f"is not a license policy key{hint} (known: "
                          f"{', '.join(sorted((*LICENSE_FLAGS, *LICENSE_LISTS)))})")
    return {"license_policy": policy}


def _license_id(r: _Reader, key: str, value: str) -> str:
    from ckptguard.license.catalog import load_catalog

    catalog = load_catalog()
    if catalog.normalize(value).terms is None:
        hint = _did_you_mean(value.strip().lower(), catalog.by_hf)
        raise r.error(key, f"names unknown license {value!r}{hint}: use a Hugging Face license "
                      "id (e.g. 'apache-2.0', 'llama3.1') or an SPDX id")
    return value


def _path(key: str, field_name: str) -> Callable[[_Reader, Any], dict[str, Any]]:
    def read(r: _Reader, v: Any) -> dict[str, Any]:
        if not isinstance(v, str) or not v:
            raise r.error(key, f"must be a path, not {_type_name(v)}")
        return {field_name: v}
    return read


def _limits(r: _Reader, v: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for key, value in r.table("limits", v).items():
        name = key.replace("-", "_")
        if name not in LIMIT_NAMES or name == "scale_pickle_limits":
            hint = _did_you_mean(name, LIMIT_NAMES).replace("_", "-")
            raise r.error(f"limits.{key}", f"is not a known limit{hint}")
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise r.error(f"limits.{key}", f"must be a positive integer, not {value!r}")
        changes[name] = value
    if "max_pickle_opcodes" in changes or "max_pickle_memo" in changes:
        # A count the user wrote is a cap, not a floor to scale with the stream.
        changes["scale_pickle_limits"] = False
    return {"limits": replace(Limits(), **changes)}


KEYS: dict[str, Callable[[_Reader, Any], dict[str, Any]]] = {
    "fail-on": _fail_on,
    "enable": _enable,
    "disable": _disable,
    "severity": _severity,
    "ignore": _ignore,
    "allowed-globals": _allowed_globals,
    "allowlist-files": _allowlist_files,
    "exclude": _exclude,
    "weights": _weights,
    "digests": _digests,
    "include-skipped": _include_skipped,
    "timeout": _timeout,
    "license": _license,
    "limits": _limits,
    "baseline": _path("baseline", "baseline"),
    "base": _path("base", "base"),
}


def parse_table(table: Mapping[str, Any], where: str, *,
                known_rules: Collection[str] | None = None) -> dict[str, Any]:
    """``Config`` keyword arguments from a configuration table (keys with ``-`` or ``_``)."""
    reader = _Reader(where, known_rules)
    values: dict[str, Any] = {}
    for raw_key, value in table.items():
        key = raw_key.replace("_", "-")
        parse = KEYS.get(key)
        if parse is None:
            raise ConfigError(f"{where}: unknown key '{raw_key}'{_did_you_mean(key, KEYS)}")
        values.update(parse(reader, value))
    return values


def config_from(source: ConfigSource, *,
                known_rules: Collection[str] | None = None) -> Config:
    values = parse_table(source.table, source.label, known_rules=known_rules)
    for key in ("baseline", "base"):  # paths in a file are relative to the file
        if key in values:
            values[key] = str(source.path.parent / values[key])
    if "allowlist_files" in values:  # relative to the file, and checked now
        files = tuple(str(source.path.parent / name) for name in values["allowlist_files"])
        for name in files:
            check_allowlist_file(Path(name), source.label)
        values["allowlist_files"] = files
    return Config(**values, source=source.label)


def resolve_config(config_file: str | Path | None = None, *, start: Path | None = None,
                   overrides: Mapping[str, Any] | None = None,
                   known_rules: Collection[str] | None = None) -> Config:
    """The effective configuration: the named or discovered file, then ``overrides`` (``Config``
    field names, as the command line gives them) on top."""
    source = open_config(Path(config_file)) if config_file is not None \
        else find_config(start or Path.cwd())
    config = config_from(source, known_rules=known_rules) if source else Config()
    changes = {k: v for k, v in (overrides or {}).items() if v is not None}
    if not changes:
        return config
    label = f"{config.source} + command line" if config.source else "command line"
    return replace(config, **changes, source=label)
