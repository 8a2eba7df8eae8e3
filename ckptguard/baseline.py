"""Baselines: the findings a project has already reviewed, so that a gate fails only on new ones.

Binary files hold no inline suppressions, so known findings live in a versioned JSON file.  An
entry matches a finding when the fingerprint (rule, subject, member path inside the artifact: never
byte offsets, never the outer file name) is the same and either the artifact path is the same (the
file was re-saved) or the outer file's content is the same (the file was renamed or copied).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ckptguard import __version__
from ckptguard.model import Finding

BASELINE_VERSION = 1
DEFAULT_BASELINE = ".ckptguard-baseline.json"
HASH_CHUNK = 1 << 20

ContentHash = Callable[[str], "str | None"]  # artifact path -> sha256 of its outer file


class BaselineError(ValueError):
    """A baseline file that cannot be used: the CLI reports it and exits with code 2."""


@dataclass(frozen=True)
class BaselineEntry:
    fingerprint: str
    rule_id: str
    artifact: str  # the outermost path, as reported
    message: str
    sha256: str = ""  # content of the outermost file, to follow renames

    def as_json(self) -> dict[str, str]:
        return {"fingerprint": self.fingerprint, "rule_id": self.rule_id,
                "artifact": self.artifact, "message": self.message, "sha256": self.sha256}


@dataclass(frozen=True)
class Baseline:
    entries: tuple[BaselineEntry, ...]
    tool_version: str = __version__
    created: str = ""
    version: int = BASELINE_VERSION

    @property
    def fingerprints(self) -> frozenset[str]:
        return frozenset(e.fingerprint for e in self.entries)

    def matches(self, item: Finding, content_hash: ContentHash) -> bool:
        candidates = [e for e in self.entries if e.fingerprint == item.fingerprint]
        if not candidates:
            return False
        path = item.location.path
        if any(e.artifact == path for e in candidates):
            return True
        digest = item.identity or content_hash(path)
        return digest is not None and any(e.sha256 == digest for e in candidates if e.sha256)

    def to_json(self) -> str:
        document = {"version": self.version, "tool": "ckptguard",
                    "tool_version": self.tool_version, "created": self.created,
                    "entries": [e.as_json() for e in self.entries]}
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def create_baseline(findings: Iterable[Finding], content_hash: ContentHash,
                    *, now: datetime | None = None) -> Baseline:
    """A baseline holding every finding given, sorted so that the file diffs well."""
    entries = {(f.location.path, f.fingerprint, f.rule_id): f for f in findings}
    made = sorted(
        (BaselineEntry(f.fingerprint, f.rule_id, f.location.path, f.message,
                       f.identity or content_hash(f.location.path) or "")
         for f in entries.values()),
        key=lambda e: (e.artifact, e.rule_id, e.fingerprint))
    stamp = (now or datetime.now(timezone.utc)).replace(microsecond=0).isoformat()
    return Baseline(tuple(made), __version__, stamp)


def _entry(raw: Any, where: str, index: int) -> BaselineEntry:
    if not isinstance(raw, dict):
        raise BaselineError(f"{where}: entry {index} is not an object")
    values: dict[str, str] = {}
    for key in ("fingerprint", "rule_id", "artifact", "message"):
        value = raw.get(key)
        if not isinstance(value, str) or (key != "message" and not value):
            raise BaselineError(f"{where}: entry {index} has no valid '{key}'")
        values[key] = value
    sha = raw.get("sha256", "")
    if not isinstance(sha, str):
        raise BaselineError(f"{where}: entry {index} has an invalid 'sha256'")
    return BaselineEntry(**values, sha256=sha)


def parse_baseline(text: str, where: str) -> Baseline:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise BaselineError(f"{where}: not a valid baseline file (JSON error: {exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("entries"), list):
        raise BaselineError(f"{where}: not a ckptguard baseline (no 'entries' list)")
    version = document.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise BaselineError(f"{where}: baseline has no integer 'version'")
    if version > BASELINE_VERSION:
        raise BaselineError(f"{where}: baseline version {version} was written by a newer "
                            f"ckptguard (this one reads up to version {BASELINE_VERSION}); "
                            "upgrade ckptguard or recreate the baseline")
    if version < 1:
        raise BaselineError(f"{where}: unsupported baseline version {version}")
    entries = tuple(_entry(raw, where, i) for i, raw in enumerate(document["entries"]))
    return Baseline(entries, str(document.get("tool_version", "")),
                    str(document.get("created", "")), version)


def load_baseline(path: str | Path) -> Baseline:
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BaselineError(f"{target}: baseline file not found (create one with "
                            "'ckptguard baseline create PATH...')") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BaselineError(f"{target}: cannot read baseline ({exc})") from None
    return parse_baseline(text, str(target))


def sha256_file(path: str | Path) -> str | None:
    """The content hash of a file on disk, read in chunks (None when it cannot be read)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()
