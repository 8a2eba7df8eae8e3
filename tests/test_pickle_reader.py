"""The opcode reader: every opcode of protocols 0-5, truncation, invalid opcodes, frames crossed
the way the C unpickler allows, Python 2 byte strings and joblib's raw array bytes."""

from __future__ import annotations

import io
import pickle
import pickletools

import pytest

from ckptguard.formats.pickle.opcodes import OPCODES
from ckptguard.formats.pickle.reader import Op, ReadError, iter_ops, read_op
from ckptguard.formats.pickle.values import Blob
from fixtures.pickle_asm import (
    EMPTY_TUPLE,
    MARK,
    NEWOBJ,
    STOP,
    binput,
    ext1,
    frame,
    glob,
    inst,
    string_line,
    text,
)

# Streams no pickler writes by default, covering the opcodes pickle.dumps does not emit.
HAND_BUILT = [
    b"(I01\nI00\nI42\nL123L\nF1.5\nS'a'\nVx\\u00e9\np0\ng0\n0Ntl.",
    b"(K\x01K\x022\x30\x31N.",  # MARK, DUP, POP, POP_MARK
    b"\x80\x02\x82\x01\x83\x01\x00\x84\x01\x00\x00\x00\x87.",  # EXT1/2/4
    b"Pfoo\n\x80\x02X\x03\x00\x00\x00barQ\x86.",  # PERSID, BINPERSID
    MARK + inst("collections", "OrderedDict") + b".",
    MARK + glob("collections", "OrderedDict") + b"o.",
    b"\x80\x02\x8b\x02\x00\x00\x00\x01\x02.",  # LONG4
    b"\x80\x04\x8d\x01\x00\x00\x00\x00\x00\x00\x00a\x8e\x01\x00\x00\x00\x00\x00\x00\x00b\x86.",
    b"\x80\x05\x96\x01\x00\x00\x00\x00\x00\x00\x00c\x97\x98\x86.",  # BYTEARRAY8, buffers
    b"\x80\x02]q\x01j\x01\x00\x00\x00r\x02\x00\x00\x00.",  # LONG_BINGET, LONG_BINPUT
    b"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00K\x01K\x02\x86.",  # FRAME
    b"\x80\x02" + glob("x", "Y") + EMPTY_TUPLE + NEWOBJ + b"}b.",
    b"\x80\x04" + glob("x", "Y") + EMPTY_TUPLE + b"}\x92.",  # NEWOBJ_EX
    b"\x80\x04\x8f(K\x01\x90(K\x02\x91\x86.",  # EMPTY_SET, ADDITEMS, FROZENSET
    b"\x80\x03C\x01aB\x01\x00\x00\x00bT\x01\x00\x00\x00cU\x01d\x87\x86.",
    b"\x80\x02J\xff\xff\xff\xffM\x01\x01\x8a\x01\x05G?\xf0\x00\x00\x00\x00\x00\x00\x87\x88\x89"
    b"\x87\x86.",
    b"\x80\x02(K\x01K\x02dq\x00}(K\x01K\x02uK\x03K\x04s\x86.",  # DICT, SETITEM(S)
]
DATA = {"i": [1, 300, 70000, -5, 2**80], "f": 1.5, "s": "é", "b": b"x", "t": (1, 2, 3, 4),
        "set": {1}, "fs": frozenset({2}), "n": None, "bool": True, "ba": bytearray(b"z")}


def _names(stream: bytes) -> set[str]:
    return {op.name for op in _all_ops(stream)}


def _all_ops(stream: bytes) -> list[Op]:
    view = memoryview(stream)
    ops: list[Op] = []
    pos = 0
    while pos < len(view):
        ops.extend(iter_ops(view, pos))
        pos = ops[-1].end
    return ops


def test_every_opcode_is_read() -> None:
    seen: set[str] = set()
    for protocol in range(6):
        seen |= _names(pickle.dumps(DATA, protocol=protocol))
    for stream in HAND_BUILT:
        seen |= _names(stream)
    assert seen == {info.name for info in OPCODES.values()}


@pytest.mark.parametrize("protocol", range(6))
def test_agrees_with_pickletools_on_ordinary_streams(protocol: int) -> None:
    stream = pickle.dumps(DATA, protocol=protocol)
    ours = [(op.offset, op.name) for op in iter_ops(memoryview(stream))]
    theirs = [(pos, op.name) for op, _, pos in pickletools.genops(stream)]
    assert ours == theirs


