"""LZ4 frames and Zstandard streams: decompressed (bounded, incremental) and scanned.

joblib writes ``compress='lz4'`` files as a plain LZ4 frame holding the pickle (and reads them
back without looking at the name), and ``.pkl.zst`` / ``.zst`` pickles and tarballs are common.
Both codecs come from their reference bindings (``lz4`` and ``zstandard`` on PyPI).  Where a
binding is missing at run time the content cannot be examined, and the artifact keeps the
``format.unsupported`` fact (FMT004, fail closed).

Decompression follows the rules of ``compressed.decompress``: output grows in steps of at most
``STEP`` bytes and stops at the member size limit, the remaining decompression budget, or a
compression ratio above ``max_compression_ratio`` once the output is past ``RATIO_FLOOR``.
Concatenated frames are decoded as the reference tools do; bytes after the last frame that do not
start another frame are scanned as a member of their own.  Zstandard's decoder has no output bound
per call, so it is fed small input pieces: a piece of ``ZSTD_PIECE`` bytes cannot expand to more
than ``ZSTD_PIECE / 4`` RLE blocks of 128 KiB (32 MiB), whatever the stream claims.
"""

from __future__ import annotations

import importlib
import posixpath
from typing import Any, Protocol

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import DecompressionBudget, ParseContext
from ckptguard.formats.compressed import (
    CHUNK,
    RATIO_FLOOR,
    STEP,
    TRAILING,
    Inflated,
    report_inflated,
)
from ckptguard.limits import Limits
from ckptguard.sniff import PICKLE_LOADER_EXTENSIONS, extension_of
from ckptguard.source import ByteSource, MemorySource, slice_source
from ckptguard.spill import SpillBuffer

LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
# Skippable frames (LZ4 and Zstandard share the layout): 0x184D2A5? little endian, then a 4-byte
# length and that many bytes of user data that decoders ignore.
SKIPPABLE_MASK = 0xFFFFFFF0
SKIPPABLE_MAGIC = 0x184D2A50
ZSTD_PIECE = 1024  # compressed bytes handed to the Zstandard decoder per call (see above)
ZSTD_MAX_WINDOW = 1 << 27  # decoder memory a frame header may claim (the format's default cap)
MODULES = {"lz4": "lz4.frame", "zstd": "zstandard"}
_STRIP = {".lz4": "", ".zst": "", ".zstd": "", ".tlz4": ".tar", ".tzst": ".tar"}


class _Decoder(Protocol):
    """One frame decoder: ``step`` returns at most ``max_length`` bytes (lz4) or what a small
    input piece expands to (zstd)."""

    def step(self, data: bytes, max_length: int) -> bytes: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


class _Lz4:
    def __init__(self, module: Any) -> None:
        self._d = module.LZ4FrameDecompressor()

    def step(self, data: bytes, max_length: int) -> bytes:
        return bytes(self._d.decompress(data, max_length=max_length))

    @property
    def needs_input(self) -> bool:
        return bool(self._d.needs_input)

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data or b"")


class _Zstd:
    def __init__(self, module: Any) -> None:
        self._d = module.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW).decompressobj()

    def step(self, data: bytes, max_length: int) -> bytes:
        del max_length  # bounded by the size of ``data`` (see the module docstring)
        return bytes(self._d.decompress(data)) if data else b""

    @property
    def needs_input(self) -> bool:
        return True

    @property
    def eof(self) -> bool:
        return bool(self._d.eof)

    @property
    def unused_data(self) -> bytes:
        return bytes(self._d.unused_data)


def codec_module(fmt: str) -> Any | None:
    """The binding for ``fmt`` (``lz4`` or ``zstd``), or None when it is not installed."""
    try:
        return importlib.import_module(MODULES[fmt])
    except ImportError:
        return None


def _decoder(fmt: str, module: Any) -> _Decoder:
    return _Lz4(module) if fmt == "lz4" else _Zstd(module)


def _skippable(head: bytes) -> int | None:
    """Length of a skippable frame starting at ``head`` (header included), if it is one."""
    if len(head) < 8 or int.from_bytes(head[:4], "little") & SKIPPABLE_MASK != SKIPPABLE_MAGIC:
        return None
    return 8 + int.from_bytes(head[4:8], "little")


def _cap(limits: Limits, budget: int) -> tuple[int, str]:
    if budget < limits.max_member_size:
        return max(0, budget), "max_total_decompressed"
    return limits.max_member_size, "max_member_size"


