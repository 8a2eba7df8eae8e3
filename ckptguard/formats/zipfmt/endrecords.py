"""Where zip readers could disagree about which central directory an archive has.

Python's ``zipfile``, Info-ZIP ``unzip`` and torch's reader (miniz) take the *last* end record
signature in the file and ignore what its comment length says; other readers (and older
scanners) take the one whose comment reaches the end of the file, and for ZIP64 archives zipfile
reads the ZIP64 end record right before its locator while miniz follows the locator's offset.
ckptguard judges the loaders' directory and, where another reading is possible, every other
candidate directory too: a payload hidden behind the ambiguity is scanned either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from ckptguard.formats.zipfmt.reader import (
    END,
    SIG_CENTRAL,
    Directory,
    ZipError,
    end_candidates,
    read_directory,
    zip64_records,
)
from ckptguard.source import ByteSource

MAX_ALTERNATES = 8  # other candidate directories read per archive


@dataclass(frozen=True)
class Candidates:
    reasons: tuple[str, ...]  # why readers could disagree (empty: they agree)
    alternates: tuple[Directory, ...]  # other directories a reader could take, readable ones


def _comment_covers(pos: int, fields: tuple[int, ...], target: int) -> bool:
    return pos + END.size <= target < pos + END.size + fields[7]


def _same(one: Directory, other: Directory) -> bool:
    return [(e.raw_name, e.header_offset) for e in one.entries] == \
        [(e.raw_name, e.header_offset) for e in other.entries]


def examine(source: ByteSource, primary: Directory, *, max_entries: int,
            max_bytes: int) -> Candidates:
    """The reasons readers could disagree with the loaders' choice ``primary``, and the other
    directories they could read."""
    size = source.size
    found, short = end_candidates(source)
    reasons: list[str] = []
    others: list[tuple[int, int]] = []  # (end record offset, ZIP64 choice)
    chosen, fields = found[0]
    later_short = [p for p in short if p > chosen]
    if later_short:
        reasons.append(f"an end record signature at offset {later_short[0]} is too close to the "
                       "end of the file: zipfile refuses the archive while torch's reader takes "
                       f"the end record at {chosen}")
    if chosen + END.size + fields[7] > size:
        reasons.append(f"the last end record (offset {chosen}) declares a {fields[7]}-byte "
                       f"comment but only {size - chosen - END.size} bytes follow it: some "
                       "readers refuse it, others look for an earlier end record")
    trailing = source.read(chosen + END.size, size - chosen - END.size)
    if SIG_CENTRAL in trailing:
        reasons.append(f"the comment after the end record at {chosen} holds a central directory "
                       "signature")
    for pos, other in found[1:]:
        covers = _comment_covers(pos, other, chosen)
        fits = pos + END.size + other[7] == size
        if covers or fits:
            why = "its comment hides the last one" if covers else "its comment length fits the file"
            reasons.append(f"an earlier end record at offset {pos} ({why}) leads to another "
                           "central directory for readers that honour comment lengths")
            others.append((pos, 0))
        comment = source.read(pos + END.size, other[7])
        if not covers and (SIG_CENTRAL in comment or b"PK\x05\x06" in comment):
            reasons.append(f"the comment of the end record at {pos} holds zip signatures")
            others.append((pos, 0))
    try:
        records = zip64_records(source, chosen)
    except ZipError:
        records = []
    if len(records) > 1 and records[0][1:] != records[1][1:]:
        reasons.append(f"the ZIP64 locator points at a ZIP64 end record (offset {records[1][0]}) "
                       f"other than the one before it (offset {records[0][0]}): zipfile and "
                       "torch's reader read different central directories")
        others.append((chosen, 1))
    alternates: list[Directory] = []
    for end_at, choice in dict.fromkeys(others):
        if len(alternates) >= MAX_ALTERNATES:
            break
        try:
            directory = read_directory(source, max_entries=max_entries, max_bytes=max_bytes,
                                       end_at=end_at, zip64_choice=choice, partial=True)
        except (ZipError, ValueError):
            continue
        if directory.entries and not _same(directory, primary) and \
                not any(_same(directory, seen) for seen in alternates):
            alternates.append(directory)
    return Candidates(tuple(dict.fromkeys(reasons)), tuple(alternates))
