"""Hydra/OmegaConf ``_target_`` values in YAML and JSON configs (formats ``yaml``, ``json``).

``hydra.utils.instantiate(cfg)`` imports the dotted path in every ``_target_`` and calls it
with the sibling keys as arguments; NeMo does this for the ``model_config.yaml`` inside every
``.nemo`` archive when ``restore_from`` rebuilds the model, and many training repositories ship
such configs beside their weights.  A target is code the loader runs, so each one is stated as a
``hydra.target`` fact and judged against the allowlists (rules/hydra).

The config is parsed with the safe YAML loader (or ``json``), never with OmegaConf, and nothing is
resolved or interpolated.  Files without the text ``_target_`` are not parsed at all, so large
tokenizer files and ordinary configs cost one bounded byte search.  A file that uses
``_target_`` as a key but cannot be read (too large, invalid) is a fact too: fail closed.

Facts: ``hydra.target`` (``target``, ``path``, ``partial``, ``arguments``), ``parse.error``,
``limit.hit``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.source import ByteSource
from ckptguard.yamlio import YamlError, load_yaml

# ``_target_`` used as a key (YAML ``_target_:`` or JSON ``"_target_":``): a file that only
# mentions the word (a shell variable ``$realpath_target_zip``) is not parsed.
MARKER = re.compile(rb"(?<![A-Za-z0-9_$])_target_[\"']?\s*:")
MARKER_SPAN = 64  # bytes a match may need across a chunk boundary
SEARCH_CHUNK = 1 << 20
MAX_NODES = 1_000_000
MAX_TARGETS = 1_000


def _contains_marker(source: ByteSource) -> bool:
    """Whether ``_target_`` occurs as a key anywhere in the source (read in bounded chunks)."""
    pos = 0
    while pos < source.size:
        chunk = source.read(max(0, pos - MARKER_SPAN), SEARCH_CHUNK + MARKER_SPAN)
        if MARKER.search(chunk):
            return True
        pos += SEARCH_CHUNK
    return False


def targets(data: Any) -> tuple[list[tuple[str, str, bool, tuple[str, ...]]], bool]:
    """``(path, target, partial, argument names)`` for every ``_target_`` string in the tree,
    and whether the walk stopped at a limit.  Shared subtrees (YAML anchors) are walked once."""
    found: list[tuple[str, str, bool, tuple[str, ...]]] = []
    seen: set[int] = set()
    stack: list[tuple[str, Any]] = [("", data)]
    nodes = 0
    while stack:
        path, node = stack.pop()
        if not isinstance(node, (dict, list)) or id(node) in seen:
            continue
        seen.add(id(node))
        nodes += 1
        if nodes > MAX_NODES or len(found) >= MAX_TARGETS:
            return found, True
        if isinstance(node, list):
            stack.extend((f"{path}[{i}]", item) for i, item in reversed(list(enumerate(node))))
            continue
        target = node.get("_target_")
        if isinstance(target, str):
            arguments = tuple(sorted(str(k) for k in node if not str(k).startswith("_")))[:20]
            found.append((path or "<root>", target.strip(), node.get("_partial_") is True,
                          arguments))
        elif target is not None:
            found.append((path or "<root>", repr(target)[:200], False, ()))
        stack.extend((f"{path}.{key}" if path else str(key), value)
                     for key, value in reversed(list(node.items())))
    return found, False


def _parse(artifact: Artifact, ctx: ParseContext, fmt: str) -> ParseOutput:
    output = ParseOutput(format=fmt)
    source, where = artifact.source, artifact.location
    if not _contains_marker(source):
        return output
    limit = ctx.limits.max_text_file_bytes
    if source.size > limit:
        output.add("limit.hit", where, limit="max_text_file_bytes", value=source.size,
                   detail=f"a {fmt} config of {source.size} bytes names a Hydra _target_ but "
                          "is too large to read; its targets were not judged")
        return output
    text = source.read(0, source.size).decode("utf-8", "replace")
    try:
        data = load_yaml(text) if fmt == "yaml" else json.loads(text)
    except (YamlError, ValueError, RecursionError) as exc:
        output.add("parse.error", where, format=fmt, offset=None, read=source.size,
                   error=f"a config naming a Hydra _target_ is not valid {fmt}: {exc}"[:300])
        return output
    found, limited = targets(data)
    for path, target, partial, arguments in found:
        output.add("hydra.target", where.within(key=path), target=target, path=path,
                   partial=partial, arguments=arguments, config=artifact.name)
    if limited:
        output.add("limit.hit", where, limit="hydra config nodes", value=len(found),
                   detail=f"only the first {len(found)} _target_ values were judged")
    return output


def parse_yaml(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "yaml")


def parse_json(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "json")
