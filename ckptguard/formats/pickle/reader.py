"""A tolerant pickle opcode reader over a memoryview (no copy of the stream).

Unlike ``pickletools.genops`` it accepts what CPython's C unpickler accepts: Python 2 byte strings
with non-ASCII content, opcodes that cross FRAME boundaries, and arbitrary bytes between pickles
(the caller decides where to resume).  Arguments are decoded as ``Modules/_pickle.c`` decodes them;
where the C code rejects an argument, the reader raises ``ReadError`` at the opcode's offset.
"""

from __future__ import annotations

import codecs
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ckptguard.formats.pickle.opcodes import OPCODES, Arg
from ckptguard.formats.pickle.values import Blob, HugeInt
from ckptguard.limits import DEFAULT_LIMITS

# Text opcodes carry one line; C has no bound, ckptguard stops at this many bytes (protocol-0
# pickles of real models hold strings of several MB).
MAX_LINE = DEFAULT_LIMITS.max_pickle_line
# LONG1/LONG4 wider than this are kept symbolic instead of converted to an int.
MAX_LONG_BYTES = 1024
DOUBLE = struct.Struct(">d")


class ReadError(Exception):
    """The stream cannot be read past ``offset`` (the offset of the opcode being read)."""

    def __init__(self, reason: str, *, truncated: bool = False, needs: int = -1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.truncated = truncated
        self.needs = needs  # the stream length that would have been enough (-1: unknown)


def _need(pos: int, count: int, end: int) -> None:
    if pos + count > end:
        raise ReadError(f"needs {count} byte(s) at {pos}, stream ends at {end}", truncated=True,
                        needs=pos + count)


def _line(buf: memoryview, pos: int, end: int) -> tuple[bytes, int]:
    """The bytes up to (not including) the next newline, and the position after it."""
    head = bytes(buf[pos:min(end, pos + 64)])  # most lines are short: one copy, one search
    found = head.find(b"\n")
    if found >= 0:
        return head[:found], pos + found + 1
    chunk = 256
    while True:
        stop = min(end, pos + chunk)
        found = bytes(buf[pos:stop]).find(b"\n")
        if found >= 0:
            return bytes(buf[pos:pos + found]), pos + found + 1
        if stop >= end:
            raise ReadError("line argument has no terminating newline", truncated=True)
        if chunk >= MAX_LINE:
            raise ReadError(f"line argument longer than {MAX_LINE} bytes")
        chunk = min(chunk * 4, MAX_LINE)


Reader = Callable[[memoryview, int, int], tuple[Any, int]]


def _none(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    return None, pos


def _u1(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    if pos >= end:
        raise ReadError("needs 1 byte, stream ends", truncated=True)
    return buf[pos], pos + 1


def _u2(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    _need(pos, 2, end)
    return buf[pos] | (buf[pos + 1] << 8), pos + 2


def _i4(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    _need(pos, 4, end)
    return int.from_bytes(buf[pos:pos + 4], "little", signed=True), pos + 4


def _u4(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    _need(pos, 4, end)
    return int.from_bytes(buf[pos:pos + 4], "little"), pos + 4


def _u8(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    _need(pos, 8, end)
    return int.from_bytes(buf[pos:pos + 8], "little"), pos + 8


def _float8(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    _need(pos, 8, end)
    return DOUBLE.unpack_from(buf, pos)[0], pos + 8


# Text numbers are read as the C unpickler reads them: INT with strtol(base 0) and Python's int()
# as a fallback, LONG with int(base 0) after dropping one "L", GET/PUT with int(base 10), FLOAT
# with PyOS_string_to_double; the C functions see a C string, so a NUL byte ends the number.
C_SPACE = b" \t\n\v\f\r"
LONG_MIN, LONG_MAX = -(1 << 63), (1 << 63) - 1


def _c_string(text: bytes) -> bytes:
    return text.split(b"\x00", 1)[0]


def _strtol(text: bytes) -> int | None:
    """``strtol(s, &end, 0)`` accepted only when ``end`` is the line's end or a NUL byte."""
    i, n = 0, len(text)
    while i < n and text[i] in C_SPACE:
        i += 1
    negative = i < n and text[i] == 0x2D
    if i < n and text[i] in b"+-":
        i += 1
    base = 10
    if text[i:i + 2] in (b"0x", b"0X") and i + 2 < n and text[i + 2:i + 3].isalnum() and \
            chr(text[i + 2]).lower() in "0123456789abcdef":
        base, i = 16, i + 2
    elif text[i:i + 1] == b"0":
        base = 8
    allowed = "0123456789abcdef"[:base]
    start = i
    while i < n and chr(text[i]).lower() in allowed:
        i += 1
    if i == start or (i < n and text[i] != 0):
        return None
    value = int(text[start:i], base) * (-1 if negative else 1)
    return value if LONG_MIN <= value <= LONG_MAX else None


def _python_int(text: bytes, base: int) -> int:
    try:
        return int(_c_string(text), base)
    except ValueError:
        raise ReadError(f"invalid integer literal {text[:40]!r}") from None


def _int_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    if not text:
        raise ReadError("INT argument is an empty line")
    value = _strtol(text)
    if value is None:
        return _python_int(text, 0), nxt
    if len(text) == 2 and value in (0, 1):  # "00" / "01" (and "+1", " 0", "-0"): a bool
        return value == 1, nxt
    return value, nxt


def _parse_int(text: bytes) -> int:
    """A memo index (GET/PUT) as ``PyLong_FromString(s, NULL, 10)`` reads it."""
    if text.isdigit():  # the common case: plain ASCII digits
        return int(text)
    return _python_int(text, 10)


def _long_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    if not text:
        raise ReadError("LONG argument is an empty line")
    if text.endswith(b"L"):
        text = text[:-1]
    return _python_int(text, 0), nxt


def _float_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    number = _c_string(text)
    # PyOS_string_to_double takes no surrounding whitespace and no underscores.
    if not text or number != number.strip() or b"_" in number:
        raise ReadError(f"invalid float literal {text[:40]!r}")
    try:
        return float(number), nxt
    except ValueError:
        raise ReadError(f"invalid float literal {text[:40]!r}") from None


def _decimal_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    if not text:
        raise ReadError("memo index is an empty line")
    value = _parse_int(text)
    if value < 0:
        raise ReadError("negative memo index")
    return value, nxt


def _string_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    if len(text) < 2 or text[0] != text[-1] or text[:1] not in (b"'", b'"'):
        raise ReadError("the STRING opcode argument must be quoted")
    try:
        data: bytes = codecs.escape_decode(text[1:-1])[0]
    except ValueError as exc:
        raise ReadError(f"invalid escape in STRING: {exc}") from None
    return Blob(pos, len(data), memoryview(data), textual=True, contiguous=False), nxt


def _unicode_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    try:
        return text.decode("raw-unicode-escape"), nxt
    except UnicodeDecodeError as exc:
        raise ReadError(f"invalid raw-unicode-escape text: {exc.reason}") from None


def _ascii_line(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    text, nxt = _line(buf, pos, end)
    try:
        return text.decode("ascii"), nxt
    except UnicodeDecodeError:
        raise ReadError("persistent IDs in protocol 0 must be ASCII strings") from None


def _two_lines(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    first, mid = _line(buf, pos, end)
    second, nxt = _line(buf, mid, end)
    try:
        return (first.decode("utf-8"), second.decode("utf-8")), nxt
    except UnicodeDecodeError:
        raise ReadError("module or name is not valid UTF-8") from None


def _blob(buf: memoryview, start: int, length: int, end: int, textual: bool) -> tuple[Any, int]:
    _need(start, length, end)
    return Blob(start, length, buf[start:start + length], textual=textual), start + length


def _bytes1(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u1(buf, pos, end)
    return _blob(buf, start, length, end, False)


def _string1(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u1(buf, pos, end)
    return _blob(buf, start, length, end, True)


def _bytes4(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u4(buf, pos, end)
    return _blob(buf, start, length, end, False)


def _bytes4_signed(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _i4(buf, pos, end)
    if length < 0:
        raise ReadError("BINSTRING pickle has negative byte count")
    return _blob(buf, start, length, end, True)


def _bytes8(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u8(buf, pos, end)
    return _blob(buf, start, length, end, False)


def _text(buf: memoryview, start: int, length: int, end: int) -> tuple[Any, int]:
    _need(start, length, end)
    try:
        return str(buf[start:start + length], "utf-8", "surrogatepass"), start + length
    except UnicodeDecodeError as exc:
        raise ReadError(f"invalid UTF-8 in string: {exc.reason}") from None


def _text1(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    if pos >= end:
        raise ReadError("needs 1 byte, stream ends", truncated=True)
    return _text(buf, pos + 1, buf[pos], end)


def _text4(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u4(buf, pos, end)
    return _text(buf, start, length, end)


def _text8(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u8(buf, pos, end)
    return _text(buf, start, length, end)


def _long(buf: memoryview, start: int, length: int, end: int) -> tuple[Any, int]:
    _need(start, length, end)
    if length > MAX_LONG_BYTES:
        return HugeInt(start, length), start + length
    return int.from_bytes(buf[start:start + length], "little", signed=True), start + length


def _long1(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _u1(buf, pos, end)
    return _long(buf, start, length, end)


def _long4(buf: memoryview, pos: int, end: int) -> tuple[Any, int]:
    length, start = _i4(buf, pos, end)
    if length < 0:
        raise ReadError("LONG pickle has negative byte count")
    return _long(buf, start, length, end)


_ARG_READERS: dict[Arg, Reader] = {
    Arg.NONE: _none, Arg.U1: _u1, Arg.U2: _u2, Arg.I4: _i4, Arg.U4: _u4, Arg.U8: _u8,
    Arg.FLOAT8: _float8, Arg.INT_LINE: _int_line, Arg.LONG_LINE: _long_line,
    Arg.FLOAT_LINE: _float_line, Arg.DECIMAL_LINE: _decimal_line,
    Arg.STRING_LINE: _string_line, Arg.UNICODE_LINE: _unicode_line,
    Arg.ASCII_LINE: _ascii_line, Arg.TWO_LINES: _two_lines, Arg.BYTES1: _bytes1,
    Arg.STRING1: _string1,
    Arg.BYTES4: _bytes4, Arg.BYTES4_SIGNED: _bytes4_signed, Arg.BYTES8: _bytes8,
    Arg.TEXT1: _text1, Arg.TEXT4: _text4, Arg.TEXT8: _text8, Arg.LONG1: _long1,
    Arg.LONG4: _long4,
}

# Indexed by opcode byte: the argument reader, or None for an invalid opcode.
ARG_READERS: tuple[Reader | None, ...] = tuple(
    _ARG_READERS[OPCODES[code].arg] if code in OPCODES else None for code in range(256))


@dataclass(frozen=True)
class Op:
    offset: int
    code: int
    name: str
    arg: Any
    end: int  # offset of the next opcode


def read_op(buf: memoryview, pos: int, end: int) -> Op:
    """The opcode at ``pos``; raises ReadError (truncated or invalid)."""
    if pos >= end:
        raise ReadError("stream ends before STOP", truncated=True)
    code = buf[pos]
    reader = ARG_READERS[code]
    if reader is None:
        raise ReadError(f"invalid opcode 0x{code:02x}")
    arg, nxt = reader(buf, pos + 1, end)
    return Op(pos, code, OPCODES[code].name, arg, nxt)


def iter_ops(buf: memoryview, start: int = 0, end: int | None = None) -> Iterator[Op]:
    """The opcodes of one pickle from ``start`` through its STOP (for inspection and tests)."""
    stop = len(buf) if end is None else end
    pos = start
    while True:
        op = read_op(buf, pos, stop)
        yield op
        if op.name == "STOP":
            return
        pos = op.end


# -- the stream as a file-reading unpickler consumes it ----------------------------------------
#
# ``pickle.loads(data)`` reads the stream in order.  An Unpickler over a *file object* (what
# ``torch.load`` builds over an ``io.BytesIO`` of ``data.pkl``, what ``pickle.load(f)`` and
# joblib build) reads FRAME bodies into a buffer: a fixed-size read or a line that does not fit
# in what is left of that buffer is read afresh from the file, after the frame, and the rest of
# the frame is never read (``_Unpickler_Read``/``_Unpickler_Readline`` in Modules/_pickle.c);
# only BINBYTES, SHORT_BINBYTES, BINBYTES8 and BYTEARRAY8 bodies (``_Unpickler_ReadInto``) carry
# on from the buffer into the file.  A new Unpickler on the same file (the next pickle) starts
# where the file is, after the frame.  Without a peek() method (io.BytesIO) this is exact; with
# one (open(..., "rb")) CPython reads the same way once a frame is larger than its prefetch.

# Per argument layout: the reads the C unpickler makes ("r<n>" fixed, "line", "count<n>" a
# length of n bytes then a body read by _Unpickler_Read, "into<n>" the same with _ReadInto).
_FILE_READS: dict[Arg, tuple[str, ...]] = {
    Arg.NONE: (), Arg.U1: ("r1",), Arg.U2: ("r2",), Arg.I4: ("r4",), Arg.U4: ("r4",),
    Arg.U8: ("r8",), Arg.FLOAT8: ("r8",), Arg.INT_LINE: ("line",), Arg.LONG_LINE: ("line",),
    Arg.FLOAT_LINE: ("line",), Arg.DECIMAL_LINE: ("line",), Arg.STRING_LINE: ("line",),
    Arg.UNICODE_LINE: ("line",), Arg.ASCII_LINE: ("line",), Arg.TWO_LINES: ("line", "line"),
    Arg.BYTES1: ("into1",), Arg.STRING1: ("count1",), Arg.BYTES4: ("into4",),
    Arg.BYTES4_SIGNED: ("count4",), Arg.BYTES8: ("into8",), Arg.TEXT1: ("count1",),
    Arg.TEXT4: ("count4",), Arg.TEXT8: ("count8",), Arg.LONG1: ("count1",),
    Arg.LONG4: ("count4",),
}
FRAME_CODE = 0x95
STOP_CODE = 0x2E
MAX_FILE_OPS = 50_000_000
# _FILE_READS compiled once per opcode: (kind, width) steps, kind one of these.
_LINE, _RAW, _INTO, _COUNT = range(4)
_KINDS = {"line": _LINE, "r": _RAW, "into": _INTO, "count": _COUNT}


def _compiled_steps(steps: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    compiled = []
    for step in steps:
        name = step.rstrip("0123456789")
        compiled.append((_KINDS[name], int(step[len(name):] or 0)))
    return tuple(compiled)


# Per opcode byte: its steps and whether a zero count means no body (LONG1/LONG4); None for a
# byte that is no opcode.
_FILE_STEPS: list[tuple[tuple[tuple[int, int], ...], bool] | None] = [
    (_compiled_steps(_FILE_READS[OPCODES[code].arg]), OPCODES[code].arg in (Arg.LONG1, Arg.LONG4))
    if code in OPCODES else None for code in range(256)]


class _FileCursor:
    """Position ``r`` in a buffer that ends at ``bend`` (which is also where the file is)."""

    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.end = len(buf)
        self.r = 0
        self.bend = 0
        self.skipped = False

    def read(self, count: int) -> int:
        """Offset of ``count`` bytes read with _Unpickler_Read."""
        if self.r + count <= self.bend:
            start = self.r
            self.r += count
            return start
        if self.r < self.bend:
            self.skipped = True  # the rest of the buffer (a frame) is never read
        start = self.bend
        _need(start, count, self.end)
        self.bend = self.r = start + count
        return start

    def read_into(self, count: int) -> int:
        """_Unpickler_ReadInto: the rest of the buffer, then the file: contiguous."""
        start = self.r
        _need(start, count, self.end)
        self.r = start + count
        self.bend = max(self.bend, self.r)
        return start

    def line(self) -> tuple[int, int]:
        found = bytes(self.buf[self.r:self.bend]).find(b"\n")
        if found >= 0:
            start = self.r
            self.r += found + 1
            return start, self.r
        if self.r < self.bend:
            self.skipped = True
        start = self.bend
        stop = bytes(self.buf[start:min(self.end, start + MAX_LINE)]).find(b"\n")
        if stop < 0:
            raise ReadError("line argument has no terminating newline", truncated=True)
        self.bend = self.r = start + stop + 1
        return start, self.r

    def new_unpickler(self) -> None:
        """A new Unpickler on the same file starts with an empty buffer where the file is."""
        if self.r < self.bend:
            self.skipped = True
        self.r = self.bend


def _number_at(buf: memoryview, start: int, size: int) -> int:
    return int.from_bytes(buf[start:start + size], "little", signed=size == 4)


def file_reading(buf: memoryview, max_pickles: int) -> bytes | None:
    """The bytes a file-reading C unpickler consumes as opcodes and arguments, in order and
    without FRAME opcodes, for up to ``max_pickles`` pickles read one after another; None when
    that is exactly what an in-memory reading sees (no frame is left unread).  Where the file
    reading fails (an invalid opcode, the end of the stream) the bytes stop there."""
    cursor = _FileCursor(buf)
    out = bytearray()
    ops = 0
    pickles = 0
    steps_of = _FILE_STEPS
    try:
        while pickles < max_pickles and cursor.bend < cursor.end and ops < MAX_FILE_OPS:
            if pickles:
                cursor.new_unpickler()
            while ops < MAX_FILE_OPS:
                ops += 1
                if cursor.r < cursor.bend:  # cursor.read(1) inlined: the byte is buffered
                    at = cursor.r
                    cursor.r = at + 1
                else:
                    at = cursor.read(1)
                code = buf[at]
                entry = steps_of[code]
                if entry is None:
                    out.append(code)
                    raise ReadError(f"invalid opcode 0x{code:02x}")
                if code == FRAME_CODE:
                    size = _number_at(buf, cursor.read(8), 8)
                    cursor.r = cursor.read(size)  # the body is buffered, then read from its start
                    continue
                steps, long_arg = entry
                mark = len(out)
                out.append(code)
                try:
                    for kind, width in steps:
                        if kind == _LINE:
                            start, stop = cursor.line()
                            out += buf[start:stop]
                            continue
                        head = cursor.read(width)
                        out += buf[head:head + width]
                        if kind == _RAW:
                            continue
                        count = _number_at(buf, head, width)
                        if count < 0 or (count == 0 and long_arg):
                            continue
                        body = cursor.read_into(count) if kind == _INTO else \
                            cursor.read(count)
                        out += buf[body:body + count]
                except ReadError:
                    del out[mark:]  # an opcode whose argument cannot be read is not read
                    raise
                if code == STOP_CODE:
                    break
            pickles += 1
    except ReadError:
        pass
    return bytes(out) if cursor.skipped else None
