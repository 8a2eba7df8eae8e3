"""Facts: the neutral, typed model of what a parser saw in an artifact.

Parsers turn bytes into facts; rules read facts and emit findings.  A fact has a ``kind``
(``pickle.global``, ``pickle.call``, ``parse.error``, ``limit.hit``, ``safetensors.header``, ...),
a location, and attributes that rules match on.  Facts never hold live objects from the scanned
file: only strings, numbers, booleans, tuples and nested mappings of those.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ckptguard.model import Location
from ckptguard.source import ByteSource


def _freeze(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(attrs))


@dataclass(frozen=True)
class Fact:
    kind: str
    location: Location
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @staticmethod
    def of(kind: str, location: Location, **attrs: Any) -> Fact:
        # ``attrs`` is this call's own fresh dict: wrapped, not copied (parsers make tens of
        # thousands of facts per checkpoint).
        return Fact(kind, location, MappingProxyType(attrs))

    def get(self, dotted: str, default: Any = None) -> Any:
        """Attribute lookup with dotted paths into nested mappings (``header.dtype``)."""
        value: Any = self.attrs
        for part in dotted.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                return default
        return value


@dataclass(frozen=True)
class TensorRef:
    """A tensor whose bytes can be read without loading anything (for weight statistics)."""

    name: str
    dtype: str  # numpy-style name: float32, float16, bfloat16, int8, ...
    shape: tuple[int, ...]
    source: ByteSource  # exactly the tensor's bytes, little-endian, C order
    location: Location


@dataclass(frozen=True)
class Artifact:
    """Something to scan: a file, an archive member, or a repository folder.

    ``chain`` names it from the outermost file on disk inward.  ``directory`` is set only for
    folder units (a Hugging Face style repo judged as a whole).
    """

    chain: tuple[str, ...]
    source: ByteSource
    depth: int = 0  # how many archives deep
    directory: str | None = None
    # Format decided by a container that knows better than sniffing (e.g. torch zip members).
    format_hint: str | None = None
    # The loader that will read it, where that changes what names mean: "torchscript" for the
    # pickles of a TorchScript archive (``__torch__.*`` classes come from the archive's code).
    loader: str | None = None
    # The repository folder (its chain entry) this file was discovered in, when that folder is
    # scanned as a unit too; None for a file scanned on its own.
    in_repo: str | None = None

    @property
    def name(self) -> str:
        return self.chain[-1] if self.chain else ""

    @property
    def location(self) -> Location:
        return Location(self.chain)

    def child(self, member: str, source: ByteSource, *, format_hint: str | None = None,
              nested: bool = True, loader: str | None = None) -> Artifact:
        return Artifact((*self.chain, member), source, self.depth + (1 if nested else 0),
                        format_hint=format_hint, loader=loader, in_repo=self.in_repo)


@dataclass
class ParseOutput:
    """What one parser produced for one artifact.  Built up by the parser, then handed on."""

    facts: list[Fact] = field(default_factory=list)
    children: list[Artifact] = field(default_factory=list)  # members to scan in their own right
    tensors: list[TensorRef] = field(default_factory=list)
    # A more precise format than the sniffer's, when the parser learns it (zip -> pytorch-zip).
    format: str | None = None

    def add(self, kind: str, location: Location, **attrs: Any) -> Fact:
        fact = Fact.of(kind, location, **attrs)
        self.facts.append(fact)
        return fact

    def extend(self, other: ParseOutput) -> None:
        self.facts.extend(other.facts)
        self.children.extend(other.children)
        self.tensors.extend(other.tensors)

    def of_kind(self, kind: str) -> Iterator[Fact]:
        return (f for f in self.facts if f.kind == kind)
