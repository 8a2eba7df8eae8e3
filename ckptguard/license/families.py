"""Base-model families: which license a base model is published under, found from however the
derivative names it — a Hub repository id (card `base_model`), a repository URL, or an
organisation and display name as GGUF writes them (``general.base_model.N.organization`` =
"Meta Llama", ``.name`` = "Meta Llama 3 8B").  The table is data:
``rules/data/licenses/base_models.yaml``, one entry per family with the source of its license."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

HUB_URL = re.compile(r"^(?:https?://)?(?:www\.)?(?:huggingface\.co|hf\.co)/(?!datasets/|spaces/)"
                     r"([A-Za-z0-9][\w.-]*)/([\w.-]+)", re.IGNORECASE)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class Family:
    family: str  # a display name for the family ("Meta Llama 3")
    license: str  # the Hub license id its weights are published under
    source: str  # where that license is stated (the publisher's card or license page)
    repos: tuple[str, ...]  # Hub repository id patterns (fnmatch, case-insensitive)
    names: tuple[str, ...]  # display-name patterns, matched on folded names (see ``fold_name``)


@dataclass(frozen=True)
class BaseRef:
    """A base model as a derivative names it; any field may be empty."""

    name: str = ""
    organization: str = ""
    repo_url: str = ""


@dataclass(frozen=True)
class FamilyMatch:
    family: Family
    how: str  # "repository id", "repository URL", "organisation and name", "display name"
    matched: str  # the string that matched


def fold_name(text: str) -> str:
    """Display names compare case-insensitively with runs of space, '-' and '_' as one space:
    "Meta-Llama-3-8B", "meta llama 3 8b" and "Meta_Llama 3 8B" are the same name."""
    return re.sub(r"[\s_-]+", " ", text.strip().lower())


def parse_families(document: Mapping[str, Any]) -> tuple[Family, ...]:
    """The family table from its YAML document; every entry must name its license's source."""
    families = []
    for index, entry in enumerate(document.get("families") or ()):
        if not isinstance(entry, Mapping) or not entry.get("license") or not entry.get("source"):
            raise ValueError(f"base_models.yaml entry {index} needs 'license' and 'source'")
        repos = tuple(str(p).lower() for p in entry.get("repos") or ())
        names = tuple(fold_name(str(p)) for p in entry.get("names") or ())
        if not repos and not names:
            raise ValueError(f"base_models.yaml entry {index} has neither 'repos' nor 'names'")
        families.append(Family(str(entry.get("family") or (repos or names)[0]),
                               str(entry["license"]), str(entry["source"]), repos, names))
    return tuple(families)


def _by_repo(families: Sequence[Family], repo_id: str) -> Family | None:
    folded = repo_id.strip().lower()
    return next((f for f in families if any(fnmatchcase(folded, p) for p in f.repos)), None)


def _by_name(families: Sequence[Family], name: str) -> Family | None:
    folded = fold_name(name)
    return next((f for f in families if any(fnmatchcase(folded, p) for p in f.names)), None)


def _candidates(ref: BaseRef) -> Iterable[tuple[str, str, str]]:
    """(how, kind, string) lookups for one reference, most specific first."""
    url = HUB_URL.match(ref.repo_url.strip())
    if url:
        yield "repository URL", "repo", f"{url.group(1)}/{url.group(2)}"
    name, org = ref.name.strip(), ref.organization.strip()
    url = HUB_URL.match(name)
    if url:
        yield "repository URL", "repo", f"{url.group(1)}/{url.group(2)}"
    elif REPO_ID.match(name):
        yield "repository id", "repo", name
    if name and org:
        # GGUF converters turn "meta-llama/Meta-Llama-3-8B" into organisation "Meta Llama" and
        # name "Meta Llama 3 8B": undo that to get the repository id back.
        yield "organisation and name", "repo", \
            f"{fold_name(org).replace(' ', '-')}/{fold_name(name).replace(' ', '-')}"
    if name:
        yield "display name", "name", name
        if org:
            yield "organisation and name", "name", f"{org} {name}"


def match_family(families: Sequence[Family], ref: BaseRef) -> FamilyMatch | None:
    """The family of a base model reference, or None when the table does not know it."""
    for how, kind, text in _candidates(ref):
        family = _by_repo(families, text) if kind == "repo" else _by_name(families, text)
        if family is not None:
            return FamilyMatch(family, how, text)
    return None
