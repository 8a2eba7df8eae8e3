"""A bounded reader of zip structure: end of central directory (and ZIP64), central directory,
local headers.  It reads structure only; member data is handled by ``members``.

It is tolerant the way loaders are (torch's miniz-based reader and Python's zipfile both locate
the end record by scanning back from the end and take sizes from the central directory), and it
reports where such readers could disagree instead of giving up.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from ckptguard.source import ByteSource

SIG_LOCAL = b"PK\x03\x04"
SIG_CENTRAL = b"PK\x01\x02"
SIG_END = b"PK\x05\x06"
SIG_ZIP64_LOCATOR = b"PK\x06\x07"
SIG_ZIP64_END = b"PK\x06\x06"

END = struct.Struct("<4sHHHHIIH")  # 22 bytes
ZIP64_LOCATOR = struct.Struct("<4sIQI")  # 20 bytes
ZIP64_END = struct.Struct("<4sQHHIIQQQQ")  # 56 bytes
CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # 46 bytes
# The fields of a central record the reader uses: flags, method, crc, compressed size, size,
# name, extra and comment lengths, local header offset (the same 46 bytes, the rest skipped).
CENTRAL_FIELDS = struct.Struct("<8xHH4xIIIHHH8xI")
LOCAL = struct.Struct("<4sHHHHHIIIHH")  # 30 bytes
MAX_COMMENT = 0xFFFF
U16 = 0xFFFF
U32 = 0xFFFFFFFF
FLAG_ENCRYPTED = 0x1
FLAG_DATA_DESCRIPTOR = 0x8
FLAG_UTF8 = 0x800


class ZipError(Exception):
    """The archive's structure cannot be read (becomes a ``parse.error`` fact)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class Entry(NamedTuple):
    """One central directory record, with offsets made absolute within the source.

    A NamedTuple rather than a frozen dataclass: checkpoints have tens of thousands of records
    and a tuple is several times cheaper to create."""

    position: int  # in the central directory
    name: str
    raw_name: bytes
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int


@dataclass(frozen=True)
class LocalHeader:
    raw_name: bytes
    flags: int
    method: int
    crc: int
    compressed_size: int
    size: int
    data_offset: int  # absolute offset of the member's data


@dataclass(frozen=True)
class Directory:
    entries: tuple[Entry, ...]
    prefix: int  # bytes before the archive's own offset 0 (offsets were relative to them)
    central_offset: int  # absolute offset of the central directory
    central_size: int
    declared_entries: int
    zip64: bool
    cut_at: int | None  # the member limit stopped reading after this many entries
    end_offset: int = -1  # absolute offset of the end record it was read from


def decode_name(raw: bytes, flags: int) -> str:
    if flags & FLAG_UTF8:
        return raw.decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def end_candidates(source: ByteSource) -> tuple[list[tuple[int, tuple[int, ...]]], list[int]]:
    """Every end record signature in the last 64 KiB: those with room for a whole record (their
    absolute offset and fields, last first), and the offsets of those too close to the end."""
    size = source.size
    tail_start = max(0, size - END.size - MAX_COMMENT)
    tail = source.read(tail_start, size - tail_start)
    found: list[tuple[int, tuple[int, ...]]] = []
    short: list[int] = []
    pos = tail.rfind(SIG_END)
    while pos >= 0:
        if pos + END.size <= len(tail):
            found.append((tail_start + pos, END.unpack_from(tail, pos)))
        else:
            short.append(tail_start + pos)
        pos = tail.rfind(SIG_END, 0, pos)
    return found, short


def _find_end(source: ByteSource) -> tuple[int, tuple[int, ...]]:
    """The end record the loaders use: Python's zipfile, Info-ZIP unzip and torch's reader
    (miniz) all take the *last* signature in the file, whatever its comment length says."""
    if source.size < END.size:
        raise ZipError("too small to hold a zip end of central directory record", 0)
    found, _ = end_candidates(source)
    if not found:
        raise ZipError("no end of central directory record in the last 64 KiB",
                       max(0, source.size - END.size - MAX_COMMENT))
    return found[0]


