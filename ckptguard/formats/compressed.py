"""Single compressed streams (gzip, bzip2, xz, zlib, lzma-alone, and joblib's compressed files),
and the bounded, incremental decompression every container shares.

Every container that unpacks bytes into memory goes through ``decompress``: output is produced in
steps of at most ``STEP`` bytes, and stops at the member size limit, the caller's remaining budget
of decompressed bytes, or once the output is past ``RATIO_FLOOR`` bytes and more than
``max_compression_ratio`` times the input read so far (a bomb is stopped long before it explodes).
Decompression never raises: corrupt and truncated streams are reported in the result.
"""

from __future__ import annotations

import bz2
import hashlib
import lzma
import posixpath
import zlib
from dataclasses import dataclass, replace

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import DecompressionBudget, ParseContext
from ckptguard.limits import Limits
from ckptguard.model import Location
from ckptguard.sniff import PICKLE_LOADER_EXTENSIONS, extension_of
from ckptguard.source import ByteSource, MemorySource, slice_source
from ckptguard.spill import SpillBuffer

REUSE_INPUT_MAX = 1 << 20  # compressed inputs up to this size are recognised when repeated
CHUNK = 64 << 10  # compressed bytes read at a time (small: the ratio is judged per chunk)
STEP = 4 << 20  # decompressed bytes produced at a time
RATIO_FLOOR = 32 << 20  # ratios are judged once this much output exists (small files compress well)

# Stream kinds and the magic bytes that start another stream of the same kind (concatenation).
METHODS = ("deflate", "zlib", "gzip", "bz2", "xz", "lzma")
_RESTART_MAGIC = {"gzip": b"\x1f\x8b", "bz2": b"BZh", "xz": b"\xfd7zXZ\x00"}


# Decoder memory a hostile header may claim (xz/lzma dictionaries); real files use at most 64 MiB.
LZMA_MEMLIMIT = 512 * 1024**2


class _Stream:
    """One decompressor behind a single interface (zlib's and bz2/lzma's APIs differ)."""

    def __init__(self, method: str, filters: list[dict[str, int]] | None = None) -> None:
        self.method = method
        self._zlib: zlib._Decompress | None = None
        self._other: bz2.BZ2Decompressor | lzma.LZMADecompressor | None = None
        if method in ("deflate", "zlib", "gzip"):
            wbits = {"deflate": -15, "zlib": 15, "gzip": 31}[method]
            self._zlib = zlib.decompressobj(wbits)
        elif method == "bz2":
            self._other = bz2.BZ2Decompressor()
        elif method == "xz":
            self._other = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=LZMA_MEMLIMIT)
        elif method == "lzma":
            # The header declares the dictionary size: without a limit a 4 GiB claim is honoured.
            self._other = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE,
                                                memlimit=LZMA_MEMLIMIT)
        elif method == "lzma-raw" and filters is not None:  # zip's LZMA: header parsed by caller
            self._other = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=filters)
        else:
            raise ValueError(f"unknown compression method {method!r}")

    @property
    def needs_input(self) -> bool:
        if self._zlib is not None:
            return not self._zlib.unconsumed_tail
        assert self._other is not None
        return bool(self._other.needs_input)

    @property
    def eof(self) -> bool:
        if self._zlib is not None:
            return bool(self._zlib.eof)
        assert self._other is not None
        return bool(self._other.eof)

    @property
    def unused_data(self) -> bytes:
        if self._zlib is not None:
            return bytes(self._zlib.unused_data)
        assert self._other is not None
        return bytes(self._other.unused_data)

    def step(self, data: bytes, max_length: int) -> bytes:
        if self._zlib is not None:
            pending = self._zlib.unconsumed_tail + data if data else self._zlib.unconsumed_tail
            return self._zlib.decompress(pending, max_length)
        assert self._other is not None
        return self._other.decompress(data, max_length)


@dataclass(frozen=True)
class Inflated:
    """The outcome of one bounded decompression."""

    source: ByteSource  # the output: in memory, or spilled to a temporary file
    consumed: int  # compressed bytes read
    complete: bool  # the stream ended properly
    limit: str | None = None  # the limit that stopped decompression, if any
    limit_detail: str = ""
    error: str | None = None  # corrupt or truncated stream
    trailing: int = 0  # bytes after the end of the stream that are not another stream
    streams: int = 1  # concatenated streams decoded (gzip/bz2/xz allow several)
    crc32: int | None = None  # of the whole output, when asked for and the stream is complete

    @property
    def size(self) -> int:
        return self.source.size

    @property
    def data(self) -> bytes:
        """All the output as bytes (for small outputs and tests; parsers use ``source``)."""
        return self.source.read(0, self.source.size)