def inflate(source: ByteSource, fmt: str, module: Any, limits: Limits,
            budget: int | DecompressionBudget) -> Inflated:
    """Decode every frame of ``source`` with the ``fmt`` binding ``module``, within limits,
    charging the scan's shared decompression budget (output past its in-memory share spills to
    the scan's temporary file, as in ``compressed.decompress``)."""
    shared = budget if isinstance(budget, DecompressionBudget) else \
        DecompressionBudget(budget, limits.max_decompressed_in_memory)
    out = SpillBuffer(shared.memory, shared.spill)
    try:
        return _inflate(source, fmt, module, limits, shared.remaining, out)
    finally:
        shared.remaining -= out.size
        shared.memory -= out.in_memory


def _inflate(source: ByteSource, fmt: str, module: Any, limits: Limits, budget: int,
             out: SpillBuffer) -> Inflated:
    cap, cap_name = _cap(limits, budget)
    magic = LZ4_MAGIC if fmt == "lz4" else ZSTD_MAGIC
    piece = CHUNK if fmt == "lz4" else ZSTD_PIECE
    pos = 0  # compressed bytes handed to a decoder (or skipped)
    frames = 0
    while True:
        head = source.read(pos, 8)
        skip = _skippable(head)
        if skip is not None:
            pos = min(source.size, pos + skip)
            continue
        if not head.startswith(magic):
            if frames == 0:
                return Inflated(MemorySource(b""), pos, False,
                                error=f"no {fmt} frame at byte {pos}", streams=0)
            return Inflated(out.source(), pos, True, trailing=source.size - pos, streams=frames)
        frames += 1
        decoder = _decoder(fmt, module)
        while not decoder.eof:
            data = b""
            if decoder.needs_input:
                data = source.read(pos, min(piece, source.size - pos))
                pos += len(data)
                if not data:
                    return Inflated(out.source(), pos, False, streams=frames,
                                    error=f"truncated: the {fmt} frame ends before its end mark")
            try:
                chunk = decoder.step(data, min(STEP, cap - out.size + 1))
            except Exception as exc:  # noqa: BLE001 - the bindings raise their own error types
                return Inflated(out.source(), pos, False, streams=frames,
                                error=f"corrupt {fmt} data: {type(exc).__name__}: {exc}"[:300])
            out.write(chunk)
            if out.size > cap:
                out.truncate(cap)
                return Inflated(out.source(), pos, False, limit=cap_name, streams=frames,
                                limit_detail=f"more than {cap} bytes after decompression")
            if out.size > RATIO_FLOOR and out.size > limits.max_compression_ratio * max(pos, 1):
                return Inflated(out.source(), pos, False, limit="max_compression_ratio",
                                streams=frames,
                                limit_detail=f"{out.size} bytes from {pos} compressed bytes, a "
                                f"ratio above {limits.max_compression_ratio}")
        pos -= len(decoder.unused_data)  # what the decoder read past its frame's end


def inner_name(artifact_name: str) -> str:
    base = posixpath.basename(artifact_name) or "stream"
    stem, ext = posixpath.splitext(base)
    if ext.lower() in _STRIP and stem:
        return stem + _STRIP[ext.lower()]
    return base


def _hint(artifact_name: str, inner: str) -> str | None:
    """joblib.load (or pickle.load on a decompressed .pkl) would unpickle the content."""
    if any(extension_of(n) in PICKLE_LOADER_EXTENSIONS for n in (artifact_name, inner)):
        return "pickle"
    return None


def _parse(artifact: Artifact, ctx: ParseContext, fmt: str) -> ParseOutput:
    output = ParseOutput(format=fmt)
    source = artifact.source
    module = codec_module(fmt)
    if module is None:
        # Fail closed: the content cannot be examined on this installation.
        output.add("format.unsupported", artifact.location, format=fmt, size=source.size,
                   detail=f"the Python package for {fmt} ({MODULES[fmt]}) is not installed")
        return output
    result = inflate(source, fmt, module, ctx.limits, ctx.scan_budget())
    report_inflated(output, artifact.location, fmt, result, f"{fmt} stream")
    if result.trailing and result.complete:
        offset = source.size - result.trailing
        output.add("compressed.trailing_data", artifact.location.within(offset=offset),
                   format=fmt, bytes=result.trailing)
        output.children.append(artifact.child(TRAILING, slice_source(source, offset,
                                                                     result.trailing)))
    if result.streams == 0:
        return output
    inner = inner_name(artifact.name)
    output.children.append(artifact.child(inner, result.source,
                                          format_hint=_hint(artifact.name, inner)))
    return output


def parse_lz4(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "lz4")


def parse_zstd(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "zstd")
