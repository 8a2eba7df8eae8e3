"""The symbolic stack machine: runs one pickle's opcodes over symbolic values, never importing or
calling anything, and records imports, calls, nested payloads and tensors in a ``Trace``.

Opcode semantics follow CPython's C unpickler (``Modules/_pickle.c``): frames are transparent
(an opcode may cross a frame boundary; recorded as a divergence from the pure-Python unpickler),
POP removes a bare MARK, and the errors the C code raises become ``ReadError`` at that offset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ckptguard.formats.pickle import calls
from ckptguard.formats.pickle.names import fix_imports, member_owner, walk_target
from ckptguard.formats.pickle.nesting import Nesting
from ckptguard.formats.pickle.opcodes import HIGHEST_PROTOCOL, OPCODES
from ckptguard.formats.pickle.reader import ARG_READERS, DOUBLE, ReadError
from ckptguard.formats.pickle.stackops import StackOps
from ckptguard.formats.pickle.trace import MAX_IMPORTS, MAX_NOTES, LimitHit, Note, Trace
from ckptguard.formats.pickle.values import (
    Blob,
    Opaque,
    PersRef,
    Record,
    Ref,
    render,
    text_of,
)
from ckptguard.limits import Limits

Handler = Callable[[Any, int], None]
CHECK_EVERY = 1024  # opcodes between two checks of the stack bound
MAX_NAME = 1000  # characters of a module.name that is still worth importing


class Machine(StackOps):
    """One pickle (PROTO .. STOP) of a stream.  ``run`` returns the offset after its STOP."""

    def __init__(self, buf: memoryview, trace: Trace, limits: Limits, *, depth: int = 0,
                 torch_modules: bool = False) -> None:
        self.buf = buf
        # The object pickle of a legacy (pre-zip) torch file: torch's persistent_load answers a
        # ``('module', <class>, <source file>, <source>)`` id with the class itself (torch.save
        # records each nn.Module class that way, to compare its source on load), so what the
        # pickle calls next is that class, judged as the global it is.
        self.torch_modules = torch_modules
        self.end = len(buf)
        self.trace = trace
        self.limits = limits
        self.depth = depth  # pickles embedded inline (joblib object arrays)
        self.stack: list[Any] = []
        self.marks: list[int] = []
        self.memo: dict[int, Any] = {}
        self.nesting = Nesting(limits.max_pickle_nesting)
        self.proto = 0
        self.resume_at = -1  # set by BUILD when raw bytes follow (joblib arrays)
        self.result: Any = None
        self.frame_end = -1
        self.handlers: list[Handler | None] = [None] * 256
        for code, info in OPCODES.items():
            self.handlers[code] = getattr(self, f"op_{info.name.lower()}", None)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, pos: int) -> int:
        buf, end, stack, memo, marks = self.buf, self.end, self.stack, self.memo, self.marks
        readers, handlers = ARG_READERS, self.handlers
        limits = self.limits
        budget = limits.max_pickle_opcodes - self.trace.opcodes
        max_stack, max_memo, max_marks = (limits.max_pickle_stack, limits.max_pickle_memo,
                                          limits.max_pickle_nesting)
        unpack_double = DOUBLE.unpack_from
        frame_end = self.frame_end
        count = 0
        next_check = min(budget, CHECK_EVERY)
        try:
            while True:
                if pos >= end:
                    raise ReadError("stream ends before STOP", truncated=True)
                code = buf[pos]
                # The opcodes that dominate large streams are inlined (no call per opcode);
                # each does exactly what its handler below does.
                if code == 0x4B:  # BININT1
                    if pos + 1 >= end:
                        raise ReadError("needs 1 byte, stream ends", truncated=True)
                    stack.append(buf[pos + 1])
                    nxt = pos + 2
                elif code == 0x47:  # BINFLOAT
                    if pos + 9 > end:
                        raise ReadError("needs 8 bytes, stream ends", truncated=True)
                    stack.append(unpack_double(buf, pos + 1)[0])
                    nxt = pos + 9
                elif code == 0x8C or code == 0x58:  # SHORT_BINUNICODE, BINUNICODE
                    if code == 0x8C:
                        if pos + 1 >= end:
                            raise ReadError("needs 1 byte, stream ends", truncated=True)
                        first, nxt = pos + 2, pos + 2 + buf[pos + 1]
                    else:
                        if pos + 5 > end:
                            raise ReadError("needs 4 bytes, stream ends", truncated=True)
                        first = pos + 5
                        nxt = first + int.from_bytes(buf[pos + 1:first], "little")
                    if nxt > end:
                        raise ReadError("string runs past the end of the stream",
                                        truncated=True)
                    stack.append(str(buf[first:nxt], "utf-8", "surrogatepass"))
                elif code == 0x94:  # MEMOIZE
                    if len(memo) >= max_memo:
                        self.memo_put(len(memo))
                    memo[len(memo)] = stack[-1]
                    nxt = pos + 1
                elif code == 0x71 or code == 0x72:  # BINPUT, LONG_BINPUT
                    nxt = pos + 2 if code == 0x71 else pos + 5
                    if nxt > end:
                        raise ReadError("memo index runs past the end of the stream",
                                        truncated=True)
                    index = buf[pos + 1] if code == 0x71 else \
                        int.from_bytes(buf[pos + 1:nxt], "little")
                    if len(memo) >= max_memo and index not in memo:
                        self.memo_put(index)
                    memo[index] = stack[-1]
                elif code == 0x28:  # MARK
                    marks.append(len(stack))
                    if len(marks) > max_marks:
                        self.op_mark(None, pos)
                    nxt = pos + 1
                elif code == 0x4D:  # BININT2
                    if pos + 2 >= end:
                        raise ReadError("needs 2 bytes, stream ends", truncated=True)
                    stack.append(buf[pos + 1] | (buf[pos + 2] << 8))
                    nxt = pos + 3
                elif code == 0x4A:  # BININT
                    nxt = pos + 5
                    if nxt > end:
                        raise ReadError("needs 4 bytes, stream ends", truncated=True)
                    stack.append(int.from_bytes(buf[pos + 1:nxt], "little", signed=True))
                elif code == 0x68 or code == 0x6A:  # BINGET, LONG_BINGET
                    nxt = pos + 2 if code == 0x68 else pos + 5
                    if nxt > end:
                        raise ReadError("memo index runs past the end of the stream",
                                        truncated=True)
                    index = buf[pos + 1] if code == 0x68 else \
                        int.from_bytes(buf[pos + 1:nxt], "little")
                    if index not in memo:
                        raise ReadError(f"memo value not found at index {index}")
                    stack.append(memo[index])
                elif code == 0x74:  # TUPLE
                    if not marks:
                        raise ReadError("could not find MARK")
                    where = marks.pop()
                    items = tuple(stack[where:])
                    del stack[where:]
                    stack.append(items)
                    nxt = pos + 1
                elif code == 0x29:  # EMPTY_TUPLE
                    stack.append(())
                    nxt = pos + 1
                elif code == 0x88 or code == 0x89:  # NEWTRUE, NEWFALSE
                    stack.append(code == 0x88)
                    nxt = pos + 1
                elif code == 0x4E:  # NONE
                    stack.append(None)
                    nxt = pos + 1
                else:
                    reader = readers[code]
                    if reader is None:
                        raise ReadError(f"invalid opcode 0x{code:02x}")
                    arg, nxt = reader(buf, pos + 1, end)
                    if code == 0x2E:  # STOP
                        count += 1
                        if not stack:
                            raise ReadError("STOP with an empty stack")
                        self.result = stack[-1]
                        # What the load returns is what its caller walks (containers were
                        # measured as they were filled; a tuple only here).
                        self.nesting.check(self.nesting.depth_of(self.result), pos)
                        return nxt
                    handler = handlers[code]
                    if handler is not None:
                        handler(arg, pos)
                    if self.resume_at >= 0:
                        if nxt > self.frame_end > pos:
                            self._frame_crossed(pos)
                        # Raw bytes read outside the opcode stream (joblib arrays).
                        nxt, self.resume_at, self.frame_end = self.resume_at, -1, -1
                    frame_end = self.frame_end
                if nxt > frame_end > pos:
                    self._frame_crossed(pos)
                    frame_end = -1
                count += 1
                if count >= next_check:
                    # Limits are checked every CHECK_EVERY opcodes (and at the opcode budget):
                    # the stack may pass its bound by at most that many entries.
                    if count >= budget:
                        raise LimitHit("pickle opcodes", limits.max_pickle_opcodes,
                                       f"more than {limits.max_pickle_opcodes} opcodes; "
                                       f"stopped at byte {nxt}")
                    if len(stack) > max_stack:
                        raise LimitHit("pickle stack", max_stack,
                                       f"stack deeper than {max_stack} at byte {pos}")
                    next_check = min(budget, count + CHECK_EVERY)
                pos = nxt
        except ReadError as exc:
            exc.offset = pos  # type: ignore[attr-defined]
            raise
        except UnicodeDecodeError as exc:
            error = ReadError(f"invalid UTF-8 in string: {exc.reason}")
            error.offset = pos  # type: ignore[attr-defined]
            raise error from None
        except IndexError:
            error = ReadError("stack underflow (an opcode needs more values than were pushed)")
            error.offset = pos  # type: ignore[attr-defined]
            raise error from None
        finally:
            self.trace.opcodes += count

    def _frame_crossed(self, pos: int) -> None:
        self.trace.note(self.trace.divergences, Note(
            pos, "an opcode crosses the end of its FRAME: pickle.loads reads on, an unpickler "
                 "reading a file (pickle.load, torch.load, joblib.load) reads it again from after "
                 "the frame, and pickletools stops with an error"))
        self.frame_end = -1

    # -- helpers --------------------------------------------------------------------------------

    def named(self, module: str, name: str, *, raw: str, opcode: str, offset: int,
              via: str | None = None, expr: str | None = None, owner: str | None = None) -> Ref:
        """A reference to ``module.name`` with its own import record (and where a walk lands)."""
        qualname = f"{module}.{name}" if module else name
        if len(qualname) > MAX_NAME:
            # No importable module has such a name: the load stops here with ImportError.
            raise ReadError(f"global name of {len(qualname)} characters cannot be imported")
        if len(self.trace.records) >= MAX_IMPORTS:
            raise LimitHit("pickle imports", MAX_IMPORTS,
                           f"more than {MAX_IMPORTS} imports in one stream at byte {offset}")
        record = Record(qualname, module, name, raw, opcode, offset, resolved_via=via,
                        reconstruction=expr or qualname, owner=owner,
                        member_of=member_owner(module, name))
        self.trace.records.append(record)
        ref = Ref(record, expr or qualname)
        target = walk_target(name) if "." in name else None
        if target is not None and target != qualname:
            record.target = target
            record.flags.add("resolver")
            mod, _, last = target.rpartition(".")
            landed = Record(target, mod, last, raw, opcode, offset, resolved_via="getattr-walk",
                            reconstruction=qualname)
            self.trace.records.append(landed)
            return Ref(landed, qualname)
        return ref

    def _global(self, module: str, name: str, opcode: str, offset: int) -> Ref:
        fixed_module, fixed_name = fix_imports(module, name, self.proto)
        return self.named(fixed_module, fixed_name, raw=f"{module} {name}", opcode=opcode,
                          offset=offset)

    def op_proto(self, arg: Any, offset: int) -> None:
        if arg > HIGHEST_PROTOCOL:
            raise ReadError(f"unsupported pickle protocol: {arg}")
        self.proto = arg

    def op_frame(self, arg: Any, offset: int) -> None:
        body = offset + 9
        if body + arg > self.end:
            raise ReadError(f"FRAME of {arg} bytes runs past the end of the stream",
                            truncated=True)
        if self.frame_end > offset:
            self.trace.note(self.trace.divergences, Note(
                offset, "a FRAME begins before the previous frame ended: the C unpickler "
                        "accepts it, the pure-Python unpickler does not"))
        self.frame_end = body + arg

    # -- imports, calls, objects ----------------------------------------------------------------

    def op_global(self, arg: Any, offset: int) -> None:
        module, name = arg
        self.stack.append(self._global(module, name, "GLOBAL", offset))

    def op_stack_global(self, arg: Any, offset: int) -> None:
        name = self.stack.pop()
        module = self.stack.pop()
        module_text, name_text = text_of(module), text_of(name)
        raw_bytes = any(isinstance(v, Blob) and not v.textual for v in (module, name))
        if module_text is None or name_text is None or raw_bytes:
            raise ReadError(f"STACK_GLOBAL requires str operands, got {render(module, 40)} "
                            f"and {render(name, 40)}")
        self.stack.append(self._global(module_text, name_text, "STACK_GLOBAL", offset))

    def op_inst(self, arg: Any, offset: int) -> None:
        module, name = arg
        args = tuple(self.pop_mark())
        ref = self._global(module, name, "INST", offset)
        self.stack.append(calls.invoke(self, ref, args, "inst", offset))

    def op_obj(self, arg: Any, offset: int) -> None:
        items = self.pop_mark()
        if not items:
            raise ReadError("OBJ without a class")
        self.stack.append(calls.invoke(self, items[0], tuple(items[1:]), "obj", offset))

    def op_reduce(self, arg: Any, offset: int) -> None:
        args = self.stack.pop()
        callee = self.stack[-1]
        self.stack[-1] = calls.invoke(self, callee, args, "reduce", offset)

    def op_newobj(self, arg: Any, offset: int) -> None:
        args = self.stack.pop()
        cls = self.stack[-1]
        self.stack[-1] = calls.invoke(self, cls, args, "newobj", offset)

    def op_newobj_ex(self, arg: Any, offset: int) -> None:
        kwargs = self.stack.pop()
        args = self.stack.pop()
        cls = self.stack[-1]
        self.stack[-1] = calls.invoke(self, cls, args, "newobj_ex", offset, kwargs=kwargs)

    def op_build(self, arg: Any, offset: int) -> None:
        state = self.stack.pop()
        calls.build(self, self.stack[-1], state, offset)

    def op_persid(self, arg: Any, offset: int) -> None:
        self._persistent(arg, offset)

    def op_binpersid(self, arg: Any, offset: int) -> None:
        self._persistent(self.stack.pop(), offset)

    def _persistent(self, pid: Any, offset: int) -> None:
        if len(self.trace.persistent_ids) < MAX_NOTES:  # render only what will be kept
            self.trace.note(self.trace.persistent_ids, Note(offset, render(pid, 200)))
        if self.torch_modules and isinstance(pid, tuple) and len(pid) >= 2 and \
                text_of(pid[0]) == "module":
            self.stack.append(pid[1])
            return
        self.stack.append(PersRef(pid, offset))

    def _extension(self, code: int, offset: int) -> None:
        if code <= 0:
            raise ReadError("EXT specifies code <= 0")
        name = self.buf[offset]
        self.trace.note(self.trace.extensions, Note(offset, f"extension code {code}", (
            ("code", code), ("opcode", OPCODES[name].name))))
        self.stack.append(Opaque(f"extension registry entry {code}"))

    def op_ext1(self, arg: Any, offset: int) -> None:
        self._extension(arg, offset)

    op_ext2 = op_ext4 = op_ext1

    def op_next_buffer(self, arg: Any, offset: int) -> None:
        self.stack.append(Opaque("out-of-band buffer"))

    def op_readonly_buffer(self, arg: Any, offset: int) -> None:
        if not self.stack:
            raise ReadError("READONLY_BUFFER with an empty stack")
