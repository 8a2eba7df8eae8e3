"""The pickle opcode table for protocols 0-5: names, the protocol that introduced each opcode, and
how its argument is laid out in the stream.  Argument decoding lives in ``reader.py``.

Layouts follow CPython's C unpickler (``Modules/_pickle.c``), which is what ``pickle.load`` runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Arg(enum.Enum):
    """How an opcode's argument is encoded."""

    NONE = "none"
    U1 = "u1"  # unsigned byte
    U2 = "u2"  # unsigned 16-bit little endian
    I4 = "i4"  # signed 32-bit little endian
    U4 = "u4"  # unsigned 32-bit little endian
    U8 = "u8"  # unsigned 64-bit little endian
    FLOAT8 = "float8"  # big-endian IEEE double
    INT_LINE = "int_line"  # decimal text line (INT: "01"/"00" mean True/False)
    LONG_LINE = "long_line"  # decimal text line with optional trailing "L"
    FLOAT_LINE = "float_line"
    DECIMAL_LINE = "decimal_line"  # memo index as text (GET/PUT)
    STRING_LINE = "string_line"  # quoted, backslash-escaped bytes (protocol 0 STRING)
    UNICODE_LINE = "unicode_line"  # raw-unicode-escape text
    ASCII_LINE = "ascii_line"  # PERSID
    TWO_LINES = "two_lines"  # "module\nname\n" (GLOBAL, INST)
    BYTES1 = "bytes1"  # u1 length + bytes
    STRING1 = "string1"  # u1 length + a Python 2 byte string (SHORT_BINSTRING)
    BYTES4 = "bytes4"  # u4 length + bytes
    BYTES4_SIGNED = "bytes4_signed"  # i4 length + bytes (BINSTRING: negative is an error)
    BYTES8 = "bytes8"
    TEXT1 = "text1"  # u1 length + UTF-8
    TEXT4 = "text4"
    TEXT8 = "text8"
    LONG1 = "long1"  # u1 length + two's complement little endian
    LONG4 = "long4"  # i4 length + two's complement little endian


@dataclass(frozen=True)
class OpInfo:
    code: int
    name: str
    arg: Arg
    proto: int


_TABLE: tuple[tuple[bytes, str, Arg, int], ...] = (
    (b"(", "MARK", Arg.NONE, 0),
    (b".", "STOP", Arg.NONE, 0),
    (b"0", "POP", Arg.NONE, 0),
    (b"1", "POP_MARK", Arg.NONE, 1),
    (b"2", "DUP", Arg.NONE, 0),
    (b"F", "FLOAT", Arg.FLOAT_LINE, 0),
    (b"I", "INT", Arg.INT_LINE, 0),
    (b"J", "BININT", Arg.I4, 1),
    (b"K", "BININT1", Arg.U1, 1),
    (b"L", "LONG", Arg.LONG_LINE, 0),
    (b"M", "BININT2", Arg.U2, 1),
    (b"N", "NONE", Arg.NONE, 0),
    (b"P", "PERSID", Arg.ASCII_LINE, 0),
    (b"Q", "BINPERSID", Arg.NONE, 1),
    (b"R", "REDUCE", Arg.NONE, 0),
    (b"S", "STRING", Arg.STRING_LINE, 0),
    (b"T", "BINSTRING", Arg.BYTES4_SIGNED, 1),
    (b"U", "SHORT_BINSTRING", Arg.STRING1, 1),
    (b"V", "UNICODE", Arg.UNICODE_LINE, 0),
    (b"X", "BINUNICODE", Arg.TEXT4, 1),
    (b"a", "APPEND", Arg.NONE, 0),
    (b"b", "BUILD", Arg.NONE, 0),
    (b"c", "GLOBAL", Arg.TWO_LINES, 0),
    (b"d", "DICT", Arg.NONE, 0),
    (b"}", "EMPTY_DICT", Arg.NONE, 1),
    (b"e", "APPENDS", Arg.NONE, 1),
    (b"g", "GET", Arg.DECIMAL_LINE, 0),
    (b"h", "BINGET", Arg.U1, 1),
    (b"i", "INST", Arg.TWO_LINES, 0),
    (b"j", "LONG_BINGET", Arg.U4, 1),
    (b"l", "LIST", Arg.NONE, 0),
    (b"]", "EMPTY_LIST", Arg.NONE, 1),
    (b"o", "OBJ", Arg.NONE, 1),
    (b"p", "PUT", Arg.DECIMAL_LINE, 0),
    (b"q", "BINPUT", Arg.U1, 1),
    (b"r", "LONG_BINPUT", Arg.U4, 1),
    (b"s", "SETITEM", Arg.NONE, 0),
    (b"t", "TUPLE", Arg.NONE, 0),
    (b")", "EMPTY_TUPLE", Arg.NONE, 1),
    (b"u", "SETITEMS", Arg.NONE, 1),
    (b"G", "BINFLOAT", Arg.FLOAT8, 1),
    (b"\x80", "PROTO", Arg.U1, 2),
    (b"\x81", "NEWOBJ", Arg.NONE, 2),
    (b"\x82", "EXT1", Arg.U1, 2),
    (b"\x83", "EXT2", Arg.U2, 2),
    (b"\x84", "EXT4", Arg.I4, 2),
    (b"\x85", "TUPLE1", Arg.NONE, 2),
    (b"\x86", "TUPLE2", Arg.NONE, 2),
    (b"\x87", "TUPLE3", Arg.NONE, 2),
    (b"\x88", "NEWTRUE", Arg.NONE, 2),
    (b"\x89", "NEWFALSE", Arg.NONE, 2),
    (b"\x8a", "LONG1", Arg.LONG1, 2),
    (b"\x8b", "LONG4", Arg.LONG4, 2),
    (b"B", "BINBYTES", Arg.BYTES4, 3),
    (b"C", "SHORT_BINBYTES", Arg.BYTES1, 3),
    (b"\x8c", "SHORT_BINUNICODE", Arg.TEXT1, 4),
    (b"\x8d", "BINUNICODE8", Arg.TEXT8, 4),
    (b"\x8e", "BINBYTES8", Arg.BYTES8, 4),
    (b"\x8f", "EMPTY_SET", Arg.NONE, 4),
    (b"\x90", "ADDITEMS", Arg.NONE, 4),
    (b"\x91", "FROZENSET", Arg.NONE, 4),
    (b"\x92", "NEWOBJ_EX", Arg.NONE, 4),
    (b"\x93", "STACK_GLOBAL", Arg.NONE, 4),
    (b"\x94", "MEMOIZE", Arg.NONE, 4),
    (b"\x95", "FRAME", Arg.U8, 4),
    (b"\x96", "BYTEARRAY8", Arg.BYTES8, 5),
    (b"\x97", "NEXT_BUFFER", Arg.NONE, 5),
    (b"\x98", "READONLY_BUFFER", Arg.NONE, 5),
)

OPCODES: dict[int, OpInfo] = {
    raw[0]: OpInfo(raw[0], name, arg, proto) for raw, name, arg, proto in _TABLE
}
BY_NAME: dict[str, OpInfo] = {info.name: info for info in OPCODES.values()}
HIGHEST_PROTOCOL = 5


def code_of(name: str) -> int:
    return BY_NAME[name].code


def name_of(code: int) -> str:
    info = OPCODES.get(code)
    return info.name if info is not None else f"<invalid 0x{code:02x}>"
