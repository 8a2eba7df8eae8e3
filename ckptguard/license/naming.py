"""The name a model goes by, taken from what its publisher wrote: the card's title (its first
``# `` heading), the card's ``model_name``, its ``model-index[].name``, then the name a weight
file gives itself (GGUF ``general.name``, …) — in that order.  The folder the repository was
cloned into is only a last resort, and is said to be one."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ckptguard.license.lineage import ModelName
from ckptguard.model import Location

HEADING = re.compile(r"^#[ \t]+(.+?)[ \t#]*$")
FENCE = re.compile(r"^\s*(```|~~~)")
TEMPLATE_TITLE = re.compile(r"^model\s+card\s+(?:for|of)\s*:?\s+", re.IGNORECASE)
LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
MAX_NAME = 200


def _clean(title: str) -> str:
    title = LINK.sub(r"\1", title)
    title = re.sub(r"<[^>]{0,200}>", "", title)  # inline HTML (badges, anchors)
    title = title.replace("**", "").replace("__", "").replace("`", "").strip()
    return TEMPLATE_TITLE.sub("", title).strip()[:MAX_NAME]


def card_title(text: str) -> tuple[str, int] | None:
    """The card body's first level-1 ``# `` heading (cleaned of markup and the Hub template's
    "Model Card for"), with its line number; headings inside code fences do not count."""
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match:
            title = _clean(match.group(1))
            if title and "{{" not in title:
                return title, number
    return None


def _body(text: str) -> tuple[str, int]:
    """The card without its front matter, and how many lines the front matter took."""
    if not text.startswith("---"):
        return text, 0
    end = re.search(r"^---\s*$", text[3:], re.MULTILINE)
    if end is None:
        return text, 0
    head = text[: 3 + end.end()]
    return text[len(head):], head.count("\n")


def card_names(card: Mapping[str, Any], text: str, where: Location) -> list[ModelName]:
    """Every name the card gives the model, in the order they are trusted."""
    names = []
    body, skipped = _body(text)
    title = card_title(body)
    if title is not None:
        names.append(ModelName(title[0], "card:title", where.within(line=title[1] + skipped)))
    model_name = card.get("model_name")
    if isinstance(model_name, str) and model_name.strip():
        names.append(ModelName(model_name.strip()[:MAX_NAME], "card:model_name",
                               where.within(key="model_name")))
    index = card.get("model-index")
    if isinstance(index, list):
        for entry in index:
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and name.strip():
                names.append(ModelName(name.strip()[:MAX_NAME], "card:model-index",
                                       where.within(key="model-index")))
                break
    return names


def model_name(card_given: list[ModelName], embedded: ModelName | None, folder: str,
               folder_where: Location) -> ModelName:
    """The name judged: the card's first, then the weight files', then the folder's."""
    if card_given:
        return card_given[0]
    if embedded is not None:
        return embedded
    return ModelName(folder, "folder name", folder_where)
