"""Does a run of bytes read as a pickle?  Used by the sniffer, which must not miss a pickle that
begins with an unusual opcode (CPython's unpickler accepts any opcode first, PROTO is optional)
nor take a text file for one.

A probe reads opcodes from the start: it accepts when it reaches STOP after at least two
opcodes, or reads many opcodes with no error, or reads a few that only a pickle would hold (a
PROTO header, a well-formed global with a call, memo operations), and it rejects on the first
invalid opcode or a text "global" that is not made of identifiers.  It never interprets anything.
"""

from __future__ import annotations

import re

from ckptguard.formats.pickle.reader import ReadError, read_op

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
# Opcodes that text rarely spells by accident and every non-trivial pickle holds.
PICKLE_MARKERS = {"PROTO", "FRAME", "STACK_GLOBAL", "MEMOIZE", "BINPUT", "LONG_BINPUT",
                  "REDUCE", "BUILD", "NEWOBJ", "NEWOBJ_EX", "SHORT_BINUNICODE", "BINUNICODE",
                  "EMPTY_DICT", "EMPTY_LIST", "EMPTY_TUPLE", "SETITEMS", "APPENDS", "TUPLE2",
                  "TUPLE3", "BINGET", "GLOBAL", "INST", "OBJ", "BINPERSID", "PUT", "GET"}
ENOUGH_OPCODES = 24
# How many stack values an opcode takes (marks aside): a stream whose first opcodes take values
# nobody pushed fails in CPython before anything runs, so it is not a pickle (NumPy's magic
# "\x93NUMPY" begins with STACK_GLOBAL on an empty stack).
POPS = {"STACK_GLOBAL": 2, "REDUCE": 2, "BUILD": 2, "POP": 1, "DUP": 1, "APPEND": 2,
        "SETITEM": 3, "TUPLE1": 1, "TUPLE2": 2, "TUPLE3": 3, "NEWOBJ": 2, "NEWOBJ_EX": 3,
        "PUT": 1, "BINPUT": 1, "LONG_BINPUT": 1, "MEMOIZE": 1, "BINPERSID": 1, "STOP": 1}
# Opcodes that take everything back to the last MARK; those in MARK_RESULT push one value.
MARK_TAKERS = {"LIST", "DICT", "TUPLE", "APPENDS", "SETITEMS", "ADDITEMS", "FROZENSET", "OBJ",
               "INST", "POP_MARK"}
MARK_RESULT = {"LIST", "DICT", "TUPLE", "FROZENSET", "OBJ", "INST"}
# Net effect: an opcode takes POPS values and pushes one back, except these (APPEND, SETITEM and
# BUILD leave their target in place: taking it and pushing it back is the same count).
PUSHES_NOTHING = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE", "POP", "PROTO", "FRAME", "STOP"}
KEEPS = {"PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"}  # look at the top without taking it
MIN_MARKED = 3
# Modules whose import alone runs something: CPython's find_class imports the module before it
# looks the name up, so "c<module>\n<not a name>\n" still runs them.  A text file's first line
# seldom names one ("cmath" imports math, which does nothing).
IMPORT_RUNS = re.compile(r"(antigravity|this|__hello__|__phello__(\..+)?|idlelib(\..+)?|"
                         r"turtledemo(\..+)?|.+\.__main__|__main__)\Z")


def _module_import_runs_code(arg: object) -> bool:
    """A GLOBAL/INST whose module a loader imports with effect, whatever its name part."""
    module = arg[0] if isinstance(arg, tuple) and arg else arg
    text = module.decode("utf-8", "replace") if isinstance(module, bytes) else str(module)
    return bool(IDENTIFIER.match(text) and IMPORT_RUNS.match(text))


def _named_globals_are_identifiers(arg: object) -> bool:
    parts = arg if isinstance(arg, tuple) else (arg,)
    for part in parts:
        text = part.decode("utf-8", "replace") if isinstance(part, bytes) else str(part)
        if not IDENTIFIER.match(text):
            return False
    return True


def stops_at_first_opcode(head: bytes) -> bool:
    """Whether a pickle loader fails on the first byte of ``head``, before anything runs: no
    opcode there, an argument that is invalid (tiktoken's "IQ== 0" is INT with no integer), or
    an opcode that needs a MARK or stack values (LIST, TUPLE, APPEND on an empty stack)."""
    try:
        first = read_op(memoryview(head), 0, len(head))
    except ReadError as exc:
        return not exc.truncated
    return first.name in MARK_TAKERS or POPS.get(first.name, 0) > 0


def reads_as_pickle(head: bytes) -> bool:
    """Whether ``head`` (the first bytes of an artifact) plausibly starts a pickle."""
    return probe(head, at_end=True) is True


def probe(head: bytes, *, at_end: bool) -> bool | int | None:
    """Like ``reads_as_pickle``, when it can decide.  When ``head`` ends inside an opcode before
    the probe could decide and more bytes follow it (``at_end`` false), it answers how many bytes
    would be enough (an int), or None when that is not known (a line with no newline yet): the
    caller reads further and asks again.  A loader reads an argument of any length, so a long
    first argument is no evidence either way."""
    buf = memoryview(head)
    end = len(head)
    pos = 0
    count = 0
    marked = 0
    depth = 0  # stack values above the last MARK
    below: list[int] = []  # the depth under each open MARK
    while count < ENOUGH_OPCODES:
        try:
            op = read_op(buf, pos, end)
        except ReadError as exc:
            if exc.truncated and not at_end:
                return exc.needs if exc.needs > 0 else None
            # Running off the end of the sniffed bytes is not evidence against a pickle (a long
            # argument), provided enough came before it to tell a pickle from text.
            return exc.truncated and end >= 1024 and count >= 8 and marked >= 2
        count += 1
        if op.name in ("GLOBAL", "INST") and not _named_globals_are_identifiers(op.arg):
            return _module_import_runs_code(op.arg)
        taken = POPS.get(op.name, 0)
        if taken > depth or (op.name in MARK_TAKERS and not below):
            return False  # CPython stops here (stack underflow, no MARK): nothing would run
        if op.name == "MARK":
            below.append(depth)
            depth = 0
        elif op.name in MARK_TAKERS:
            depth = below.pop() + (1 if op.name in MARK_RESULT else 0)
        elif op.name not in KEEPS:
            depth = depth - taken + (0 if op.name in PUSHES_NOTHING else 1)
        if op.name in PICKLE_MARKERS:
            marked += 1
        if op.name == "STOP":
            return count >= 2 and (marked > 0 or count >= 3)
        pos = op.end
    return marked >= MIN_MARKED