def _limit(limits: Limits, budget: int) -> tuple[int, str]:
    if budget < limits.max_member_size:
        return max(0, budget), "max_total_decompressed"
    return limits.max_member_size, "max_member_size"


def decompress(source: ByteSource, start: int, length: int, method: str, limits: Limits,
               budget: int | DecompressionBudget, *, filters: list[dict[str, int]] | None = None,
               expected: int | None = None, crc: bool = False) -> Inflated:
    """Decompress ``length`` bytes of ``source`` from ``start`` with ``method``; with ``crc``,
    the output's CRC-32 too (taken as it is produced, and kept with a reused output: the
    copies of a 42.zip level are checked against their records without reading them again).

    ``budget`` is what the caller may still spend: the scan's ``DecompressionBudget`` (charged
    here, so that archives nested in archives share one ``max_total_decompressed``), or a byte
    count.  Output past the budget's in-memory share goes to a temporary file.
    """
    shared = budget if isinstance(budget, DecompressionBudget) else \
        DecompressionBudget(budget, limits.max_decompressed_in_memory)
    if shared.remaining <= 0:
        return Inflated(MemorySource(b""), 0, False, limit="max_total_decompressed",
                        limit_detail="this scan's decompression budget is already spent")
    key: tuple[object, ...] | None = None
    if length <= REUSE_INPUT_MAX:
        digest = hashlib.sha256(source.read(start, length)).digest()
        key = (method, digest, length, expected, repr(filters), crc)
        known: Inflated | None = shared.seen.get(key)
        if known is not None and known.size <= shared.remaining:
            shared.remaining -= known.size
            return known
    out = SpillBuffer(shared.memory, shared.spill, crc=crc)
    try:
        result = _inflate(source, start, length, method, limits, shared.remaining, out,
                          filters, expected)
    finally:
        shared.remaining -= out.size
        shared.memory -= out.in_memory
    if result.complete and out.crc32 is not None:
        result = replace(result, crc32=out.crc32)
    if key is not None and isinstance(result.source, MemorySource) and \
            result.limit in (None, "max_compression_ratio"):
        shared.seen[key] = result  # the same input gives the same output (and the same facts)
    return result


def _inflate(source: ByteSource, start: int, length: int, method: str, limits: Limits,
             budget: int, out: SpillBuffer, filters: list[dict[str, int]] | None,
             expected: int | None) -> Inflated:
    cap, cap_name = _limit(limits, budget)
    stream = _Stream(method, filters)
    pos = 0
    streams = 1
    pending = b""
    while True:
        data = b""
        if stream.needs_input and not stream.eof:
            if pending:
                data, pending = pending, b""
            else:
                data = source.read(start + pos, min(CHUNK, length - pos))
                pos += len(data)
                if not data and expected is not None and out.size == expected:
                    return Inflated(out.source(), pos, True, streams=streams)  # no end marker
                if not data:
                    return Inflated(out.source(), pos, False, error="truncated: the compressed "
                                    "stream ends before its end marker", streams=streams)
        try:
            piece = stream.step(data, min(STEP, cap - out.size + 1))
        except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
            return Inflated(out.source(), pos, False, error=f"corrupt {method} data: {exc}",
                            streams=streams)
        out.write(piece)
        if out.size > cap:
            detail = f"more than {cap} bytes after decompression"
            out.truncate(cap)
            return Inflated(out.source(), pos, False, limit=cap_name, limit_detail=detail,
                            streams=streams)
        if out.size > RATIO_FLOOR and out.size > limits.max_compression_ratio * max(pos, 1):
            detail = (f"{out.size} bytes from {pos} compressed bytes, a ratio above "
                      f"{limits.max_compression_ratio}")
            return Inflated(out.source(), pos, False, limit="max_compression_ratio",
                            limit_detail=detail, streams=streams)
        if stream.eof:
            rest = stream.unused_data + source.read(start + pos, min(64, length - pos))
            magic = _RESTART_MAGIC.get(method)
            if magic is not None and rest.startswith(magic):
                pending = stream.unused_data
                stream = _Stream(method)
                streams += 1
                continue
            trailing = len(stream.unused_data) + (length - pos)
            return Inflated(out.source(), pos, True, trailing=trailing, streams=streams)


# --- the single-stream parsers -------------------------------------------------------------------

