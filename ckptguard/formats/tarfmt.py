"""Tar archives, read block by block by ckptguard's own header reader: nothing is extracted,
no link is followed, every member is a slice of the archive handed on as a child.

The legacy ``torch.save`` format (``_use_new_zipfile_serialization=False`` on old torch) is a tar
of the records ``sys_info``, ``pickle``, ``storages`` and ``tensors``, each a pickle stream: the
archive is reported as ``torch-tar`` and every one of them is handed on as a pickle.
"""

from __future__ import annotations

from dataclasses import dataclass

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.tar_reader import TarError, TarMember, read_members
from ckptguard.formats.zipfmt.members import MAX_REPORTED, unsafe_reason
from ckptguard.model import Location
from ckptguard.source import ByteSource, slice_source

TORCH_TAR_RECORDS = ("sys_info", "pickle", "storages", "tensors")
LINKS = {b"1": "hard link", b"2": "symbolic link"}
SPECIAL = {b"3": "character device", b"4": "block device", b"6": "fifo"}
# Member types every tar reader agrees on: regular files, folders, links, devices and fifos.
KNOWN = {b"0", b"\x00", b"7", b"5", *LINKS, *SPECIAL}


@dataclass(frozen=True)
class SparseSource:
    """A GNU sparse member as tarfile extracts it: its chunks placed at their offsets, zeros in
    the holes, cut (or padded) to its real size."""

    parent: ByteSource
    data: int  # where the stored chunks begin in the parent
    chunks: tuple[tuple[int, int], ...]
    length: int

    @property
    def size(self) -> int:
        return self.length

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.length:
            return b""
        stop = min(self.length, offset + length)
        out = bytearray(stop - offset)
        stored = self.data
        for start, count in self.chunks:
            lo, hi = max(start, offset), min(start + count, stop)
            if lo < hi:
                piece = self.parent.read(stored + lo - start, hi - lo)
                out[lo - offset:lo - offset + len(piece)] = piece
            stored += count
        return bytes(out)

    def view(self) -> memoryview:
        return memoryview(self.read(0, self.length))


def _facts(members: list[TarMember], where: Location, output: ParseOutput) -> None:
    unsafe = reported = 0
    for member in members:
        here = where.child(member.name)
        reason = unsafe_reason(member.name)
        if reason is None and member.kind in LINKS:
            target = unsafe_reason(member.linkname)
            reason = f"link target {member.linkname!r}: {target}" if target else None
        if reason is not None and unsafe < MAX_REPORTED:
            unsafe += 1
            output.add("archive.unsafe_path", here, name=member.name, reason=reason)
        if member.kind in LINKS:
            output.add("archive.link", here, name=member.name, type=LINKS[member.kind],
                       target=member.linkname)
        elif member.kind in SPECIAL:
            output.add("archive.link", here, name=member.name, type=SPECIAL[member.kind],
                       target="")
        notes = list(member.divergences)
        if member.kind not in KNOWN and member.kind != b"S":
            notes.append(f"member type {member.kind!r} is unknown: tarfile extracts it as a "
                         "regular file, other readers skip it")
        if notes and reported < MAX_REPORTED:
            reported += 1
            output.add("tar.reader_divergence", here, name=member.name,
                       type=repr(member.kind), detail="; ".join(notes))


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    output = ParseOutput(format="tar")
    where = artifact.location
    try:
        members, cut = read_members(artifact.source, ctx.limits.max_archive_members)
    except TarError as exc:
        output.add("parse.error", where, format="tar", error=str(exc), offset=exc.offset,
                   read=exc.offset)
        return output
    if cut:
        output.add("limit.hit", where, limit="max_archive_members", value=len(members),
                   detail=f"only the first {len(members)} tar members were read")
    _facts(members, where, output)
    regular = [m for m in members if m.regular]
    names = {m.name for m in regular}
    torch_tar = all(record in names for record in ("pickle", "storages", "tensors"))
    if torch_tar:
        output.format = "torch-tar"
    seen: dict[str, int] = {}
    for member in regular:
        copy = seen.get(member.name, 0)
        seen[member.name] = copy + 1
        name = member.name if copy == 0 else f"{member.name}#{copy + 1}"
        hint = "pickle" if torch_tar and member.name in TORCH_TAR_RECORDS else None
        source = _member_source(artifact, member, ctx, output)
        output.children.append(artifact.child(name, source, format_hint=hint))
    return output


def _member_source(artifact: Artifact, member: TarMember, ctx: ParseContext,
                   output: ParseOutput) -> ByteSource:
    if member.sparse is None:
        return slice_source(artifact.source, member.offset, member.size)
    length = member.real_size
    limit = ctx.limits.max_total_decompressed
    if length > limit:
        output.add("limit.hit", artifact.location.child(member.name),
                   limit="max_total_decompressed", value=limit,
                   detail=f"sparse member {member.name!r} expands to {length} bytes; only the "
                          f"first {limit} were judged")
        length = limit
    return SparseSource(artifact.source, member.offset, member.sparse, max(0, length))
