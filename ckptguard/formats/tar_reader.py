"""Tar headers read with Python's ``tarfile`` offset rules (CPython ``Lib/tarfile.py``), which is
what loaders and ``extractall`` use: where a reader that stops at the ustar fields would see other
members, ckptguard sees what ``tarfile`` extracts and records where they disagree.

The rules followed: a pax ``size`` (from an ``x`` header, or from a global ``g`` header once an
``x`` header follows) moves the next header; GNU long names and links; global pax headers apply
to every later member; links, folders, devices and fifos have no data (their ``size`` is not
skipped); unknown types skip their data and are extracted as regular files; GNU sparse members
(old ``S`` headers and pax 0.0/0.1/1.0) are rebuilt with their holes; both checksums are accepted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from ckptguard.source import ByteSource

BLOCK = 512
REGULAR = (b"0", b"\x00", b"7", b"S")  # tarfile's REGULAR_TYPES
SUPPORTED = (b"0", b"\x00", b"1", b"2", b"5", b"6", b"7", b"3", b"4", b"L", b"K", b"S")
GNU = (b"L", b"K", b"S")
PAX = (b"x", b"g", b"X")
MAX_META = 1 << 20  # long-name and pax records read into memory
MAX_SPARSE = 4096  # sparse map entries per member
PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


class TarError(ValueError):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


@dataclass(frozen=True)
class TarMember:
    name: str
    kind: bytes
    linkname: str
    offset: int  # of the data (what extraction reads from)
    size: int  # bytes extraction reads (the sum of the chunks for a sparse member)
    header: int = 0  # offset of the member's first header
    sparse: tuple[tuple[int, int], ...] | None = None  # (offset in the file, bytes) chunks
    real_size: int = -1  # size of the extracted file of a sparse member
    divergences: tuple[str, ...] = ()  # where other tar readers would read this differently

    @property
    def regular(self) -> bool:
        """Whether tarfile extracts it as a regular file (unknown types included)."""
        return self.kind in REGULAR or self.kind not in SUPPORTED


@dataclass
class _State:
    source: ByteSource
    globals: dict[str, str] = field(default_factory=dict)


def block(count: int) -> int:
    return -(-count // BLOCK) * BLOCK


def number(raw: bytes, offset: int) -> int:
    """A numeric field as tarfile reads it: base-256 when the first byte is 0x80 or 0xff, octal
    text up to the first NUL otherwise."""
    if raw[:1] in (b"\x80", b"\xff"):
        value = int.from_bytes(raw[1:], "big")
        return value - 256 ** (len(raw) - 1) if raw[0] == 0xFF else value
    text = raw.split(b"\x00", 1)[0]
    try:
        return int(text.decode("ascii").strip() or "0", 8)
    except (UnicodeDecodeError, ValueError):
        raise TarError(f"bad number {text[:12]!r} in the header at offset {offset}", offset) \
            from None


def text(raw: bytes) -> str:
    return raw.split(b"\x00", 1)[0].decode("utf-8", "surrogateescape")


def pax_records(body: bytes, into: dict[str, str], offset: int) -> None:
    pos = 0
    while True:
        match = PAX_RECORD.match(body, pos)
        if match is None:
            return
        length = int(match.group(1))
        if length == 0:
            raise TarError(f"pax record of length 0 at offset {offset + pos}", offset + pos)
        value = body[match.end(2) + 1:match.start(1) + length - 1]
        into[match.group(2).decode("utf-8", "replace")] = value.decode("utf-8", "surrogateescape")
        pos += length


def _pax_int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        return 0


def _apply(member: TarMember, pax: dict[str, str]) -> TarMember:
    """tarfile's _apply_pax_info: name, link and size fields, in the order the records came."""
    name, link, size = member.name, member.linkname, member.size
    for key, value in pax.items():
        if key in ("path", "GNU.sparse.name"):
            name = value.rstrip("/") if key == "path" else value
        elif key == "linkpath":
            link = value
        elif key in ("size", "GNU.sparse.size", "GNU.sparse.realsize"):
            size = _pax_int(value)
    return replace(member, name=name, linkname=link, size=size)


