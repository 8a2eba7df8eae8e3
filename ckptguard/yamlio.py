"""YAML reading: always the safe loader, in C (libyaml) when available.

PyYAML is imported on first use: rule loading normally comes from the parsed-rules cache
(``engine.documents``), so a pre-commit run does not pay for importing it."""

from __future__ import annotations

from typing import Any


class YamlError(ValueError):
    """Text that is not valid YAML (PyYAML's error, without importing PyYAML to catch it)."""


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader (no object construction, ever)."""
    import yaml

    loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(text, Loader=loader)
    except yaml.YAMLError as exc:
        raise YamlError(str(exc)) from exc
