"""The vocabulary every stage shares: severities, locations, findings and scan results.

Everything here is a frozen dataclass, complete when created: no stage mutates a finding after
another stage produced it.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field


class Severity(enum.IntEnum):
    """How bad a finding is; ordered so that ``a >= b`` means "at least as bad"."""

    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(s.name.lower() for s in cls)
            raise ValueError(f"unknown severity {text!r} (expected one of: {names})") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Confidence(enum.IntEnum):
    LOW = 0
    MEDIUM = 1
    HIGH = 2

    @classmethod
    def parse(cls, text: str) -> Confidence:
        try:
            return cls[text.strip().upper()]
        except KeyError:
            raise ValueError(f"unknown confidence {text!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


class Category(str, enum.Enum):
    """What kind of risk a finding is about."""

    PAYLOAD = "payload"  # code would run on load
    INTEGRITY = "integrity"  # the file violates its format, or cannot be fully read
    FORMAT = "format"  # notes about how the model is stored
    LICENSE = "license"
    BACKDOOR = "backdoor"
    SCANNER = "scanner"  # limits hit, unsupported content: what ckptguard could not judge


@dataclass(frozen=True)
class Location:
    """Where in a (possibly nested) artifact a finding sits.

    ``chain`` is the path of the file followed by the names of archive members leading to the
    artifact, e.g. ``("bundle.zip", "model/pytorch_model.bin", "archive/data.pkl")``.
    """

    chain: tuple[str, ...]
    offset: int | None = None
    tensor: str | None = None
    key: str | None = None
    line: int | None = None

    @property
    def path(self) -> str:
        """The outermost file on disk."""
        return self.chain[0] if self.chain else ""

    @property
    def members(self) -> tuple[str, ...]:
        return self.chain[1:]

    @property
    def artifact(self) -> str:
        """The chain as one string: ``bundle.zip!model/pytorch_model.bin!archive/data.pkl``."""
        return "!".join(self.chain)

    def within(self, *, offset: int | None = None, tensor: str | None = None,
               key: str | None = None, line: int | None = None) -> Location:
        """The same artifact, at a more precise place."""
        return Location(self.chain, offset=offset, tensor=tensor, key=key, line=line)

    def child(self, member: str) -> Location:
        return Location((*self.chain, member))

    def details(self) -> list[str]:
        """The place inside the artifact: tensor, key, line and byte offset, as phrases."""
        parts = []
        if self.tensor is not None:
            parts.append(f"tensor {self.tensor!r}")
        if self.key is not None:
            parts.append(f"key {self.key!r}")
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.offset is not None:
            parts.append(f"byte {self.offset}")
        return parts

    def describe(self) -> str:
        return ", ".join([self.artifact, *self.details()])


Evidence = tuple[tuple[str, str], ...]


def make_evidence(items: Mapping[str, object] | Iterable[tuple[str, object]]) -> Evidence:
    pairs = items.items() if isinstance(items, Mapping) else items
    return tuple((str(k), str(v)) for k, v in pairs)


@dataclass(frozen=True)
class Finding:
    """One thing ckptguard found, with everything a reader or a baseline needs."""

    rule_id: str
    severity: Severity
    confidence: Confidence
    category: Category
    message: str
    location: Location
    evidence: Evidence = ()
    # Identity of the finding that survives re-saves and renames: rule id plus what was found
    # (never byte offsets).  Computed by ``finding()`` below.
    fingerprint: str = ""
    # Content hash of the outermost artifact, used to follow renamed files in baselines.
    identity: str = ""

    def evidence_dict(self) -> dict[str, str]:
        return dict(self.evidence)


def fingerprint_of(rule_id: str, subject: str, member_path: tuple[str, ...]) -> str:
    """A stable identity: the rule, what it is about, and where inside the artifact."""
    digest = hashlib.sha256()
    for part in (rule_id, subject, *member_path):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def finding(
    *,
    rule_id: str,
    severity: Severity,
    confidence: Confidence,
    category: Category,
    message: str,
    location: Location,
    evidence: Mapping[str, object] | Iterable[tuple[str, object]] = (),
    subject: str | None = None,
) -> Finding:
    """Create a complete finding; ``subject`` is what the fingerprint identifies (defaults to the
    message), so give the stable part (e.g. ``os.system``) when the message holds volatile text."""
    return Finding(
        rule_id=rule_id,
        severity=severity,
        confidence=confidence,
        category=category,
        message=message,
        location=location,
        evidence=make_evidence(evidence),
        fingerprint=fingerprint_of(rule_id, subject if subject is not None else message,
                                   location.members),
    )


@dataclass(frozen=True)
class ArtifactSummary:
    """One scanned artifact (file, archive member or repo folder)."""

    chain: tuple[str, ...]
    format: str
    size: int
    sha256: str | None = None

    @property
    def name(self) -> str:
        return "!".join(self.chain)


@dataclass(frozen=True)
class ScanResult:
    """What a scan produced; every renderer is a pure function of this."""

    findings: tuple[Finding, ...]
    artifacts: tuple[ArtifactSummary, ...]
    fail_on: Severity = Severity.HIGH
    suppressed: tuple[Finding, ...] = ()  # dropped by baseline or ignores, kept for reporting
    tool_version: str = ""
    rules_used: tuple[str, ...] = field(default=())
    skipped_folders: tuple[str, ...] = ()  # not scanned because of their name (.git, venv …)
    # Nothing judged, nothing reported, no file named: every folder given was empty, excluded,
    # skipped or held no model.  A gate that passes on this was pointed at the wrong place.
    judged_nothing: bool = False

    @property
    def max_severity(self) -> Severity | None:
        return max((f.severity for f in self.findings), default=None)

    @property
    def failed(self) -> bool:
        return any(f.severity >= self.fail_on for f in self.findings)

    def at_or_above(self, level: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= level)
