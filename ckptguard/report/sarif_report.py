"""SARIF 2.1.0 for GitHub code scanning and other SARIF consumers.

One run per scan.  Locations point at the outermost file (relative to ``%SRCROOT%``, the directory
the scan ran from) with ``startLine`` 1, since checkpoints are binary and GitHub requires a region;
the precise place (archive members, byte offset, tensor, key) is kept in the result's
``properties`` and, for archive members, in ``logicalLocations`` named by the ``!`` chain.
A finding about a repository folder lands on the file inside it that it is about (the card,
``config.json``); one about the folder as a whole names the folder and carries no region.  Files
from the Hugging Face cache (``org/name@<commit>/file``) get their ``https://huggingface.co``
URI, not one under ``%SRCROOT%``.  Suppressed findings (baseline, ignores) are results with an
external suppression.

Text from scanned files is hostile: ``message.text`` (which GitHub renders as Markdown) has
Markdown and HTML escaped, every string has control and bidi characters escaped, and a file name
that is not valid UTF-8 is percent-encoded from its real bytes.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from importlib import metadata
from pathlib import PurePosixPath
from typing import Any

from ckptguard import __version__
from ckptguard.engine.rules import Rule
from ckptguard.model import Confidence, Finding, Location, ScanResult, Severity
from ckptguard.report.rule_table import RuleTable, rules_for, shipped_rules
from ckptguard.report.safe_text import markdown_escaped, neutral, scrub, uri_path
from ckptguard.rule_docs import help_markdown, help_text

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
SRCROOT = "%SRCROOT%"
FINGERPRINT_KEY = "ckptguardFingerprint/v1"
FALLBACK_URI = "https://example.invalid/ckptguard"

LEVELS = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning",
          Severity.LOW: "note", Severity.INFO: "note"}
_WINDOWS_ABSOLUTE = re.compile(r"^[A-Za-z]:[\\/]")
# How the hub cache names a file: [datasets/|spaces/]org/name@<40-hex commit>/path
_HF_CACHE_NAME = re.compile(
    r"^(?P<kind>(?:datasets|spaces)/)?(?P<repo>[^/@]+/[^/@]+)@(?P<rev>[0-9a-f]{40})(?:/(?P<file>.*))?$")
HF_HUB = "https://huggingface.co/"
PRECISION = {Confidence.HIGH: "high", Confidence.MEDIUM: "medium", Confidence.LOW: "low"}


def information_uri() -> str:
    """The project's home page, from the installed package's metadata."""
    try:
        urls = metadata.metadata("ckptguard").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return FALLBACK_URI
    for entry in urls:
        label, _, url = str(entry).partition(",")
        if label.strip().lower() == "homepage" and url.strip():
            return url.strip()
    return FALLBACK_URI


def render(result: ScanResult, *, rules: RuleTable | None = None, category: str | None = None,
           root: str | None = None) -> str:
    """The SARIF log as JSON text.

    ``rules`` is the rule table to describe findings with (the shipped rules when omitted);
    ``category`` becomes ``automationDetails.id`` (GitHub keeps one analysis per category);
    ``root`` is the absolute directory the scan ran from, recorded as ``%SRCROOT%``.
    """
    table = shipped_rules() if rules is None else rules
    used = rules_for((*result.findings, *result.suppressed), table)
    index = {rule_id: position for position, rule_id in enumerate(used)}
    results = [_result(item, index, suppressed=False, root=root) for item in result.findings]
    results += [_result(item, index, suppressed=True, root=root) for item in result.suppressed]
    run: dict[str, Any] = {
        "tool": {"driver": _driver(result, _as_reported(used.values(), result))},
        "invocations": [_invocation(result)],
        "originalUriBaseIds": {SRCROOT: _srcroot(root)},
        "results": results,
        "properties": {
            "verdict": "fail" if result.failed else "pass",
            "failOn": result.fail_on.label,
            "artifactsScanned": len(result.artifacts),
            # What the scan did not look at, as the text and JSON reports say it.
            "skippedFolders": [_posix(path) for path in result.skipped_folders],
            "judgedNothing": result.judged_nothing,
        },
    }
    if category:
        run["automationDetails"] = {"id": category if category.endswith("/") else f"{category}/"}
    log = {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}
    # Compact: SARIF is read by machines, and GitHub limits the upload size.
    return json.dumps(scrub(log), separators=(",", ":")) + "\n"


def _invocation(result: ScanResult) -> dict[str, Any]:
    """The run's invocation, with a tool notification for each thing the scan did not judge (a
    folder skipped by name: a note; nothing judged at all: a warning, as the gate then did not
    look at a model)."""
    invocation: dict[str, Any] = {"executionSuccessful": True}
    notes = []
    if result.skipped_folders:
        shown = ", ".join(_posix(path) for path in result.skipped_folders[:20])
        more = f" and {len(result.skipped_folders) - 20} more" \
            if len(result.skipped_folders) > 20 else ""
        notes.append({"level": "note", "descriptor": {"id": "skipped-folders"},
                      "message": {"text": f"Folders skipped by name, not scanned "
                                          f"(--include-skipped scans them): {shown}{more}."}})
    if result.judged_nothing:
        notes.append({"level": "warning", "descriptor": {"id": "nothing-judged"},
                      "message": {"text": "Nothing judged: no model, archive or repo folder "
                                          "was found in the paths given."}})
    if notes:
        invocation["toolExecutionNotifications"] = notes
    return invocation


def _as_reported(rules: Iterable[Rule], result: ScanResult) -> list[Rule]:
    """Each rule at the worst severity its findings were reported with: a project's severity
    override (or a check's stronger evidence) then shows in GitHub's alert severity too."""
    worst: dict[str, Severity] = {}
    for item in result.findings:
        worst[item.rule_id] = max(worst.get(item.rule_id, item.severity), item.severity)
    return [replace(rule, severity=worst[rule.id])
            if worst.get(rule.id, rule.severity) != rule.severity else rule for rule in rules]


def _driver(result: ScanResult, rules: list[Rule]) -> dict[str, Any]:
    version = result.tool_version or __version__
    return {
        "name": "ckptguard",
        "semanticVersion": version,
        "version": version,
        "informationUri": information_uri(),
        "rules": [rule_descriptor(rule) for rule in rules],
    }


def rule_descriptor(rule: Rule) -> dict[str, Any]:
    """One entry of ``tool.driver.rules``, in the shape GitHub code scanning reads."""
    tags = ["security", rule.category.value, *(f"external/cwe/{c.lower()}" for c in rule.cwe)]
    return {
        "id": rule.id,
        "name": _pascal(rule.name),
        "shortDescription": {"text": _sentence(rule.summary)},
        "fullDescription": {"text": _sentence(" ".join(rule.description.split()))},
        "help": {"text": help_text(rule), "markdown": help_markdown(rule)},
        "defaultConfiguration": {"level": LEVELS[rule.severity]},
        "properties": {
            "security-severity": rule.security_severity,
            "precision": PRECISION[rule.confidence],
            "problem.severity": _problem_severity(rule.severity),
            "tags": list(dict.fromkeys(tags)),
        },
    }


def _problem_severity(level: Severity) -> str:
    return "error" if level >= Severity.HIGH else "warning" if level is Severity.MEDIUM \
        else "recommendation"


def _result(item: Finding, index: Mapping[str, int], *, suppressed: bool,
            root: str | None) -> dict[str, Any]:
    loc = item.location
    path, nested = on_disk(loc)
    physical: dict[str, Any] = {"artifactLocation": artifact_location(path, root)}
    if not _is_folder(path):
        physical["region"] = {"startLine": loc.line if loc.line and not nested else 1}
    location: dict[str, Any] = {"physicalLocation": physical}
    if nested:
        location["logicalLocations"] = [{
            "name": loc.members[-1],
            "fullyQualifiedName": loc.artifact,
            "kind": "member",
        }]
    out: dict[str, Any] = {
        "ruleId": item.rule_id,
        "ruleIndex": index[item.rule_id],
        "level": LEVELS[item.severity],
        "message": {"text": _message(item)},
        "locations": [location],
        "partialFingerprints": {FINGERPRINT_KEY: item.fingerprint},
        "properties": _properties(item),
    }
    if suppressed:
        out["suppressions"] = [{"kind": "external", "status": "accepted",
                                "justification": "Suppressed by the project's ckptguard "
                                                 "baseline or ignore configuration."}]
    return out


def on_disk(loc: Location) -> tuple[str, tuple[str, ...]]:
    """The file on disk a location is in, and the archive members inside it.  A repo folder
    (a path ending in '/') is not a file: its first member is, so the alert lands on it."""
    if loc.path.endswith("/") and loc.members:
        return loc.path + loc.members[0], loc.members[1:]
    return loc.path, loc.members


def _properties(item: Finding) -> dict[str, Any]:
    loc = item.location
    props: dict[str, Any] = {
        "severity": item.severity.label,
        "confidence": item.confidence.label,
        "category": item.category.value,
        "artifact": loc.artifact,
    }
    if loc.members:
        props["members"] = list(loc.members)
    for name, value in (("offset", loc.offset), ("tensor", loc.tensor), ("key", loc.key),
                        ("line", loc.line)):
        if value is not None:
            props[name] = value
    if item.evidence:
        props["evidence"] = dict(item.evidence)
    return props


def _message(item: Finding) -> str:
    """The finding's message as one sentence, followed by where inside the file it sits."""
    loc = item.location
    where = []
    if loc.members:
        where.append(f"in member {loc.artifact}")
    if loc.tensor is not None:
        where.append(f"tensor '{loc.tensor}'")
    if loc.key is not None:
        where.append(f"key '{loc.key}'")
    if loc.offset is not None:
        where.append(f"at byte {loc.offset}")
    text = " ".join(item.message.split()).rstrip(".")
    plain = f"{text} ({', '.join(where)})." if where else f"{text}."
    return markdown_escaped(neutral(plain))


def artifact_location(path: str, root: str | None) -> dict[str, Any]:
    """A URI relative to ``%SRCROOT%`` with forward slashes; absolute paths are made relative to
    ``root`` when they lie below it, and otherwise kept as ``file://`` URIs (no base)."""
    hub = _HF_CACHE_NAME.match(path)
    if hub is not None:
        return {"uri": hub_uri(hub)}
    candidate = PurePosixPath(_posix(path))
    if candidate.is_absolute() and root:
        base = PurePosixPath(_posix(root))
        if candidate.is_relative_to(base):
            candidate = candidate.relative_to(base)
    if candidate.is_absolute():
        return {"uri": "file://" + uri_path(candidate.as_posix(), safe="/:")}
    relative = posixpath.normpath(candidate.as_posix())
    if _is_folder(path) and relative != ".":
        relative += "/"  # a folder (a repo judged as a whole) keeps its trailing slash
    return {"uri": uri_path(relative), "uriBaseId": SRCROOT}


def hub_uri(match: re.Match[str]) -> str:
    """The Hub page of a cached file (``blob``) or snapshot folder (``tree``) at its commit."""
    kind, repo, rev, file = match.group("kind", "repo", "rev", "file")
    base = f"{HF_HUB}{uri_path(kind or '')}{uri_path(repo)}"
    if not file or file.endswith("/"):
        return f"{base}/tree/{rev}/{uri_path(file or '')}"
    return f"{base}/blob/{rev}/{uri_path(file)}"


def _is_folder(path: str) -> bool:
    return path.endswith(("/", "\\"))


def _posix(path: str) -> str:
    """Forward slashes; a Windows drive path ``C:\\x`` becomes the absolute ``/C:/x``."""
    if _WINDOWS_ABSOLUTE.match(path):
        return "/" + path.replace("\\", "/")
    return path


def _srcroot(root: str | None) -> dict[str, Any]:
    if root:
        return {"uri": "file://" + uri_path(_posix(root).rstrip("/") + "/", safe="/:")}
    return {"description": {"text": "The directory ckptguard was run from."}}


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _pascal(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.replace("_", "-").split("-"))
