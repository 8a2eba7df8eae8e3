"""Filling symbolic containers (bounded) and naming the tensors they hold by key path."""

from __future__ import annotations

from typing import Any

from ckptguard.formats.pickle.values import MAX_ITEMS, DictV, ListV, Obj, TensorInfo, text_of

# Key segments that only structure a torch module's state (``_modules.layer1._parameters.weight``
# is the tensor ``layer1.weight``).
_SKIPPED_SEGMENTS = frozenset({"_modules", "_parameters", "_buffers"})
Holder = DictV | ListV | Obj
HOLDERS = (DictV, ListV, Obj, TensorInfo)


def _segment(key: Any) -> str | None:
    if isinstance(key, bool):
        return None
    if isinstance(key, int):
        return str(key)
    text = text_of(key)
    if text is None or text in _SKIPPED_SEGMENTS:
        return None
    return text


def attach(child: Any, parent: Any, key: Any) -> None:
    """Record that ``child`` sits in ``parent`` under ``key`` (first placement names tensors)."""
    if not isinstance(parent, (DictV, ListV, Obj)):
        return
    if isinstance(child, TensorInfo):
        if not child.attached:
            child.attached = True
            segment = _segment(key)
            if segment is not None:
                child.rpath.append(segment)
            parent.tensors.append(child)
        return
    if isinstance(child, (DictV, ListV, Obj)) and not child.attached and child is not parent:
        child.attached = True
        if child.tensors:
            segment = _segment(key)
            if segment is not None:
                for tensor in child.tensors:
                    tensor.rpath.append(segment)
            parent.tensors.extend(child.tensors)
            child.tensors = []


def extend_list(target: ListV, items: list[Any]) -> None:
    base = len(target.items) + target.extra
    for index, item in enumerate(items):
        if isinstance(item, HOLDERS):
            attach(item, target, base + index)
    room = MAX_ITEMS - len(target.items)
    if room >= len(items):
        target.items.extend(items)
    else:
        if room > 0:
            target.items.extend(items[:room])
        target.extra += len(items) - max(room, 0)


def set_items(target: Any, pairs: list[Any]) -> bool:
    """SETITEM(S) onto ``target`` (flat key, value, key, value list); False if it is no mapping."""
    if isinstance(target, (DictV, Obj)):
        store = target.items
    else:
        return False
    for index in range(0, len(pairs) - 1, 2):
        key, value = pairs[index], pairs[index + 1]
        if isinstance(value, HOLDERS):
            attach(value, target, key)
        if len(store) < MAX_ITEMS:
            store.append((key, value))
        elif isinstance(target, DictV):
            target.extra += 1
    return True


def attach_state(state: Any, obj: Obj) -> None:
    """BUILD: the state's contents become the object's attributes (no extra key segment)."""
    parts = state if isinstance(state, tuple) else (state,)
    for part in parts:
        if isinstance(part, (DictV, ListV, Obj)) and not part.attached:
            part.attached = True
            obj.tensors.extend(part.tensors)
            part.tensors = []
        elif isinstance(part, TensorInfo):
            attach(part, obj, None)
