"""NumPy ``.npy`` files: magic, version, and the header dict, read by a small literal parser (no
eval).  An object array carries a pickle after the header, which ``np.load`` unpickles when
``allow_pickle=True``: it is handed on as a child for the pickle engine.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from ckptguard.facts import Artifact, ParseOutput, TensorRef
from ckptguard.formats import ParseContext
from ckptguard.formats.compressed import TRAILING
from ckptguard.source import slice_source

MAGIC = b"\x93NUMPY"
MAX_HEADER = 1 << 16  # numpy itself refuses headers past 10 000 bytes unless told otherwise
MAX_DEPTH = 32
KEYS = {"descr", "fortran_order", "shape"}


class HeaderError(ValueError):
    pass


class _Literal:
    """A recursive-descent reader of the Python literals a header may hold: dicts, lists,
    tuples, strings, integers, True/False/None."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> HeaderError:
        return HeaderError(f"{what} at header character {self.pos}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def value(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise self.fail("nesting too deep")
        char = self.peek()
        if not char:
            raise self.fail("unexpected end of header")
        if char in "{[(":
            return self.container(char, depth)
        if char in "'\"":
            return self.string(char)
        start = self.pos
        while self.pos < len(self.text) and (self.text[self.pos].isalnum() or
                                              self.text[self.pos] in "-+_"):
            self.pos += 1
        word = self.text[start:self.pos]
        consts = {"True": True, "False": False, "None": None}
        if word in consts:
            return consts[word]
        if word[-1:] in ("L", "l") and word[:-1].lstrip("+-").isdigit():
            word = word[:-1]  # Python 2 long literal (2L): NumPy still reads such headers
        try:
            return int(word, 10)
        except ValueError:
            raise self.fail(f"unexpected token {word[:20]!r}") from None

    def string(self, quote: str) -> str:
        self.pos += 1
        out = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                out.append(self.text[self.pos + 1])
                self.pos += 2
                continue
            self.pos += 1
            if char == quote:
                return "".join(out)
            out.append(char)
        raise self.fail("unterminated string")

    def container(self, opener: str, depth: int) -> Any:
        closer = {"{": "}", "[": "]", "(": ")"}[opener]
        self.pos += 1
        items: list[Any] = []
        pairs: dict[Any, Any] = {}
        while True:
            if self.peek() == closer:
                self.pos += 1
                break
            item = self.value(depth + 1)
            if opener == "{":
                if self.peek() != ":":
                    raise self.fail("expected ':'")
                self.pos += 1
                if not isinstance(item, (str, int)):
                    raise self.fail("unhashable key")
                pairs[item] = self.value(depth + 1)
            else:
                items.append(item)
            sep = self.peek()
            if sep == ",":
                self.pos += 1
            elif sep != closer:
                raise self.fail(f"expected ',' or {closer!r}")
        if opener == "{":
            return pairs
        return tuple(items) if opener == "(" else items


def parse_header(text: str) -> dict[str, Any]:
    reader = _Literal(text)
    header = reader.value()
    if reader.peek():
        raise reader.fail("unexpected text after the header dict")
    if not isinstance(header, dict) or set(header) != KEYS:
        raise HeaderError(f"header must be a dict with exactly the keys {sorted(KEYS)}")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and not isinstance(d, bool)
                                               and d >= 0 for d in shape):
        raise HeaderError(f"shape {shape!r} is not a tuple of non-negative integers")
    if not isinstance(header["fortran_order"], bool):
        raise HeaderError("fortran_order is not a boolean")
    return header


def _descr_text(descr: Any) -> str:
    return descr if isinstance(descr, str) else repr(descr)[:200]


def parse(artifact: Artifact, ctx: ParseContext) -> ParseOutput:
    import numpy

    output = ParseOutput(format="numpy")
    where = artifact.location
    source = artifact.source
    head = source.read(0, 12)
    if not head.startswith(MAGIC) or len(head) < 10:
        output.add("parse.error", where, format="numpy", error="no NumPy magic", offset=0,
                   read=len(head))
        return output
    major, minor = head[6], head[7]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    elif major in (2, 3) and len(head) >= 12:
        (length,), start = struct.unpack("<I", head[8:12]), 12
    else:
        output.add("parse.error", where, format="numpy", error=f"unknown version {major}.{minor}",
                   offset=6, read=len(head))
        return output
    if length > MAX_HEADER:
        output.add("limit.hit", where, limit="npy header size", value=length,
                   detail=f"header of {length} bytes (ckptguard reads at most {MAX_HEADER})")
        return output
    raw = source.read(start, length)
    data_start = start + length
    try:
        if len(raw) < length:
            raise HeaderError(f"header declares {length} bytes but the file ends first")
        header = parse_header(raw.decode("utf-8" if major == 3 else "latin-1"))
        dtype = numpy.lib.format.descr_to_dtype(header["descr"])
    except (HeaderError, ValueError, TypeError, UnicodeDecodeError, SyntaxError, KeyError,
            RecursionError, OverflowError) as exc:
        # NumPy's own descr parser (used on a bounded string) raises SyntaxError on junk.
        output.add("parse.error", where, format="numpy", error=f"bad header: {exc}"[:300],
                   offset=start, read=len(raw))
        return output
    shape: tuple[int, ...] = header["shape"]
    fortran = bool(header["fortran_order"])
    has_object = bool(dtype.hasobject)
    output.add("numpy.array", where, dtype=_descr_text(header["descr"]), shape=shape,
               fortran_order=fortran, object=has_object, version=f"{major}.{minor}")
    available = source.size - data_start
    if has_object:
        pickled = slice_source(source, data_start, available)
        output.children.append(artifact.child("object-array.pkl", pickled, format_hint="pickle"))
        return output
    expected = math.prod(shape) * dtype.itemsize
    if available < expected:
        output.add("parse.error", where, format="numpy", offset=data_start, read=available,
                   error=f"truncated: shape {shape} of {dtype.str} needs {expected} data bytes, "
                         f"the file holds {available}")
        return output
    if available > expected:
        output.add("numpy.trailing_data", where.within(offset=data_start + expected),
                   format="numpy", bytes=available - expected)
        output.children.append(artifact.child(
            TRAILING, slice_source(source, data_start + expected, available - expected)))
    if ctx.want_tensors:
        _tensor(artifact, output, dtype, shape, fortran, data_start, expected)
    return output


def _tensor(artifact: Artifact, output: ParseOutput, dtype: Any, shape: tuple[int, ...],
            fortran: bool, data_start: int, size: int) -> None:
    where = artifact.location
    reason = None
    if dtype.names is not None or dtype.subdtype is not None:
        reason = "structured dtype"
    elif dtype.byteorder == ">" and dtype.itemsize > 1:
        reason = "big-endian data"
    elif fortran and sum(1 for d in shape if d != 1) > 1:
        reason = "Fortran order"
    if reason is not None:
        output.add("numpy.tensor_skipped", where, reason=reason)
        return
    source = slice_source(artifact.source, data_start, size)
    output.tensors.append(TensorRef(artifact.name, dtype.name, shape, source,
                                    where.within(tensor=artifact.name)))