def test_arguments_are_decoded_as_c_does() -> None:
    ops = list(iter_ops(memoryview(b"(I01\nI00\nI42\nL123L\nF1.5\nVx\\u00e9\ntl.")))
    assert [op.arg for op in ops[1:7]] == [True, False, 42, 123, 1.5, "xé"]
    (first, *_rest) = iter_ops(memoryview(b"J\xfe\xff\xff\xff."))
    assert first.arg == -2


def test_truncated_argument_is_an_error_with_the_opcode_offset() -> None:
    stream = b"\x80\x02X\x10\x00\x00\x00abc"
    with pytest.raises(ReadError) as info:
        list(iter_ops(memoryview(stream)))
    assert info.value.truncated


def test_stream_without_stop_is_truncated() -> None:
    with pytest.raises(ReadError) as info:
        list(iter_ops(memoryview(b"\x80\x02K\x01")))
    assert info.value.truncated


def test_invalid_opcode() -> None:
    with pytest.raises(ReadError) as info:
        read_op(memoryview(b"\xff"), 0, 1)
    assert "invalid opcode 0xff" in str(info.value)
    assert not info.value.truncated


def test_negative_binstring_length_is_rejected() -> None:
    with pytest.raises(ReadError, match="negative"):
        read_op(memoryview(b"T\xff\xff\xff\xff"), 0, 5)


def test_python2_non_ascii_strings_are_read_as_bytes() -> None:
    stream = string_line(b"caf\xe9") + b"0" + b"U\x02\xe9\xe8" + STOP
    ops = list(iter_ops(memoryview(stream)))
    assert isinstance(ops[0].arg, Blob) and ops[0].arg.data() == b"caf\xe9"
    assert ops[2].arg.data() == b"\xe9\xe8" and ops[2].arg.textual


def test_escaped_python2_string() -> None:
    stream = string_line(b"\\xe9\\n")
    op = read_op(memoryview(stream), 0, len(stream))
    assert op.arg.data() == b"\xe9\n"


def test_unquoted_string_is_rejected() -> None:
    with pytest.raises(ReadError, match="quoted"):
        read_op(memoryview(b"Sabc\n"), 0, 5)


def test_opcodes_may_cross_frame_boundaries() -> None:
    body = text("os") + text("system")
    stream = b"\x80\x04" + frame(3) + body + b"\x93" + STOP  # frame ends inside "os"
    names = [op.name for op in iter_ops(memoryview(stream))]
    assert names == ["PROTO", "FRAME", "SHORT_BINUNICODE", "SHORT_BINUNICODE", "STACK_GLOBAL",
                     "STOP"]


def test_frame_longer_than_the_stream_is_truncated_by_the_interpreter() -> None:
    from ckptguard.formats.pickle.interpreter import Machine
    from ckptguard.formats.pickle.trace import Trace
    from ckptguard.limits import DEFAULT_LIMITS

    stream = b"\x80\x04" + frame(1000) + b"K\x01."
    with pytest.raises(ReadError) as info:
        Machine(memoryview(stream), Trace(), DEFAULT_LIMITS).run(0)
    assert info.value.truncated


def test_memo_and_ext_arguments() -> None:
    ops = list(iter_ops(memoryview(b"\x80\x02K\x01" + binput(7) + ext1(3) + b"\x86.")))
    assert [(op.name, op.arg) for op in ops[2:4]] == [("BINPUT", 7), ("EXT1", 3)]


def test_joblib_raw_array_bytes_are_skipped() -> None:
    joblib = pytest.importorskip("joblib")
    numpy = pytest.importorskip("numpy")
    from ckptguard.formats import ParseContext
    from ckptguard.formats.pickle.parser import interpret_stream

    buffer = io.BytesIO()
    # Array bytes that contain what looks like opcodes (0x2e is STOP, 0xff is invalid).
    array = numpy.frombuffer(b".\xff" * 64, dtype="uint8")
    joblib.dump([array, numpy.arange(7, dtype="<i8"), "after"], buffer)
    stream = buffer.getvalue()
    with pytest.raises(ValueError):  # pickletools reads the array bytes as opcodes
        list(pickletools.genops(stream))
    result = interpret_stream(memoryview(stream), ParseContext())
    assert result.error is None and result.layout == "joblib"
    assert result.trace.joblib_arrays == 2 and result.trailing_offset == -1