def _sparse_pairs(numbers: list[int]) -> tuple[tuple[int, int], ...]:
    return tuple(zip(numbers[::2], numbers[1::2], strict=False))[:MAX_SPARSE]


def _check_size(size: int, offset: int) -> None:
    if size < 0:
        raise TarError(f"negative size {size} at offset {offset}: tarfile would read the "
                       "archive backwards (and loop)", offset)


MAX_CHAIN = 64  # long-name and pax headers in front of one member


def read_member(state: _State, pos: int, chain: int = 0) -> tuple[TarMember, int] | None:
    """The member whose first header is at ``pos`` and the offset of the next header; None at
    the end of the archive (a zero block or the end of the file)."""
    source = state.source
    if chain > MAX_CHAIN:
        raise TarError(f"more than {MAX_CHAIN} extended headers in a row at offset {pos}", pos)
    header = source.read(pos, BLOCK)
    if not header or header == bytes(BLOCK):
        return None
    if len(header) < BLOCK:
        raise TarError(f"archive ends inside a header (offset {pos})", pos)
    stored = number(header[148:156], pos + 148)
    unsigned = 256 + sum(header[:148]) + sum(header[156:])
    signed = 256 + sum(b - 256 if b > 127 else b for b in header[:148] + header[156:])
    if stored not in (unsigned, signed):
        raise TarError(f"header checksum mismatch at offset {pos}", pos)
    for start, end in ((100, 108), (108, 116), (116, 124), (136, 148), (329, 337), (337, 345)):
        number(header[start:end], pos + start)  # tarfile stops at a malformed field
    kind = header[156:157]
    size = number(header[124:136], pos + 124)
    _check_size(size, pos + 124)
    name = text(header[0:100])
    if kind == b"\x00" and name.endswith("/"):
        kind = b"5"
    if kind == b"5":
        name = name.rstrip("/")
    prefix = text(header[345:500])
    if prefix and kind not in GNU:
        name = prefix + "/" + name
    data = pos + BLOCK
    member = TarMember(name, kind, text(header[157:257]), data, size, pos)
    if kind in (b"L", b"K"):
        return _long_name(state, member, chain)
    if kind == b"S":
        return _old_sparse(state, member, header)
    if kind in PAX:
        return _pax(state, member, chain)
    following = data + (block(size) if member.regular else 0)
    return _apply(member, state.globals), following


def _long_name(state: _State, member: TarMember, chain: int) -> tuple[TarMember, int] | None:
    if member.size > MAX_META:
        raise TarError(f"long name of {member.size} bytes at offset {member.offset}",
                       member.offset)
    value = text(state.source.read(member.offset, block(member.size)))
    found = read_member(state, member.offset + block(member.size), chain + 1)
    if found is None:
        raise TarError(f"GNU long name at offset {member.header} is followed by no member",
                       member.header)
    nxt, following = found
    if member.kind == b"L":
        nxt = replace(nxt, name=value.rstrip("/") if nxt.kind == b"5" else value)
    else:
        nxt = replace(nxt, linkname=value)
    return replace(nxt, header=member.header), following


def _old_sparse(state: _State, member: TarMember, header: bytes) -> tuple[TarMember, int]:
    numbers: list[int] = []
    for index in range(4):
        at = 386 + 24 * index
        numbers += [number(header[at:at + 12], member.header + at),
                    number(header[at + 12:at + 24], member.header + at + 12)]
    extended = header[482] != 0
    real = number(header[483:495], member.header + 483)
    data = member.offset
    while extended:
        ext = state.source.read(data, BLOCK)
        if len(ext) < BLOCK:
            raise TarError(f"sparse header block at offset {data} runs past the end", data)
        for index in range(21):
            at = 24 * index
            try:
                offset, count = number(ext[at:at + 12], data), number(ext[at + 12:at + 24], data)
            except TarError:
                break
            if offset and count:
                numbers += [offset, count]
        extended = ext[504] != 0
        data += BLOCK
    chunks = _sparse_pairs(numbers)
    return replace(member, offset=data, sparse=chunks, real_size=real,
                   size=sum(count for _, count in chunks),
                   divergences=("GNU sparse member (type S): tarfile extracts it as a regular "
                                "file rebuilt from its chunks",)), data + block(member.size)


