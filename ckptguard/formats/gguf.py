"""GGUF (v1-v3): header, typed key/values (nested arrays included), tensor infos, data section.

Counts, string and array lengths are checked against the bytes left in the file before anything
is read; tensor offsets, alignment, types and sizes are checked the way llama.cpp checks them.
Chat templates (``tokenizer.chat_template`` and its named variants) go to ckptguard.templates.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from typing import Any

from ckptguard.facts import Artifact, ParseOutput, TensorRef
from ckptguard.formats import ParseContext
from ckptguard.formats.appended import appended_formats
from ckptguard.formats.gguf_reader import Cursor, HeaderTooLarge, Truncated
from ckptguard.formats.gguf_types import (
    ARRAY,
    DEFAULT_ALIGNMENT,
    GGML_TYPES,
    MAX_DIMS,
    NUMPY_NAMES,
    STRING,
    STRUCT_CODES,
    VALUE_TYPES,
)
from ckptguard.source import slice_source
from ckptguard.templates import analyse_template

MAX_ARRAY_DEPTH = 8
MAX_PER_PROBLEM = 100  # violation facts kept per kind of problem
MAX_METADATA_FACTS = 2000  # gguf.metadata facts per file (real files have under 100 keys)
MAX_FACT_VALUE = 500
KEEP_STRING = 64 * 1024  # strings longer than this are skipped unless they are chat templates
LICENSE_KEYS = {"general.license", "general.license.name", "general.license.link"}
TEMPLATE_KEY = re.compile(r"tokenizer\.chat_template(\..+)?\Z")
BASE_MODEL_KEY = re.compile(r"general\.base_model\.(\d+)\.(.+)\Z")


class Violation(ValueError):
    """The file breaks the GGUF rules; parsing cannot go on past it."""

    def __init__(self, problem: str, key: str, detail: str) -> None:
        super().__init__(detail)
        self.problem = problem
        self.key = key


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]
    ggml_type: int
    offset: int


class _GGUF:
    def __init__(self, artifact: Artifact, ctx: ParseContext) -> None:
        self.artifact = artifact
        self.ctx = ctx
        self.out = ParseOutput(format="gguf")
        self.where = artifact.location
        self.cur = Cursor(artifact.source, ctx.limits.max_header_bytes)
        self.version = 0
        self.keys: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def violation(self, problem: str, key: str, detail: str, offset: int | None = None) -> None:
        """Record a violation; past MAX_PER_PROBLEM of one kind only the count grows."""
        seen = self.counts[problem] = self.counts.get(problem, 0) + 1
        if seen > MAX_PER_PROBLEM:
            return
        if seen == MAX_PER_PROBLEM:
            detail += " (further ones of this kind not listed)"
        self.out.add("gguf.violation", self.where.within(key=key or None, offset=offset),
                     problem=problem, key=key, detail=detail)

    def count(self, what: str, min_item: int) -> int:
        value = self.cur.u32(what) if self.version == 1 else self.cur.u64(what)
        if value * min_item > self.cur.remaining:
            raise Violation("impossible-count", what,
                            f"{what} is {value}, but {self.cur.remaining} bytes cannot hold "
                            f"that many (at least {min_item} bytes each)")
        return value

    def string(self, what: str, keep: int = KEEP_STRING) -> str | None:
        length = self.count(f"{what} length", 1)
        if length > keep:
            self.cur.skip(length, what)
            return None
        return self.cur.read(length, what).decode("utf-8", errors="replace")

    @property
    def min_string(self) -> int:
        return 4 if self.version == 1 else 8

    def value(self, vtype: int, key: str, depth: int, keep: int) -> Any:
        if vtype in STRUCT_CODES:
            return self.cur.unpack(STRUCT_CODES[vtype], key)
        if vtype == STRING:
            return self.string(key, keep)
        if vtype == ARRAY:
            return self.array(key, depth + 1)
        raise Violation("value-type", key, f"unknown value type {vtype}")

    def array(self, key: str, depth: int) -> dict[str, Any]:
        if depth > MAX_ARRAY_DEPTH:
            raise Violation("nesting", key, f"arrays nested more than {MAX_ARRAY_DEPTH} deep")
        etype = self.cur.u32(f"{key} element type")
        if etype not in VALUE_TYPES:
            raise Violation("value-type", key, f"unknown array element type {etype}")
        name, size = VALUE_TYPES[etype]
        min_item = size or (self.min_string if etype == STRING else 12)
        length = self.count(f"{key} array length", min_item)
        if size:
            self.cur.skip(length * size, key)
        elif etype == STRING:
            self.cur.skip_strings(length, self.version > 1, key)
        else:
            for _ in range(length):
                self.value(etype, key, depth, 0)
        return {"element_type": name, "count": length}

    def header(self) -> int:
        magic = self.cur.read(4, "magic")
        if magic != b"GGUF":
            raise Violation("magic", "", f"file starts with {magic!r}, not b'GGUF'")
        self.version = self.cur.u32("version")
        if self.version not in (1, 2, 3):
            raise Violation("version", "", f"unsupported GGUF version {self.version}")
        min_tensor = 4 + 4 + 4 + 8 if self.version == 1 else 8 + 4 + 4 + 8
        tensors = self.count("tensor count", min_tensor)
        kv_count = self.count("key/value count", self.min_string + 4 + 1)
        for _ in range(kv_count):
            self.key_value()
        return tensors

    def key_value(self) -> None:
        offset = self.cur.pos
        key = self.string("key", 65_535)
        if key is None:
            raise Violation("string-length", "", f"key at offset {offset} is over 64 KiB")
        vtype = self.cur.u32(f"{key} type")
        keep = self.ctx.limits.max_text_file_bytes if TEMPLATE_KEY.match(key) else KEEP_STRING
        value = self.value(vtype, key, 0, keep)
        if key in self.keys:
            self.violation("duplicate-key", key, "key appears twice; readers disagree on which "
                                                 "value wins", offset)
        self.keys[key] = value
        self.metadata_fact(key, VALUE_TYPES.get(vtype, ("?", 0))[0], value)

    def metadata_fact(self, key: str, type_name: str, value: Any) -> None:
        """A gguf.metadata fact (the first MAX_METADATA_FACTS keys: they describe, rules do not
        judge them), plus the license, base-model and chat-template facts for every key."""
        where = self.where.within(key=key)
        described = len(self.keys) <= MAX_METADATA_FACTS
        if isinstance(value, dict):
            if described:
                self.out.add("gguf.metadata", where, key=key, type=type_name, **value)
            return
        shown = value if not isinstance(value, str) else value[:MAX_FACT_VALUE]
        if described:
            self.out.add("gguf.metadata", where, key=key, type=type_name,
                         value="<skipped: too long>" if value is None else shown)
        if value is None and TEMPLATE_KEY.match(key):
            self.out.add("limit.hit", where, limit="max_text_file_bytes", value=key,
                         detail=f"chat template {key} is longer than the limit; not analysed")
        if not isinstance(value, str):
            return
        if key in LICENSE_KEYS:
            self.out.add("metadata.license", where, value=shown, source=f"gguf:{key}", key=key)
        if key == "general.name":
            self.out.add("metadata.name", where, value=shown, source=f"gguf:{key}", key=key)
        base = BASE_MODEL_KEY.match(key)
        if base:
            self.out.add("metadata.base_model", where, index=int(base.group(1)),
                         field=base.group(2), value=shown, source=f"gguf:{key}", key=key)
        if TEMPLATE_KEY.match(key):
            self.out.facts.extend(analyse_template(value, where, self.ctx.limits,
                                                   origin=f"gguf:{key}"))

    def tensor_infos(self, count: int) -> list[TensorInfo]:
        infos = []
        for index in range(count):
            name = self.string(f"tensor {index} name", 65_535)
            if name is None:
                raise Violation("string-length", "", f"tensor {index} name is over 64 KiB")
            n_dims = self.cur.u32(f"{name} dimension count")
            if n_dims > MAX_DIMS:
                raise Violation("tensor-dims", name, f"{n_dims} dimensions (ggml allows "
                                                     f"{MAX_DIMS})")
            dims = tuple(self.cur.u32(name) if self.version == 1 else self.cur.u64(name)
                         for _ in range(n_dims))
            ggml_type = self.cur.u32(f"{name} type")
            infos.append(TensorInfo(name, dims, ggml_type, self.cur.u64(f"{name} offset")))
        return infos

    def alignment(self) -> int:
        value = self.keys.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0 or \
                value & (value - 1):
            self.violation("alignment", "general.alignment",
                           f"general.alignment {value!r} is not a positive power of two")
            return DEFAULT_ALIGNMENT
        return value

    def check_tensors(self, infos: list[TensorInfo], data_start: int, alignment: int) -> None:
        data_size = self.cur.size - data_start
        names: set[str] = set()
        spans: list[tuple[int, int, str]] = []
        for info in infos:
            if info.name in names:
                self.violation("duplicate-tensor", info.name, "tensor name appears twice")
            names.add(info.name)
            nbytes = self.tensor_bytes(info)
            if info.offset % alignment:
                self.violation("tensor-offset", info.name, f"offset {info.offset} is not a "
                                                           f"multiple of alignment {alignment}")
            if nbytes is not None:
                if info.offset + nbytes > data_size:
                    self.violation("tensor-offset", info.name,
                                   f"bytes {info.offset}..{info.offset + nbytes} lie outside "
                                   f"the {data_size}-byte data section")
                spans.append((info.offset, info.offset + nbytes, info.name))
                self.tensor_ref(info, data_start, nbytes, data_size)
        spans.sort()
        for (_, end, first), (begin, _, second) in itertools.pairwise(spans):
            if begin < end:
                self.violation("tensor-overlap", second, f"overlaps tensor {first!r}")
        used = max((end for _, end, _ in spans), default=0)
        self.appended(data_start + used, data_start + -(-used // alignment) * alignment)

    def appended(self, end: int, padded: int) -> None:
        """Another format right after the last tensor, or after its padding, is a polyglot."""
        start, formats = end, appended_formats(self.artifact.source, end, "gguf")
        if not formats and padded > end:
            start, formats = padded, appended_formats(self.artifact.source, padded, "gguf")
        if not formats:
            return
        count = self.cur.size - start
        self.out.add("format.polyglot", self.where.within(offset=start),
                     formats=("gguf", *formats),
                     detail=f"{', '.join(formats)} data appended after the tensor data at byte "
                            f"{start}")
        self.out.children.append(self.artifact.child(
            f"trailing@{start}", slice_source(self.artifact.source, start, count)))

    def tensor_bytes(self, info: TensorInfo) -> int | None:
        if info.ggml_type not in GGML_TYPES:
            self.violation("tensor-type", info.name, f"unknown ggml type {info.ggml_type}")
            return None
        type_name, block, block_bytes = GGML_TYPES[info.ggml_type]
        if not info.dims or info.dims[0] % block:
            self.violation("tensor-dims", info.name, f"shape {list(info.dims)} does not fit "
                                                     f"{type_name} blocks of {block}")
            return None
        return info.dims[0] // block * block_bytes * math.prod(info.dims[1:])

    def tensor_ref(self, info: TensorInfo, data_start: int, nbytes: int, data_size: int) -> None:
        type_name = GGML_TYPES[info.ggml_type][0]
        if not self.ctx.want_tensors or type_name not in NUMPY_NAMES or \
                info.offset + nbytes > data_size:
            return
        self.out.tensors.append(TensorRef(
            name=info.name, dtype=NUMPY_NAMES[type_name], shape=tuple(reversed(info.dims)),
            source=slice_source(self.artifact.source, data_start + info.offset, nbytes),
            location=self.where.within(tensor=info.name)))

    def run(self) -> None:
        tensor_count = self.header()
        infos = self.tensor_infos(tensor_count)
        alignment = self.alignment()
        data_start = -(-self.cur.pos // alignment) * alignment
        self.out.add("gguf.header", self.where, version=self.version, tensors=len(infos),
                     keys=len(self.keys), alignment=alignment, data_offset=data_start,
                     architecture=str(self.keys.get("general.architecture", "")),
                     name=str(self.keys.get("general.name", "")))
        if infos and data_start > self.cur.size:
            self.violation("tensor-offset", "", f"data section would start at {data_start}, "
                                                f"past the end of the file")
            return
        self.check_tensors(infos, data_start, alignment)


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    gguf = _GGUF(artifact, ctx)
    try:
        gguf.run()
    except Violation as exc:
        gguf.violation(exc.problem, exc.key, str(exc), gguf.cur.pos)
    except Truncated as exc:
        gguf.violation("truncated", "", str(exc), gguf.cur.pos)
    except HeaderTooLarge as exc:
        gguf.out.add("limit.hit", gguf.where.within(offset=gguf.cur.pos),
                     limit="max_header_bytes", value=gguf.cur.pos, detail=str(exc))
    return gguf.out
