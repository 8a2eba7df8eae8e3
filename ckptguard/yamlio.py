"""YAML reading: always the safe loader, in C (libyaml) when available — rule loading is on the
path of every pre-commit run, and the pure-Python loader is several times slower."""

from __future__ import annotations

from typing import Any

import yaml

SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """Parse YAML with the safe loader (no object construction, ever)."""
    return yaml.load(text, Loader=SafeLoader)
