"""Member data: stored members as slices of the parent (no copy), compressed ones inflated under
limits; local headers compared with the central directory and CRCs checked on what is read."""

from __future__ import annotations

import itertools
import lzma
import zlib
from collections import defaultdict
from dataclasses import dataclass
from operator import attrgetter

from ckptguard.facts import ParseOutput
from ckptguard.formats import DecompressionBudget, ParseContext
from ckptguard.formats.compressed import decompress, report_inflated
from ckptguard.formats.zipfmt.reader import (
    FLAG_ENCRYPTED,
    LOCAL,
    Directory,
    Entry,
    ZipError,
    disagreements,
    read_local,
)
from ckptguard.model import Location
from ckptguard.source import ByteSource, slice_source

METHODS = {0: None, 8: "deflate", 12: "bz2", 14: "lzma-raw"}
METHOD_NAMES = {0: "stored", 8: "deflate", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd",
                95: "xz", 98: "ppmd", 99: "aes"}
CRC_STORED_MAX = 64 << 20  # stored members read only to check their CRC are bounded
CRC_BLOCK = 1 << 20
MAX_REPORTED = 50  # facts of one kind per archive (the count says the rest)


Budget = DecompressionBudget  # shared by the whole scan (ParseContext.scan_budget)


@dataclass(frozen=True)
class Member:
    entry: Entry
    source: ByteSource
    stored: bool


