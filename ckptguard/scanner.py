"""Scan one artifact and everything nested in it: sniff -> parse -> facts -> rules -> findings."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass, replace

from ckptguard.config import DIGEST_AUTO_BYTES, Config
from ckptguard.digests import DigestMemo
from ckptguard.engine.ruleset import RuleSet
from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext, parser_for
from ckptguard.lfs_pointer import MAX_POINTER_BYTES, parse_pointer
from ckptguard.model import ArtifactSummary, Finding, Severity
from ckptguard.sniff import PICKLE_LOADER_EXTENSIONS, Sniffed, extension_of, sniff

# lz4/zstd are decompressed by formats/compressed_lz4zstd (which states format.unsupported
# itself when their Python binding is missing).
UNSUPPORTED_FORMATS = {"7z", "rar"}
# Fact collectors that run after a format's parser, for concerns that span formats
# (format -> "module:function" with the parser signature).
COLLECTORS: dict[str, tuple[str, ...]] = {
    "hf-repo": ("ckptguard.license.sources:collect",),
}
# Formats that legitimately carry another format appended: TFLite models pack their associated
# files (labels, vocabularies) as a zip archive after the flatbuffer.  The appended part is still
# scanned (the parser hands it on as a member); it is just not a polyglot.
EXPECTED_APPENDED: dict[str, frozenset[str]] = {"tflite": frozenset({"zip"})}
AS_PICKLE = "<as pickle>"
# Formats that are ordinary text: scanned only as part of a repo folder.
PASSIVE_FORMATS = {"json", "markdown", "python", "yaml", "text", "jinja", "unknown"}


@dataclass(frozen=True)
class ArtifactOutcome:
    summary: ArtifactSummary
    findings: tuple[Finding, ...]


def sniff_facts(artifact: Artifact, sniffed: Sniffed, output: ParseOutput) -> None:
    """Facts about the format itself: content disagreeing with the name, polyglots, unknowns."""
    where = artifact.location
    if artifact.source.size <= MAX_POINTER_BYTES:
        pointer = parse_pointer(artifact.source.read(0, MAX_POINTER_BYTES), artifact.source.size)
        if pointer is not None:  # what it stands for was not fetched: nothing else to say
            output.add("format.lfs_pointer", where, extension=extension_of(artifact.name),
                       oid=pointer.oid, size=pointer.size)
            return
    if sniffed.mismatched:
        output.add("format.mismatch", where, extension=extension_of(artifact.name),
                   expected=sniffed.expected, actual=sniffed.format)
    unexpected = tuple(f for f in sniffed.also
                       if f not in EXPECTED_APPENDED.get(sniffed.format, frozenset()))
    if unexpected:
        output.add("format.polyglot", where, formats=(sniffed.format, *unexpected))
    if sniffed.format in UNSUPPORTED_FORMATS:
        output.add("format.unsupported", where, format=sniffed.format, size=artifact.source.size)
    elif sniffed.format == "unknown" and extension_of(artifact.name) in PICKLE_LOADER_EXTENSIONS \
            and artifact.source.size > 0:
        output.add("format.unknown", where, extension=extension_of(artifact.name),
                   size=artifact.source.size, head=artifact.source.read(0, 16).hex())


def resolve_nested(outcome: ArtifactOutcome,
                   subtrees: dict[str, list[ArtifactOutcome]]) -> ArtifactOutcome:
    """Judge calls that hand embedded bytes to a deserializer by what those bytes hold.

    A finding whose evidence names a ``nested_artifact`` is about data the file carries itself,
    which was scanned as that member.  When nothing in the member (and below it) reaches
    ``high``, the call is provably no worse than its content — a tensor pickled with plain
    pickle is ``torch.storage._load_from_bytes(<a clean torch file>)`` — and the finding drops
    to ``low``.  If the member was not scanned (limits), the finding keeps its severity."""
    changed = []
    for item in outcome.findings:
        member = item.evidence_dict().get("nested_artifact")
        tree = subtrees.get(member) if member else None
        if tree is None or item.severity < Severity.HIGH:
            changed.append(item)
            continue
        worst = max((f.severity for o in tree for f in o.findings), default=None)
        if worst is not None and worst >= Severity.HIGH:
            changed.append(item)
            continue
        changed.append(replace(item, severity=Severity.LOW, message=(
            f"{item.message} (the embedded data was scanned as {member} and nothing in it "
            "reaches the gate)")))
    return ArtifactOutcome(outcome.summary, tuple(changed))


class Scanner:
    """Holds what one scan shares (rules, configuration); keeps no state between artifacts."""

    def __init__(self, rules: RuleSet, config: Config) -> None:
        self.rules = rules
        self.config = config
        self.context = ParseContext(limits=config.limits, want_tensors=config.weights,
                                    options={"base": config.base})
        self.options = {"license": config.license_policy, "weights": config.weights,
                        "base": config.base, "weight_threads": config.weight_threads}

    def scan(self, root: Artifact) -> Iterator[ArtifactOutcome]:
        """The artifact and its nested members, depth first, in a deterministic order.  The
        whole tree shares one decompression budget (``ParseContext.for_scan``)."""
        return iter(self._scan_tree(root, [0], self.context.for_scan(), DigestMemo()))

    def _scan_tree(self, artifact: Artifact, members_seen: list[int],
                   context: ParseContext, digests: DigestMemo) -> list[ArtifactOutcome]:
        """Outcomes of ``artifact`` and everything below it (pre-order).  ``members_seen`` is
        this scan's running count of nested members, shared by the whole tree."""
        limits = self.config.limits
        outcome, children = self._scan_one(artifact, context, digests)
        kept: list[Artifact] = []
        for child in children:
            members_seen[0] += 1
            if members_seen[0] > limits.max_archive_members or \
                    child.depth > limits.max_archive_depth:
                continue
            kept.append(child)
        dropped = len(children) - len(kept)
        if dropped:
            outcome = self._with_limit_finding(outcome, artifact, dropped)
        del children
        names = [child.name for child in kept]
        subtrees = []
        kept.reverse()
        while kept:  # each member's content is released as soon as its subtree is judged
            subtrees.append(self._scan_tree(kept.pop(), members_seen, context, digests))
        outcome = resolve_nested(outcome, dict(zip(names, subtrees, strict=True)))
        return [outcome, *(item for tree in subtrees for item in tree)]

    def _with_limit_finding(self, outcome: ArtifactOutcome, artifact: Artifact,
                            dropped: int) -> ArtifactOutcome:
        output = ParseOutput()
        output.add("limit.hit", artifact.location, limit="archive members or nesting depth",
                   value=dropped, detail=f"{dropped} nested member(s) were not scanned")
        extra = self.rules.evaluate("*", artifact, output, self.options)
        return ArtifactOutcome(outcome.summary, (*outcome.findings, *extra))

    def _collect(self, target: str, artifact: Artifact, fmt: str,
                 context: ParseContext) -> ParseOutput:
        module_name, _, function = target.partition(":")
        collector = getattr(importlib.import_module(module_name), function)
        try:
            collected: ParseOutput = collector(artifact, context)
        except Exception as exc:  # noqa: BLE001 - fail closed: a crash is a finding
            collected = ParseOutput()
            collected.add("scanner.error", artifact.location, format=fmt,
                          error=f"{type(exc).__name__} in {module_name}: {exc}"[:500])
        return collected

    def _scan_one(self, artifact: Artifact, context: ParseContext,
                  digests: DigestMemo) -> tuple[ArtifactOutcome, list[Artifact]]:
        sniffed = sniff(artifact)
        output = ParseOutput()
        sniff_facts(artifact, sniffed, output)
        fmt = sniffed.format
        parser = parser_for(fmt)
        if parser is not None:
            try:
                parsed = parser(artifact, context)
            except (MemoryError, RecursionError) as exc:
                output.add("scanner.error", artifact.location, format=fmt,
                           error=f"{type(exc).__name__}: resource exhausted while parsing")
            except Exception as exc:  # noqa: BLE001 - fail closed: a crash is a finding
                output.add("scanner.error", artifact.location, format=fmt,
                           error=f"{type(exc).__name__}: {exc}"[:500])
            else:
                output.extend(parsed)
                fmt = parsed.format or fmt
        for target in COLLECTORS.get(fmt, ()):
            output.extend(self._collect(target, artifact, fmt, context))
        if "pickle" in sniffed.also and sniffed.format != "pickle":
            # A pickle hidden behind another format's signature: a pickle loader reads it from
            # byte 0, so it is scanned as the pickle it also is.
            output.children.append(artifact.child(AS_PICKLE, artifact.source,
                                                  format_hint="pickle"))
        findings = self.rules.evaluate(fmt, artifact, output, self.options)
        wanted = self.config.digests or artifact.source.size <= DIGEST_AUTO_BYTES
        summary = ArtifactSummary(artifact.chain, fmt, artifact.source.size,
                                  digests.digest(artifact) if wanted else None)
        return ArtifactOutcome(summary, tuple(findings)), output.children
