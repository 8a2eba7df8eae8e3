"""Helpers shared by the safetensors/GGUF/TFLite/SavedModel/template tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ckptguard.api import scan
from ckptguard.config import Config
from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext, parser_for
from ckptguard.model import ScanResult
from ckptguard.sniff import sniff
from ckptguard.source import ByteSource, FileSource, MemorySource


@dataclass
class CountingSource:
    """A MemorySource that records how many bytes parsers asked for."""

    data: bytes
    requested: list[tuple[int, int]] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        self.requested.append((offset, length))
        return MemorySource(self.data).read(offset, length)

    def view(self) -> memoryview:
        self.requested.append((0, len(self.data)))
        return memoryview(self.data)


def parse_bytes(name: str, data: bytes | ByteSource, ctx: ParseContext | None = None, *,
                fmt: str | None = None) -> ParseOutput:
    """Parse with the format ``fmt`` (or the sniffed one) without scanning."""
    source = MemorySource(data) if isinstance(data, bytes) else data
    artifact = Artifact((name,), source)
    parser = parser_for(fmt or sniff(artifact).format)
    assert parser is not None, f"no parser for {name}"
    return parser(artifact, ctx or ParseContext())


def parse_file(path: Path, ctx: ParseContext | None = None) -> ParseOutput:
    artifact = Artifact((path.name,), FileSource(str(path)))
    parser = parser_for(sniff(artifact).format)
    assert parser is not None
    return parser(artifact, ctx or ParseContext())


def scan_path(path: Path, **config: object) -> ScanResult:
    return scan([path], Config(**config), root=path.parent)  # type: ignore[arg-type]


def problems(output: ParseOutput, kind: str) -> set[str]:
    return {str(f.attrs.get("problem")) for f in output.of_kind(kind)}