def zip64_records(source: ByteSource, end_pos: int) -> list[tuple[int, int, int, int]]:
    """(position, entries, central size, central offset) of each ZIP64 end record the locator
    before ``end_pos`` leads to: the one right before the locator (where zipfile reads it)
    first, then the one at the locator's declared offset (where miniz reads it) if different.
    Empty without a locator."""
    if end_pos < ZIP64_LOCATOR.size:
        return []
    locator = source.read(end_pos - ZIP64_LOCATOR.size, ZIP64_LOCATOR.size)
    if not locator.startswith(SIG_ZIP64_LOCATOR):
        return []
    _, _, declared_pos, _ = ZIP64_LOCATOR.unpack(locator)
    expected = end_pos - ZIP64_LOCATOR.size - ZIP64_END.size
    found: list[tuple[int, int, int, int]] = []
    for pos in dict.fromkeys((expected, declared_pos)):
        raw = source.read(pos, ZIP64_END.size) if pos >= 0 else b""
        if len(raw) == ZIP64_END.size and raw.startswith(SIG_ZIP64_END):
            fields = ZIP64_END.unpack(raw)
            found.append((pos, fields[7], fields[8], fields[9]))
    if not found:
        raise ZipError("ZIP64 locator present but no ZIP64 end of central directory record",
                       expected)
    return found


