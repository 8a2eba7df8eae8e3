"""Lineage keys in a weight file's own metadata (safetensors ``__metadata__``, ONNX
``metadata_props``): the base model(s) it derives from and the name its publisher gave it.

Header parsers call ``lineage_facts`` for each string key/value they read, so that a file
scanned on its own carries the same lineage a repository's card would: ``metadata.base_model``
(``index``, ``field``, ``value``) and ``metadata.name`` (``value``) facts.  GGUF's parser emits
the same facts from ``general.base_model.N.*`` and ``general.name``.  Nothing here parses the
file; it only recognises keys."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

from ckptguard.facts import Fact
from ckptguard.model import Location

BASE_MODEL_KEYS = frozenset({"base_model", "base_models", "base_model_name_or_path",
                             "modelspec.base_model", "general.base_model"})
NAME_KEYS = frozenset({"general.name", "model_name", "name", "modelspec.title", "title"})
MAX_BASES = 16
MAX_VALUE = 500


def _references(value: str) -> list[str]:
    """One or more base-model references: a JSON list, a comma-separated list, or one id."""
    text = value.strip()
    if text.startswith("["):
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, list):
            return [str(v).strip() for v in parsed if isinstance(v, str) and v.strip()]
    return [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]


def lineage_facts(where: Location, key: str, value: object, source: str) -> Iterator[Fact]:
    """``metadata.base_model`` / ``metadata.name`` facts for one metadata entry (none for keys
    that say nothing about lineage)."""
    if not isinstance(value, str) or not value.strip():
        return
    folded = key.strip().lower()
    if folded in BASE_MODEL_KEYS:
        for index, ref in enumerate(_references(value)[:MAX_BASES]):
            yield Fact.of("metadata.base_model", where, index=index, field="name",
                          value=ref[:MAX_VALUE], source=source, key=key)
    elif folded in NAME_KEYS:
        yield Fact.of("metadata.name", where, value=value.strip()[:MAX_VALUE], source=source,
                      key=key)