def _pax(state: _State, member: TarMember, chain: int) -> tuple[TarMember, int] | None:
    if member.size > MAX_META:
        raise TarError(f"extended header of {member.size} bytes at offset {member.offset}",
                       member.offset)
    body = state.source.read(member.offset, block(member.size))
    pax = state.globals if member.kind == b"g" else dict(state.globals)
    pax_records(body, pax, member.offset)
    found = read_member(state, member.offset + block(member.size), chain + 1)
    if found is None:
        return None  # a pax header at the end applies to nothing
    nxt, following = found
    notes = list(nxt.divergences)
    if member.kind == b"g" and pax.keys() & {"path", "linkpath", "size"}:
        notes.append("a global pax header renames or resizes every later member")
    pax_sparse = "GNU.sparse.map" in pax or "GNU.sparse.size" in pax or \
        (pax.get("GNU.sparse.major") == "1" and pax.get("GNU.sparse.minor") == "0")
    if pax_sparse:
        nxt = _pax_sparse(state, nxt, pax, body)
        notes.append("GNU sparse member (pax): tarfile extracts it rebuilt from its chunks")
    if member.kind in (b"x", b"X"):
        ustar = nxt.size
        nxt = _apply(nxt, pax)
        if "size" in pax:
            _check_size(nxt.size, member.offset)
            following = nxt.offset + (block(nxt.size) if nxt.regular else 0)
            if nxt.size != ustar and nxt.sparse is None:
                notes.append(f"its pax size ({nxt.size}) differs from its header size "
                             f"({ustar}): readers without pax support find other members")
    if pax_sparse and nxt.sparse is not None:
        nxt = replace(nxt, real_size=nxt.size, size=sum(count for _, count in nxt.sparse))
    return replace(nxt, header=member.header, divergences=tuple(dict.fromkeys(notes))), following


def _pax_sparse(state: _State, member: TarMember, pax: dict[str, str],
                body: bytes) -> TarMember:
    if "GNU.sparse.map" in pax:
        listed = [_pax_int(x) for x in pax["GNU.sparse.map"].split(",")]
        return replace(member, sparse=_sparse_pairs(listed))
    if "GNU.sparse.size" in pax:
        offsets = [int(m) for m in re.findall(rb"\d+ GNU.sparse.offset=(\d+)\n", body)]
        counts = [int(m) for m in re.findall(rb"\d+ GNU.sparse.numbytes=(\d+)\n", body)]
        return replace(member, sparse=tuple(zip(offsets, counts, strict=False))[:MAX_SPARSE])
    # Version 1.0: the map is text at the start of the data, in whole blocks.
    data = member.offset
    buffer = state.source.read(data, BLOCK)
    position = data + BLOCK
    first, _, buffer = buffer.partition(b"\n")
    wanted = _pax_int(first.decode("ascii", "replace")) * 2
    numbers: list[int] = []
    while len(numbers) < min(wanted, 2 * MAX_SPARSE):
        if b"\n" not in buffer:
            more = state.source.read(position, BLOCK)
            if not more:
                raise TarError(f"sparse map at offset {data} runs past the end", data)
            buffer += more
            position += BLOCK
        line, _, buffer = buffer.partition(b"\n")
        numbers.append(_pax_int(line.decode("ascii", "replace")))
    return replace(member, offset=position, sparse=_sparse_pairs(numbers))


def read_members(source: ByteSource, max_members: int) -> tuple[list[TarMember], bool]:
    """The members in archive order, and whether the member limit cut the list short."""
    state = _State(source)
    members: list[TarMember] = []
    pos = 0
    seen: set[int] = set()
    while True:
        if pos in seen:
            raise TarError(f"the header at offset {pos} is read twice: the archive loops", pos)
        seen.add(pos)
        if pos > source.size:  # tarfile: "unexpected end of data"
            raise TarError(f"archive ends inside the data of its last member (offset "
                           f"{source.size})", source.size)
        found = read_member(state, pos)
        if found is None:
            return members, False
        member, pos = found
        if len(members) >= max_members:
            return members, True
        stored = member.size if member.regular else 0
        if member.offset + stored > source.size:
            raise TarError(f"member at offset {member.header} declares {stored} bytes past the "
                           "end", member.header)
        members.append(member)
