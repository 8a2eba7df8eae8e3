"""Identify a license from the text of a LICENSE / NOTICE / COPYING file by phrases."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ckptguard.license.catalog import Catalog


@dataclass(frozen=True)
class TextMatch:
    hf_id: str
    confidence: float  # 0..1: share of the license's phrases found, discounted for short texts


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.lower().replace("“", '"').replace("”", '"'))


def identify(text: str, catalog: Catalog) -> TextMatch | None:
    """The best-matching license, or None when no license's required phrases all occur."""
    body = _normalise(text[:400_000])
    best: tuple[int, str] | None = None
    for hf_id, phrases in catalog.texts.items():
        required = phrases["all"]
        if not required or not all(p in body for p in required):
            continue
        if any(p in body for p in phrases["not"]):
            continue
        score = len(required) + sum(1 for p in phrases["any"] if p in body)
        if best is None or score > best[0]:
            best = (score, hf_id)
    if best is None:
        return None
    # Long license texts identified by one phrase are less certain than several phrases.
    confidence = min(1.0, 0.6 + 0.15 * best[0])
    return TextMatch(best[1], round(confidence, 2))
