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
from ckptguard.formats.zipfmt.members import MAX_REPORTED, unsafe_reason
from ckptguard.model import Location
from ckptguard.source import ByteSource, slice_source

BLOCK = 512
TORCH_TAR_RECORDS = ("sys_info", "pickle", "storages", "tensors")
REGULAR = {b"0", b"\x00", b"7"}
LINKS = {b"1": "hard link", b"2": "symbolic link"}
SPECIAL = {b"3": "character device", b"4": "block device", b"6": "fifo"}
MAX_META = 1 << 20  # long-name and pax records read into memory


class TarError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class TarMember:
    name: str
    kind: bytes
    linkname: str
    offset: int  # of the data
    size: int


def _number(field: bytes, offset: int) -> int:
    if field and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\x00", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError(f"bad octal number {text[:12]!r} in header", offset) from None


def _text(field: bytes) -> str:
    return field.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def _pax(record: bytes) -> dict[str, str]:
    values: dict[str, str] = {}
    pos = 0
    while pos < len(record):
        space = record.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(record[pos:space])
        except ValueError:
            break
        if length <= 0:
            break
        key, _, value = record[space + 1:pos + length].rstrip(b"\n").partition(b"=")
        values[key.decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return values


def read_members(source: ByteSource, max_members: int) -> tuple[list[TarMember], bool]:
    """The members in archive order, and whether the member limit cut the list short."""
    members: list[TarMember] = []
    pos = 0
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    while pos + BLOCK <= source.size:
        header = source.read(pos, BLOCK)
        if header == bytes(BLOCK):
            return members, False
        stored = _number(header[148:156], pos + 148)
        actual = sum(header[:148]) + 8 * 32 + sum(header[156:])
        if stored != actual:
            raise TarError(f"header checksum mismatch at offset {pos}", pos)
        kind = header[156:157]
        size = _number(header[124:136], pos + 124)
        data = pos + BLOCK
        if size < 0 or data + size > source.size:
            raise TarError(f"member at offset {pos} declares {size} bytes past the end", pos)
        name = _text(header[0:100])
        if header[257:262] == b"ustar" and header[345:500].strip(b"\x00"):
            name = _text(header[345:500]) + "/" + name
        pos = data + size + (-size % BLOCK)
        if kind in (b"L", b"K", b"x"):
            if size > MAX_META:
                raise TarError(f"extended header of {size} bytes at offset {data}", data)
            body = source.read(data, size)
            if kind == b"L":
                long_name = _text(body)
            elif kind == b"K":
                long_link = _text(body)
            else:
                pax = _pax(body)
            continue
        if kind == b"g":
            continue
        if len(members) >= max_members:
            return members, True
        size = int(pax["size"]) if pax.get("size", "").isdigit() else size
        members.append(TarMember(pax.get("path", long_name or name), kind,
                                 pax.get("linkpath", long_link or _text(header[157:257])),
                                 data, size))
        long_name = long_link = None
        pax = {}
    if pos != source.size:
        where = "a header" if pos < source.size else "the padding of its last member"
        raise TarError(f"archive ends inside {where} (offset {min(pos, source.size)})", pos)
    return members, False


def _facts(members: list[TarMember], where: Location, output: ParseOutput) -> None:
    unsafe = 0
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
    regular = [m for m in members if m.kind in REGULAR]
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
        source = slice_source(artifact.source, member.offset, member.size)
        output.children.append(artifact.child(name, source, format_hint=hint))
    return output
