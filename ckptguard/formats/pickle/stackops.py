"""Opcodes that only move values: the stack, marks, memo and plain containers.

A mixin of ``Machine`` (interpreter.py), which owns the loop and the opcodes that import, call or
build; these handlers share its state and raise the same errors and limits.
"""

from __future__ import annotations

from typing import Any

from ckptguard.formats.pickle import calls
from ckptguard.formats.pickle.containers import extend_list, set_items
from ckptguard.formats.pickle.nesting import Nesting
from ckptguard.formats.pickle.reader import ReadError
from ckptguard.formats.pickle.trace import LimitHit, Trace
from ckptguard.formats.pickle.values import DictV, ListV
from ckptguard.limits import Limits


class StackOps:
    stack: list[Any]
    marks: list[int]
    memo: dict[int, Any]
    limits: Limits
    trace: Trace
    nesting: Nesting

    def pop_mark(self) -> list[Any]:
        if not self.marks:
            raise ReadError("could not find MARK")
        where = self.marks.pop()
        items = self.stack[where:]
        del self.stack[where:]
        return items

    def memo_put(self, index: int) -> None:
        if not self.stack:
            raise ReadError("memo store with an empty stack")
        if index not in self.memo and len(self.memo) >= self.limits.max_pickle_memo:
            raise LimitHit("pickle memo", self.limits.max_pickle_memo,
                           f"more than {self.limits.max_pickle_memo} memo entries")
        self.memo[index] = self.stack[-1]

    def memo_get(self, index: int) -> None:
        try:
            self.stack.append(self.memo[index])
        except KeyError:
            raise ReadError(f"memo value not found at index {index}") from None

    # -- opcodes: stack and memo ----------------------------------------------------------------

    def op_mark(self, arg: Any, offset: int) -> None:
        self.marks.append(len(self.stack))
        if len(self.marks) > self.limits.max_pickle_nesting:
            raise LimitHit("pickle nesting", self.limits.max_pickle_nesting,
                           f"more than {self.limits.max_pickle_nesting} nested MARKs")

    def op_pop(self, arg: Any, offset: int) -> None:
        if self.marks and self.marks[-1] == len(self.stack):
            self.marks.pop()
        else:
            self.stack.pop()

    def op_pop_mark(self, arg: Any, offset: int) -> None:
        self.pop_mark()

    def op_dup(self, arg: Any, offset: int) -> None:
        self.stack.append(self.stack[-1])

    def _push_arg(self, arg: Any, offset: int) -> None:
        self.stack.append(arg)

    op_float = op_int = op_binint = op_binint2 = op_long = op_string = op_binstring = _push_arg
    op_short_binstring = op_unicode = op_binunicode = op_binfloat = op_long1 = _push_arg
    op_long4 = op_binbytes = op_short_binbytes = op_short_binunicode = _push_arg
    op_binunicode8 = op_binbytes8 = op_bytearray8 = op_binint1 = _push_arg

    def op_none(self, arg: Any, offset: int) -> None:
        self.stack.append(None)

    def op_newtrue(self, arg: Any, offset: int) -> None:
        self.stack.append(True)

    def op_newfalse(self, arg: Any, offset: int) -> None:
        self.stack.append(False)

    def op_get(self, arg: Any, offset: int) -> None:
        self.memo_get(arg)

    op_binget = op_long_binget = op_get

    def op_put(self, arg: Any, offset: int) -> None:
        self.memo_put(arg)

    op_binput = op_long_binput = op_put

    def op_memoize(self, arg: Any, offset: int) -> None:
        self.memo_put(len(self.memo))


    # -- containers -----------------------------------------------------------------------------

    def op_empty_list(self, arg: Any, offset: int) -> None:
        self.stack.append(ListV())

    def op_empty_dict(self, arg: Any, offset: int) -> None:
        self.stack.append(DictV())

    def op_empty_tuple(self, arg: Any, offset: int) -> None:
        self.stack.append(())

    def op_empty_set(self, arg: Any, offset: int) -> None:
        self.stack.append(ListV(kind="set"))

    def op_list(self, arg: Any, offset: int) -> None:
        target = ListV()
        items = self.pop_mark()
        extend_list(target, items)
        self.nesting.place(target, items, offset)
        self.stack.append(target)

    def op_frozenset(self, arg: Any, offset: int) -> None:
        target = ListV(kind="frozenset")
        items = self.pop_mark()
        extend_list(target, items)
        self.nesting.place(target, items, offset)
        self.stack.append(target)

    def op_tuple(self, arg: Any, offset: int) -> None:
        self.stack.append(tuple(self.pop_mark()))

    def op_tuple1(self, arg: Any, offset: int) -> None:
        self.stack[-1] = (self.stack[-1],)

    def op_tuple2(self, arg: Any, offset: int) -> None:
        second = self.stack.pop()
        self.stack[-1] = (self.stack[-1], second)

    def op_tuple3(self, arg: Any, offset: int) -> None:
        third = self.stack.pop()
        second = self.stack.pop()
        self.stack[-1] = (self.stack[-1], second, third)

    def op_dict(self, arg: Any, offset: int) -> None:
        items = self.pop_mark()
        target = DictV()
        set_items(target, items)
        self.nesting.place(target, items, offset)
        self.stack.append(target)

    def op_append(self, arg: Any, offset: int) -> None:
        value = self.stack.pop()
        self._extend(self.stack[-1], [value], offset)

    def op_appends(self, arg: Any, offset: int) -> None:
        items = self.pop_mark()
        self._extend(self.stack[-1], items, offset)

    op_additems = op_appends

    def _extend(self, target: Any, items: list[Any], offset: int) -> None:
        if isinstance(target, ListV):
            extend_list(target, items)
            self.nesting.place(target, items, offset)
        else:
            # C calls target.extend / target.append: a method of an arbitrary object.
            calls.method_call(self.trace, target, "extend", (ListV(items[:8]),), offset)

    def op_setitem(self, arg: Any, offset: int) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items(self.stack[-1], [key, value], offset)

    def op_setitems(self, arg: Any, offset: int) -> None:
        items = self.pop_mark()
        self._set_items(self.stack[-1], items, offset)

    def _set_items(self, target: Any, items: list[Any], offset: int) -> None:
        if set_items(target, items):
            self.nesting.place(target, items, offset)
        else:
            calls.method_call(self.trace, target, "__setitem__", tuple(items[:2]), offset)
