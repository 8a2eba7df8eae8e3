"""How deep the containers a pickle builds are nested: lists, dicts, sets, tuples and objects
inside each other, as the unpickler would build them.

CPython's pickler recurses once per level, so a stream it wrote at its default recursion limit
nests containers well under a thousand deep; anything deeper was written by hand.  Loading such
a stream is iterative and succeeds, but the code that then walks the result (``repr``, ``==``,
``copy.deepcopy``, a JSON export, a state-dict loader) recurses and dies with RecursionError.
The bound is ``Limits.max_pickle_nesting``, the same as for open MARKs.

Depth is measured when a value is placed: a container's depth is one more than the deepest
value put into it (items, dict keys and values, an object's state); what a call returns is as
one level above its arguments (the argument tuple is not a level, and a list or dict argument
is taken to carry the result's items, which replaces its level).
A tuple is a level too; nested tuples are measured without recursion, once each (a stream may
share one tuple many times through the memo).

Not measured: a container that grows deeper after it was placed (filled later through the memo)
does not deepen the containers already holding it.  CPython's pickler never writes that order
(it writes a container's contents before placing it), so only a hand-made stream can, and
following every holder upwards would make cyclic structures, which are ordinary, look
infinitely deep.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ckptguard.formats.pickle.trace import LimitHit
from ckptguard.formats.pickle.values import Blob, DictV, HugeInt, ListV, Obj

Container = DictV | ListV | Obj
CONTAINERS = (DictV, ListV, Obj)
SHORT_TUPLE = 16  # flat tuples up to this long are measured again rather than remembered
# Values that never hold another: skipped by type alone (exact types; the stack's strings and
# numbers are never subclasses).
PLAIN = frozenset({int, float, str, bool, bytes, type(None), Blob, HugeInt})


class Nesting:
    """Depths of the containers of one pickle, and the bound they must stay within."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # id -> (the tuple, its depth), for tuples holding a container or another tuple and for
        # long flat ones (a stream may place one huge tuple many times through the memo); a
        # short flat tuple is one deep, cheaper to look at again than to keep.  The tuple is
        # kept so that its id stays its own.
        self._tuples: dict[int, tuple[tuple[Any, ...], int]] = {}

    def depth_of(self, value: Any) -> int:
        """0 for a plain value, else how many containers deep ``value`` goes."""
        if isinstance(value, CONTAINERS):
            return value.depth
        if not isinstance(value, tuple):
            return 0
        known = self._tuples.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        # Most tuples hold plain values and containers only (a tensor's shape, a dict item):
        # measured in one look, without the walk's bookkeeping.
        deepest = 0
        for item in value:
            if isinstance(item, CONTAINERS):
                deepest = max(deepest, item.depth)
            elif isinstance(item, tuple):
                return self._measure_tuple(value)
        if deepest or len(value) > SHORT_TUPLE:
            self._tuples[id(value)] = (value, deepest + 1)
        return deepest + 1

    def place(self, target: Any, values: Iterable[Any], offset: int) -> None:
        """``values`` were put into ``target``: it is now at least one deeper than each."""
        if not isinstance(target, CONTAINERS):
            return
        deepest = 0
        for value in values:  # the hot path of list-heavy pickles: a plain value costs one look
            if type(value) in PLAIN:
                continue
            if isinstance(value, CONTAINERS):
                depth = value.depth
            elif isinstance(value, tuple):
                depth = self.depth_of(value)
            else:
                continue
            if depth > deepest:
                deepest = depth
        if deepest + 1 > target.depth:
            target.depth = deepest + 1
            self.check(target.depth, offset)

    def made_from(self, made: Container, arguments: Iterable[Any], offset: int) -> None:
        """``made`` is what a call returns, and may hold its arguments: one level above each,
        except a list or dict argument, taken to carry the result's items into it
        (``frozenset([...])``, ``OrderedDict([...])``: the result replaces that level).  The
        argument tuple itself is never a level."""
        deepest = max((self.depth_of(value) + (0 if isinstance(value, (ListV, DictV)) else 1)
                       for value in arguments), default=0)
        if deepest > made.depth:
            made.depth = deepest
            self.check(made.depth, offset)

    def check(self, depth: int, offset: int) -> None:
        if depth > self.limit:
            raise LimitHit("pickle nesting", self.limit,
                           f"containers nested more than {self.limit} deep at byte {offset} "
                           "(code that walks the loaded result recursion-fails)")

    def _measure_tuple(self, root: tuple[Any, ...]) -> int:
        """Post-order over the nested tuples not yet measured, with an explicit stack."""
        pending: list[tuple[tuple[Any, ...], bool]] = [(root, False)]
        measured: dict[int, int] = {}  # flat tuples of this walk (not kept across calls)
        while pending:
            node, expanded = pending.pop()
            if id(node) in measured or self._stored(node) is not None:
                continue
            if not expanded:
                pending.append((node, True))
                pending.extend((item, False) for item in node
                               if isinstance(item, tuple) and id(item) not in measured
                               and self._stored(item) is None)
                continue
            depth = 1 + max((self._known(item, measured) for item in node), default=0)
            if depth > 1 or len(node) > SHORT_TUPLE:
                self._tuples[id(node)] = (node, depth)
            measured[id(node)] = depth
        stored = self._stored(root)
        return stored if stored is not None else measured[id(root)]

    def _stored(self, value: tuple[Any, ...]) -> int | None:
        known = self._tuples.get(id(value))
        return known[1] if known is not None and known[0] is value else None

    def _known(self, item: Any, measured: dict[int, int]) -> int:
        if isinstance(item, CONTAINERS):
            return item.depth
        if isinstance(item, tuple):
            stored = self._stored(item)
            return stored if stored is not None else measured.get(id(item), 1)
        return 0
