"""Read the tensor table of a claimed base checkpoint through ckptguard's own parsers
(``want_tensors=True``): nothing is loaded, only headers are parsed and byte ranges kept."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ckptguard.discover import FolderSkipped, Skipped, discover
from ckptguard.facts import Artifact, TensorRef
from ckptguard.formats import ParseContext, parser_for
from ckptguard.fsguard import ProblemSource
from ckptguard.limits import Limits
from ckptguard.sniff import sniff


@dataclass(frozen=True)
class BaseTensors:
    path: str
    tensors: dict[str, TensorRef] = field(default_factory=dict)
    problems: tuple[str, ...] = ()  # why (part of) the base could not be read

    @property
    def usable(self) -> bool:
        return bool(self.tensors)


def read_base(path: str, limits: Limits) -> BaseTensors:
    """Every tensor of the base at ``path`` (a file, or a folder of shards), by name."""
    if not Path(path).exists():
        return BaseTensors(path, problems=(f"{path}: no such file or directory",))
    context = ParseContext(limits=limits, want_tensors=True)
    tensors: dict[str, TensorRef] = {}
    problems: list[str] = []
    pending: list[Artifact] = []
    for item in discover([path], root=Path(path).parent):
        if isinstance(item, Skipped):
            problems.append(f"{item.path}: {item.reason}")
        elif isinstance(item, FolderSkipped):
            continue
        elif isinstance(item.source, ProblemSource):
            problems.append(f"{item.chain[0]}: {item.source.detail}")
        else:
            pending.append(item)
    visited = 0
    while pending:
        artifact = pending.pop()
        visited += 1
        if visited > limits.max_archive_members or artifact.depth > limits.max_archive_depth:
            problems.append("the base has more nested members than the scan limits allow")
            break
        fmt = sniff(artifact).format
        parser = parser_for(fmt)
        if parser is None:
            continue
        try:
            output = parser(artifact, context)
        except Exception as exc:  # noqa: BLE001 - a base that cannot be parsed is reported
            problems.append(f"{artifact.location.artifact}: {type(exc).__name__}: {exc}"[:300])
            continue
        for fact in output.facts:
            if fact.kind in ("parse.error", "limit.hit"):
                detail = fact.get("error") or fact.get("detail") or fact.kind
                problems.append(f"{fact.location.artifact}: {detail}"[:300])
        for ref in output.tensors:
            tensors.setdefault(ref.name, ref)
        pending.extend(output.children)
    if not tensors and not problems:
        problems.append(f"{path}: no tensors could be read (format not supported for weights)")
    return BaseTensors(path, tensors, tuple(problems))