# joblib < 0.10 wrote zlib files as b"ZF" + the uncompressed length in hex, space padded to 19
# characters, then a zlib stream.
JOBLIB_ZF_HEADER = 21
TRAILING = "<trailing data>"  # chain name of bytes found after the end of a stream or array
_STRIP = {".gz": "", ".tgz": ".tar", ".bz2": "", ".tbz2": ".tar", ".xz": "", ".txz": ".tar",
          ".z": "", ".zlib": "", ".lzma": ""}


def stream_method(head: bytes) -> str | None:
    """The compression of a stream from its first bytes, if it is one ckptguard decompresses."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"ZF0x") or head[:1] == b"\x78":
        return "zlib"
    if head.startswith(b"]\x00\x00"):
        return "lzma"
    return None


def gzip_original_name(head: bytes) -> str | None:
    """The FNAME field of a gzip header, when present and printable."""
    if len(head) < 10 or not head[3] & 0x08:
        return None
    pos = 10
    if head[3] & 0x04:  # FEXTRA
        if len(head) < 12:
            return None
        pos += 2 + int.from_bytes(head[10:12], "little")
    end = head.find(b"\x00", pos)
    if end <= pos:
        return None
    raw = head[pos:end].decode("latin-1")
    name = posixpath.basename(raw.replace("\\", "/"))
    return name if name and name.isprintable() and name not in (".", "..") else None


def member_name(artifact_name: str, head: bytes) -> str:
    """What to call the decompressed content in the chain."""
    if head.startswith(b"\x1f\x8b"):
        original = gzip_original_name(head)
        if original:
            return original
    base = posixpath.basename(artifact_name) or "stream"
    stem, ext = posixpath.splitext(base)
    if ext.lower() in _STRIP and stem:
        return stem + _STRIP[ext.lower()]
    return base


def _hint(artifact_name: str, inner_name: str, joblib_zf: bool) -> str | None:
    """A loader that opens this name would unpickle what it decompresses (joblib.load)."""
    names = (artifact_name, inner_name)
    if joblib_zf or any(extension_of(n) in PICKLE_LOADER_EXTENSIONS for n in names):
        return "pickle"
    return None


def report_inflated(output: ParseOutput, where: Location, fmt: str, result: Inflated,
                    what: str) -> None:
    """The facts every container states about one decompression."""
    if result.limit is not None:
        output.add("limit.hit", where, limit=result.limit, value=result.size,
                   detail=f"{what}: {result.limit_detail}")
    if result.error is not None:
        output.add("parse.error", where, format=fmt, error=f"{what}: {result.error}",
                   offset=result.consumed, read=result.size)


def _parse(artifact: Artifact, ctx: ParseContext, fmt: str) -> ParseOutput:
    output = ParseOutput(format=fmt)
    source = artifact.source
    head = source.read(0, 4096)
    method = stream_method(head) or fmt
    start = 0
    joblib_zf = head.startswith(b"ZF0x")
    if joblib_zf:
        start = JOBLIB_ZF_HEADER
        output.format = "joblib"
    if method not in METHODS:
        output.add("parse.error", artifact.location, format=fmt, offset=0, read=len(head),
                   error=f"not a {fmt} stream (first bytes {head[:8].hex()})")
        return output
    result = decompress(source, start, source.size - start, method, ctx.limits,
                        ctx.scan_budget())
    report_inflated(output, artifact.location, fmt, result, f"{method} stream")
    if result.trailing:
        offset = source.size - result.trailing
        output.add("compressed.trailing_data", artifact.location.within(offset=offset),
                   format=fmt, bytes=result.trailing)
        # Loaders stop at the end of the stream; whatever follows is scanned in its own right.
        output.children.append(artifact.child(TRAILING, slice_source(source, offset,
                                                                     result.trailing)))
    if joblib_zf:
        declared = head[2:JOBLIB_ZF_HEADER].strip()
        try:
            expected = int(declared, 16)
        except ValueError:
            expected = -1
        if result.complete and expected != result.size:
            output.add("parse.error", artifact.location, format="joblib", offset=2,
                       read=result.size, error=f"joblib zlib header declares {expected} "
                       f"bytes but the stream holds {result.size}")
    inner = member_name(artifact.name, head)
    output.children.append(artifact.child(inner, result.source,
                                          format_hint=_hint(artifact.name, inner, joblib_zf)))
    return output


def parse_gzip(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "gzip")


def parse_bz2(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "bz2")


def parse_xz(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "xz")


def parse_zlib(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "zlib")


def parse_lzma(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    return _parse(artifact, ctx, "lzma")