def _zip64_extra(extra: bytes, size: int, csize: int, offset: int) -> tuple[int, int, int]:
    """Replace the 0xFFFFFFFF fields with the values of the ZIP64 extra field (id 0x0001)."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4:pos + 4 + length]
        if tag == 0x0001:
            values = [v[0] for v in struct.iter_unpack("<Q", body[:len(body) - len(body) % 8])]
            if size == U32 and values:
                size = values.pop(0)
            if csize == U32 and values:
                csize = values.pop(0)
            if offset == U32 and values:
                offset = values.pop(0)
            break
        pos += 4 + length
    return size, csize, offset


def read_directory(source: ByteSource, *, max_entries: int, max_bytes: int,
                   end_at: int | None = None, zip64_choice: int = 0,
                   partial: bool = False) -> Directory:
    """The central directory of the end record the loaders use (or the one at ``end_at``;
    ``zip64_choice`` picks among ``zip64_records``).  With ``partial``, a broken record ends
    the directory instead of failing it (the records before it are what a tolerant reader,
    such as Info-ZIP, still lists)."""
    if end_at is None:
        end_pos, end = _find_end(source)
    else:
        end_pos, end = end_at, END.unpack(source.read(end_at, END.size))
    _, _, _, _, total, cd_size, cd_offset, _ = end
    anchor = end_pos
    records = zip64_records(source, end_pos)
    zip64 = records[min(zip64_choice, len(records) - 1)] if records else None
    if zip64 is not None:
        anchor, total, cd_size, cd_offset = zip64
    actual = anchor - cd_size
    prefix = actual - cd_offset
    if actual < 0 or prefix < 0:
        raise ZipError(f"central directory ({cd_size} bytes at offset {cd_offset}) does not fit "
                       "before its end record", end_pos)
    if cd_size > max_bytes:
        raise ZipError(f"central directory of {cd_size} bytes is larger than the header limit",
                       actual)
    data = source.read(actual, cd_size)
    entries: list[Entry] = []
    pos = 0
    cut_at: int | None = None
    # One bulk read, then a tight loop: checkpoints list tens of thousands of records.  The
    # fields struct skips what is never used (versions, times, disk, attributes).
    size = len(data)
    limit = size - CENTRAL.size
    unpack = CENTRAL_FIELDS.unpack_from
    starts = data.startswith
    append = entries.append
    count = 0
    while pos <= limit and starts(SIG_CENTRAL, pos):
        if count >= max_entries:
            cut_at = count
            break
        flags, method, crc, csize, usize, name_len, extra_len, comment_len, offset = \
            unpack(data, pos)
        name_start = pos + CENTRAL.size
        name_end = name_start + name_len
        raw_name = data[name_start:name_end]
        # ASCII reads the same in UTF-8 and cp437: only other names need decode_name.
        name = raw_name.decode("ascii") if raw_name.isascii() else decode_name(raw_name, flags)
        following = name_end + extra_len + comment_len
        if following > size:
            if partial:
                append(Entry(count, name, raw_name, method, flags, crc, csize, usize,
                             offset + prefix))
                count += 1
                cut_at = count
                break
            raise ZipError(f"central directory record {count} runs past the directory",
                           actual + pos)
        if usize == U32 or csize == U32 or offset == U32:
            usize, csize, offset = _zip64_extra(data[name_end:name_end + extra_len], usize,
                                                csize, offset)
        append(Entry(count, name, raw_name, method, flags, crc, csize, usize, offset + prefix))
        count += 1
        pos = following
    if cut_at is None and len(entries) != total and not partial:
        raise ZipError(f"the end record declares {total} entries but the central directory "
                       f"holds {len(entries)}", actual + pos)
    return Directory(tuple(entries), prefix, actual, cd_size, total, zip64 is not None, cut_at,
                     end_pos)


def read_local(source: ByteSource, entry: Entry) -> LocalHeader:
    raw = source.read(entry.header_offset, LOCAL.size)
    if len(raw) < LOCAL.size or not raw.startswith(SIG_LOCAL):
        raise ZipError(f"no local header for {entry.name!r} at offset {entry.header_offset}",
                       entry.header_offset)
    f = LOCAL.unpack(raw)
    flags, method, crc, csize, usize, name_len, extra_len = f[2], f[3], f[6], f[7], f[8], f[9], \
        f[10]
    names_and_extra = source.read(entry.header_offset + LOCAL.size, name_len + extra_len)
    if len(names_and_extra) < name_len + extra_len:
        raise ZipError(f"local header of {entry.name!r} runs past the end of the file",
                       entry.header_offset)
    usize, csize, _ = _zip64_extra(names_and_extra[name_len:], usize, csize, 0)
    return LocalHeader(names_and_extra[:name_len], flags, method, crc, csize, usize,
                       entry.header_offset + LOCAL.size + name_len + extra_len)


def disagreements(entry: Entry, local: LocalHeader) -> list[tuple[str, str, str]]:
    """(field, central value, local value) where the two headers of one member differ."""
    found: list[tuple[str, str, str]] = []
    if local.raw_name != entry.raw_name:
        found.append(("name", entry.name, decode_name(local.raw_name, local.flags)))
    if local.method != entry.method:
        found.append(("compression method", str(entry.method), str(local.method)))
    if not local.flags & FLAG_DATA_DESCRIPTOR:
        # Without a data descriptor the local header must carry the real values.
        for label, central, here in (("crc32", entry.crc, local.crc),
                                     ("compressed size", entry.compressed_size,
                                      local.compressed_size),
                                     ("size", entry.size, local.size)):
            if here != central and here != U32:
                found.append((label, str(central), str(here)))
    return found


def has_end_record(source: ByteSource, *, attempts: int = 16) -> bool:
    """Whether a zip archive ends the source (the last end record, or one whose comment reaches
    exactly to the end of the file, with a central directory that starts with its signature),
    wherever it begins: how a zip appended to another format is noticed."""
    size = source.size
    if size < END.size:
        return False
    tail_start = max(0, size - END.size - MAX_COMMENT)
    tail = source.read(tail_start, size - tail_start)
    pos = tail.rfind(SIG_END)
    last = True  # the loaders' end record: the last one, whatever its comment length says
    while pos >= 0 and attempts > 0:
        attempts -= 1
        if pos + END.size <= len(tail):
            fields = END.unpack_from(tail, pos)
            end_pos = tail_start + pos
            cd_size = fields[5]
            fits = end_pos + END.size + fields[7] == size
            if fits and cd_size <= end_pos and (
                    _zip64_locator_at(source, end_pos) or (cd_size == 0 and fields[4] == 0)):
                return True
            if (fits or last) and 0 < cd_size <= end_pos and \
                    source.read(end_pos - cd_size, 4) == SIG_CENTRAL:
                return True
            last = False
        pos = tail.rfind(SIG_END, 0, pos)
    return False


def _zip64_locator_at(source: ByteSource, end_pos: int) -> bool:
    return end_pos >= ZIP64_LOCATOR.size and \
        source.read(end_pos - ZIP64_LOCATOR.size, 4) == SIG_ZIP64_LOCATOR
