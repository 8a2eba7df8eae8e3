"""``ckptguard config show``: the effective configuration and where it came from."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import click

from ckptguard.cli_support import build_config, config_option, debug_option, guarded


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def as_toml(settings: Mapping[str, Any]) -> str:
    """TOML text that could be pasted into ``.ckptguard.toml`` (unset values as comments)."""
    lines = [f"# source: {settings.get('source') or 'built-in defaults'}"]
    tables: list[str] = []
    for key, value in settings.items():
        if key == "source":
            continue
        if value is None:
            lines.append(f"# {key}: not set" + (" (all rules)" if key == "enable" else ""))
        elif isinstance(value, Mapping) and value:
            tables.append(f"\n[{key}]")
            tables.extend(f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        else:
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines + tables) + "\n"


@click.group("config")
def config_group() -> None:
    """Inspect ckptguard's configuration."""


@config_group.command("show")
@config_option
@click.option("--format", "output_format", type=click.Choice(["toml", "json"]), default="toml",
              show_default=True, help="Print as TOML-like text or as JSON.")
@debug_option
def show_command(config_file: str | None, output_format: str, debug: bool) -> None:
    """Print the effective configuration, including the file it was read from."""
    with guarded(debug):
        settings = build_config(config_file, {}).as_dict()
        if output_format == "json":
            click.echo(json.dumps(settings, indent=2, sort_keys=False))
        else:
            click.echo(as_toml(settings), nl=False)