def lzma_filters(header: bytes) -> list[dict[str, int]] | None:
    """The LZMA1 filter of a zip LZMA member: version (2 bytes), properties size (2, always 5),
    then lc/lp/pb packed in one byte and the dictionary size."""
    if len(header) < 9 or int.from_bytes(header[2:4], "little") != 5 or header[4] >= 9 * 5 * 5:
        return None
    packed = header[4]
    return [{"id": lzma.FILTER_LZMA1, "lc": packed % 9, "lp": packed // 9 % 5,
             "pb": packed // 45, "dict_size": int.from_bytes(header[5:9], "little")}]


def member_location(where: Location, entry: Entry) -> Location:
    return where.child(entry.name)


def _crc(source: ByteSource) -> int:
    crc = 0
    for offset in range(0, source.size, CRC_BLOCK):
        crc = zlib.crc32(source.read(offset, CRC_BLOCK), crc)
    return crc


def open_member(source: ByteSource, entry: Entry, where: Location, ctx: ParseContext,
                budget: Budget, output: ParseOutput, *, verify_crc: bool) -> Member | None:
    """The member's bytes, or None (with a fact saying why) when they cannot be read."""
    here = member_location(where, entry)
    try:
        local = read_local(source, entry)
    except ZipError as exc:
        output.add("parse.error", here, format="zip", error=str(exc), offset=exc.offset, read=0)
        return None
    for name, central, in_local in disagreements(entry, local):
        output.add("zip.header_mismatch", here, name=entry.name, field=name, central=central,
                   local=in_local)
    if entry.flags & FLAG_ENCRYPTED:
        output.add("archive.unreadable_member", here, name=entry.name, reason="encrypted")
        return None
    if entry.method not in METHODS:
        method = METHOD_NAMES.get(entry.method, f"method {entry.method}")
        output.add("archive.unreadable_member", here, name=entry.name,
                   reason=f"{method} compression is not supported")
        return None
    end = local.data_offset + entry.compressed_size
    if end > source.size:
        output.add("parse.error", here, format="zip", offset=local.data_offset,
                   read=source.size - local.data_offset,
                   error=f"member {entry.name!r} runs {end - source.size} bytes past the end")
        return None
    codec = METHODS[entry.method]
    known_crc: int | None = None  # the CRC-32 the decompressor took of its output
    if codec is None:
        data: ByteSource = slice_source(source, local.data_offset, entry.compressed_size)
        if entry.size != entry.compressed_size:
            output.add("zip.header_mismatch", here, name=entry.name, field="stored size",
                       central=str(entry.size), local=str(entry.compressed_size))
        check = verify_crc and data.size <= CRC_STORED_MAX
    else:
        start, length = local.data_offset, entry.compressed_size
        filters = None
        if codec == "lzma-raw":
            filters = lzma_filters(source.read(start, 9))
            if filters is None:
                output.add("archive.unreadable_member", here, name=entry.name,
                           reason="lzma compression with an unknown properties header")
                return None
            start, length = start + 9, length - 9
        result = decompress(source, start, length, codec, ctx.limits, budget,
                            filters=filters, expected=entry.size, crc=True)
        report_inflated(output, here, "zip", result, f"member {entry.name!r}")
        data = result.source
        check = result.complete
        known_crc = result.crc32
        if result.complete and result.size != entry.size:
            output.add("zip.header_mismatch", here, name=entry.name, field="size (actual data)",
                       central=str(entry.size), local=str(result.size))
    if check:
        actual = known_crc if known_crc is not None else _crc(data)
        if actual != entry.crc:
            output.add("zip.crc_mismatch", here, name=entry.name, expected=f"{entry.crc:08x}",
                       actual=f"{actual:08x}")
    return Member(entry, data, codec is None)


def child_name(entry: Entry, copy: int) -> str:
    """The chain name of a member; later copies of a duplicated name are told apart."""
    return entry.name if copy == 0 else f"{entry.name}#{copy + 1}"


def structure_facts(directory: Directory, where: Location, output: ParseOutput,
                    head: bytes) -> dict[int, int]:
    """Facts about the archive as a whole; returns each entry's copy number (0 = first)."""
    copy_of: dict[int, int] = {}
    exact: dict[bytes, int] = defaultdict(int)
    # torch's reader (miniz, no case-sensitive flag) matches names ignoring ASCII case.
    groups: dict[bytes, list[Entry]] = defaultdict(list)
    for entry in directory.entries:
        raw = entry.raw_name
        copy_of[entry.position] = exact[raw]
        exact[raw] += 1
        # zipfile cuts a name at its first NUL byte: "a\0x" and "a" are one name to it.
        groups[(raw.split(b"\x00", 1)[0] if b"\x00" in raw else raw).lower()].append(entry)
    duplicates = [copies for copies in groups.values() if len(copies) > 1]
    for copies in duplicates[:MAX_REPORTED]:
        spellings = sorted({e.name for e in copies})
        detail = "Python's zipfile reads the last copy; torch (miniz) finds names by binary " \
            "search over a sorted index and may take either"
        if any("\x00" in name for name in spellings):
            detail = f"names {spellings} are the same up to a NUL byte, where Python's zipfile " \
                "cuts them"
        elif len(spellings) > 1:
            detail = f"names {spellings} differ only in case, which torch's reader ignores " \
                "while zipfile does not"
        output.add("zip.duplicate_name", where.child(copies[0].name), name=copies[0].name,
                   copies=len(copies), detail=detail)
    _overlaps(directory, where, output)
    _unsafe_names(directory, where, output)
    first = min((e.header_offset for e in directory.entries), default=directory.central_offset)
    prefix = _prefix_format(head) if first > 0 else None
    # A TFLite model with associated files is a flatbuffer followed by a zip: by design.
    if prefix is not None and prefix != "tflite":
        output.add("format.polyglot", where, formats=("zip", prefix),
                   detail=f"{first} bytes precede the first zip member", bytes=first)
    return copy_of


def _prefix_format(head: bytes) -> str:
    from ckptguard.sniff import magic_format

    found = magic_format(head, len(head), "")
    return found[0] if found and found[0] != "zip" else "data"


def _overlaps(directory: Directory, where: Location, output: ParseOutput) -> None:
    ordered = sorted(directory.entries, key=attrgetter("header_offset"))
    reported = 0
    for before, after in itertools.pairwise(ordered):
        end = before.header_offset + LOCAL.size + len(before.raw_name) + before.compressed_size
        if after.header_offset < end and reported < MAX_REPORTED:
            reported += 1
            output.add("zip.overlap", where.child(after.name), name=after.name,
                       other=before.name, detail=f"starts at {after.header_offset}, inside "
                       f"{before.name!r} which runs to {end}")
    if ordered:
        last = ordered[-1]
        end = last.header_offset + LOCAL.size + len(last.raw_name) + last.compressed_size
        if end > directory.central_offset:
            output.add("zip.overlap", where.child(last.name), name=last.name,
                       other="central directory",
                       detail=f"runs to {end}, past the central directory at "
                              f"{directory.central_offset}")


def unsafe_reason(name: str) -> str | None:
    """Why a member name could escape the folder it is extracted to, if it could."""
    if ".." not in name and name[:1] not in ("/", "\\") and name[1:2] != ":" and \
            "\x00" not in name:
        return None
    normal = name.replace("\\", "/")
    if normal.startswith("/") or (len(normal) > 1 and normal[1] == ":"):
        return "absolute path"
    if ".." in normal.split("/"):
        return "parent directory reference (..)"
    if "\x00" in name:
        return "NUL byte in the name"
    return None


def _unsafe_names(directory: Directory, where: Location, output: ParseOutput) -> None:
    reported = 0
    for entry in directory.entries:
        name = entry.name
        # unsafe_reason's own first test, inline: most names need no call at all.
        if ".." not in name and name[:1] not in ("/", "\\") and name[1:2] != ":" and \
                "\x00" not in name:
            continue
        reason = unsafe_reason(name)
        if reason is not None and reported < MAX_REPORTED:
            reported += 1
            output.add("archive.unsafe_path", where.child(entry.name), name=entry.name,
                       reason=reason)
