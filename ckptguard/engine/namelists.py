"""Named lists of dotted names (allowlists, denylists) loaded from ``rules/lists/*.yaml``.

A list file looks like::

    description: Globals whose construction has no side effects.
    categories:              # optional grouping; a flat ``entries`` list is also accepted
      torch-tensors:
        why: rebuild tensors and storages from bytes; no I/O, no code
        entries:
          - torch._utils._rebuild_tensor_v2
          - name: torch.nn.modules.*.*      # one "*" matches one dotted segment
            why: standard layer classes; constructing them runs no user code

Patterns: ``*`` matches exactly one dotted segment (or, inside a segment, any run of characters
that holds no dot), ``**`` as a whole segment matches any number of segments (at least one).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptguard.yamlio import load_yaml


@dataclass(frozen=True)
class ListEntry:
    pattern: str
    category: str
    why: str


def _segment_regex(segment: str) -> str:
    if segment == "**":
        return r"[^.]+(?:\.[^.]+)*"
    if segment == "*":
        return r"[^.]+"
    return "".join("[^.]*" if ch == "*" else "[^.]" if ch == "?" else re.escape(ch)
                   for ch in segment)


@dataclass(frozen=True)
class NameList:
    name: str
    description: str
    exact: Mapping[str, ListEntry]
    wildcard: tuple[ListEntry, ...]  # entries whose pattern holds "*" or "?"
    # Compiled on the first lookup that needs it, and pattern verdicts already computed (a
    # pickle names the same globals thousands of times): caches of pure results, private to
    # this immutable list.
    _compiled: list[re.Pattern[str]] = field(default_factory=list, compare=False, repr=False)
    _seen: dict[str, ListEntry | None] = field(default_factory=dict, compare=False, repr=False)

    def _matcher(self) -> re.Pattern[str]:
        if not self._compiled:
            alternatives = "|".join(
                f"(?P<p{i}>" + r"\.".join(_segment_regex(s) for s in entry.pattern.split("."))
                + ")" for i, entry in enumerate(self.wildcard))
            self._compiled.append(re.compile(f"(?:{alternatives})\\Z" if alternatives
                                             else r"(?!)"))
        return self._compiled[0]

    def lookup(self, name: str) -> ListEntry | None:
        hit = self.exact.get(name)
        if hit is not None or not self.wildcard:
            return hit
        if name in self._seen:
            return self._seen[name]
        match = self._matcher().match(name)
        found = self.wildcard[int(match.lastgroup[1:])] if match and match.lastgroup else None
        if len(self._seen) < 65_536:
            self._seen[name] = found
        return found

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.lookup(name) is not None

    def entries(self) -> Iterable[ListEntry]:
        yield from self.exact.values()
        yield from self.wildcard

    @staticmethod
    def build(name: str, description: str, entries: Iterable[ListEntry]) -> NameList:
        exact: dict[str, ListEntry] = {}
        wildcard: list[ListEntry] = []
        for entry in entries:
            if "*" in entry.pattern or "?" in entry.pattern:
                wildcard.append(entry)
            else:
                exact.setdefault(entry.pattern, entry)
        return NameList(name, description, exact, tuple(wildcard))

    def extended(self, extra: Iterable[ListEntry]) -> NameList:
        return NameList.build(self.name, self.description, [*self.entries(), *extra])


class ListFileError(ValueError):
    pass


# Allowlist categories that hold enum classes: "enum" (the generated lists), "enums", "*-enums".
ENUM_CATEGORY = re.compile(r"(?:.+-)?enums?\Z")
ENUM_CLASSES = "enum_classes"  # the list derived from them (see ``enum_classes``)


def enum_classes(safe: NameList) -> NameList:
    """The allowlisted classes in an enum category, as a list of their own.  A pickle reaches
    an enum member by value (``HTTPStatus(200)``) or, as CPython 3.11.0 to 3.11.4 write them,
    by name (``getattr(HTTPStatus, 'OK')``); the by-name form names ``http.HTTPStatus.OK``, which
    no allowlist lists, and is judged against this list instead (``member_of``)."""
    return NameList.build(ENUM_CLASSES, "enum classes of safe_globals (derived)",
                          [entry for entry in safe.entries()
                           if ENUM_CATEGORY.match(entry.category)])


def _entries_from(raw: Any, category: str, default_why: str, where: str) -> list[ListEntry]:
    if not isinstance(raw, list):
        raise ListFileError(f"{where}: 'entries' must be a list")
    out = []
    for item in raw:
        if isinstance(item, str):
            if not default_why:
                raise ListFileError(f"{where}: entry {item!r} has no justification ('why')")
            out.append(ListEntry(item, category, default_why))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            why = str(item.get("why") or default_why)
            if not why:
                raise ListFileError(f"{where}: entry {item['name']!r} has no justification")
            out.append(ListEntry(item["name"], category, why))
        else:
            raise ListFileError(f"{where}: malformed entry {item!r}")
    return out


def load_list_file(path: Path, data: Any = None) -> NameList:
    """A list from its file (or from ``data``, the file's already parsed content)."""
    if data is None:
        data = load_yaml(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        raise ListFileError(f"{path}: expected a mapping")
    description = str(data.get("description", ""))
    entries: list[ListEntry] = []
    if "entries" in data:
        entries += _entries_from(data["entries"], "", str(data.get("why", "")), str(path))
    categories = data.get("categories") or {}
    if not isinstance(categories, Mapping):
        raise ListFileError(f"{path}: 'categories' must be a mapping")
    for category, body in categories.items():
        if not isinstance(body, Mapping):
            raise ListFileError(f"{path}: category {category!r} must be a mapping")
        entries += _entries_from(body.get("entries", []), str(category), str(body.get("why", "")),
                                 f"{path}:{category}")
    return NameList.build(path.stem, description, entries)


def load_lists(directory: Path, documents: Mapping[str, Any] | None = None
               ) -> dict[str, NameList]:
    """The name lists under ``directory``: each ``<name>.yaml`` is a list, and every file in a
    folder ``<name>/`` is merged into one list ``<name>`` (so that a list can be curated as one
    file per library).  ``documents`` maps paths relative to ``directory``'s parent to parsed
    content (see ``engine.documents``); files not in it are read."""

    def read(path: Path) -> NameList:
        key = path.relative_to(directory.parent).as_posix()
        return load_list_file(path, (documents or {}).get(key))

    lists: dict[str, NameList] = {}
    for path in sorted(directory.glob("*.yaml")):
        lists[path.stem] = read(path)
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        if folder.name in lists:
            raise ListFileError(f"list {folder.name!r} is both a file and a folder")
        # Sub-folders too: safe_globals/generated/ holds the lists derived from library source.
        parts = [read(path) for path in sorted(folder.rglob("*.yaml"))]
        description = " ".join(part.description for part in parts if part.description)
        lists[folder.name] = NameList.build(
            folder.name, description, [e for part in parts for e in part.entries()])
    if "safe_globals" in lists and ENUM_CLASSES not in lists:
        lists[ENUM_CLASSES] = enum_classes(lists["safe_globals"])
    return lists
