"""A small bounded reader of the protobuf wire format (no schema, no generated code).

``fields(buf, start, end, budget)`` yields each field of one message as ``(number, wire_type,
value)``: an int for varint/fixed fields, a ``(start, end)`` span for length-delimited ones.
Every length is checked against the enclosing message; groups, over-long varints and truncated
fields raise ``WireError``; the shared ``Budget`` bounds the total number of fields read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
Buffer = bytes | memoryview


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


class BudgetExceeded(WireError):
    """More fields than the configured bound."""


@dataclass
class Budget:
    """How many more fields may be read; shared by every message of one file."""

    left: int

    def spend(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise BudgetExceeded("protobuf field limit reached")


def varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    result = 0
    for shift in range(0, 70, 7):
        if pos >= end:
            raise WireError(f"truncated varint at byte {pos}")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
    raise WireError(f"varint longer than 10 bytes before byte {pos}")


def fields(buf: Buffer, start: int, end: int,
           budget: Budget) -> Iterator[tuple[int, int, int | tuple[int, int]]]:
    pos = start
    while pos < end:
        budget.spend()
        key, pos = varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {pos}")
        if wire == VARINT:
            value, pos = varint(buf, pos, end)
            yield number, wire, value
        elif wire in (FIXED64, FIXED32):
            size = 8 if wire == FIXED64 else 4
            if pos + size > end:
                raise WireError(f"truncated fixed field {number} at byte {pos}")
            yield number, wire, int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == LENGTH:
            length, pos = varint(buf, pos, end)
            if length > end - pos:
                raise WireError(f"field {number} claims {length} bytes at byte {pos}, "
                                f"only {end - pos} remain")
            yield number, wire, (pos, pos + length)
            pos += length
        else:
            raise WireError(f"unsupported wire type {wire} (field {number}) at byte {pos}")


def text(buf: Buffer, span: tuple[int, int], limit: int = 4096) -> str:
    start, end = span
    return bytes(buf[start:min(end, start + limit)]).decode("utf-8", errors="replace")


def spans(buf: Buffer, start: int, end: int, budget: Budget,
          number: int) -> Iterator[tuple[int, int]]:
    """The spans of every length-delimited field ``number`` in one message."""
    for field, wire, value in fields(buf, start, end, budget):
        if field == number and wire == LENGTH and isinstance(value, tuple):
            yield value
