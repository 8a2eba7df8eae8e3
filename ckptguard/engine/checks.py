"""The interface between the engine and Python checks (logic that YAML can't say)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ckptguard.engine.namelists import NameList
from ckptguard.facts import Artifact, Fact, TensorRef
from ckptguard.model import Confidence, Location, Severity


@dataclass(frozen=True)
class Hit:
    """What a check reports; the engine adds the rule's metadata to make a Finding."""

    message: str
    location: Location
    subject: str  # the stable identity of what was found (for fingerprints)
    evidence: Mapping[str, object] = field(default_factory=dict)
    severity: Severity | None = None  # override the rule's default (e.g. stronger evidence)
    confidence: Confidence | None = None


@dataclass(frozen=True)
class CheckContext:
    """Everything a check may read: never the file's live objects, only facts."""

    rule_id: str
    format: str
    artifact: Artifact
    facts: tuple[Fact, ...]
    tensors: tuple[TensorRef, ...]
    lists: Mapping[str, NameList]
    options: Mapping[str, Any]  # check options from configuration (e.g. license policy)
    # ``facts`` grouped by kind (built by the engine); empty means "not indexed".
    index: Mapping[str, tuple[Fact, ...]] = field(default_factory=dict)
    # One dict per evaluated artifact, shared by all its checks: work several rules need (the
    # weight statistics, the parsed base) is done once.  Checks key it by their own prefix.
    shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def of_kind(self, *kinds: str) -> Iterable[Fact]:
        """Facts of these kinds, in their original order."""
        if self.index and len(kinds) == 1:
            return iter(self.index.get(kinds[0], ()))
        return (f for f in self.facts if f.kind in kinds)


Check = Callable[[CheckContext], Iterable[Hit]]
