"""Symbolic values on the interpreter's stack and memo.

Plain constants (int, float, str, bool, None, tuples of values) are pushed as Python values; all
else is one of the classes below.  Nothing here is ever an object from the scanned file: a value
only describes what the unpickler would have built.  Containers keep a bounded number of items.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_ITEMS = 64  # items kept per container; the rest are counted, not stored
MAX_RENDER = 240  # characters of a reconstruction string


@dataclass(eq=False, slots=True)
class Blob:
    """Bytes in the stream (``contiguous``: the same bytes at ``offset`` in the artifact)."""

    offset: int
    length: int
    view: memoryview
    textual: bool = False  # a Python 2 ``str`` (STRING/BINSTRING/SHORT_BINSTRING)
    contiguous: bool = True

    def data(self, limit: int | None = None) -> bytes:
        return bytes(self.view if limit is None else self.view[:limit])


@dataclass(eq=False, slots=True)
class HugeInt:
    offset: int
    length: int


@dataclass(eq=False, slots=True)
class TensorInfo:
    """A tensor rebuilt from a persistent storage reference (torch checkpoints)."""

    offset: int
    storage_key: str
    storage_dtype: str
    location: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    storage_offset: int
    rpath: list[str] = field(default_factory=list)  # key path, innermost first
    attached: bool = False

    @property
    def name(self) -> str:
        return ".".join(reversed(self.rpath)) or f"tensor@{self.offset}"


@dataclass(eq=False, slots=True)
class Record:
    """One imported name, and how the load uses it (facts are made from records at the end)."""

    qualname: str
    module: str
    name: str
    raw: str
    opcode: str
    offset: int
    resolved_via: str | None = None
    reconstruction: str = ""
    owner: str | None = None  # class of the instance a bound method was taken from
    # The class whose attribute this is when the name is a member-like constant (``Cls.OK``):
    # an enum member reached by name, allowed when the class is an allowlisted enum.
    member_of: str | None = None
    target: str | None = None  # where a dotted getattr walk lands
    flags: set[str] = field(default_factory=set)
    stream_index: int = 0  # which pickle of the stream imported it

    @property
    def use(self) -> str:
        """called > instantiated > deserializer > resolver > referenced.  A helper whose product
        was never used to reach a reported name ("pending") counts as called.  "deserializer":
        a loader only ever handed bytes carried in the pickle itself (those bytes are scanned
        as a nested artifact, and the call is judged by what they hold)."""
        flags = self.flags
        if "called" in flags or ("pending" in flags and "resolver" not in flags):
            return "called"
        for flag in ("instantiated", "deserializer", "resolver"):
            if flag in flags:
                return flag
        return "referenced"


@dataclass(eq=False, slots=True)
class Ref:
    """A named callable or class: a global, or what a dynamic lookup resolved to."""

    record: Record
    expr: str  # how the file reaches it, e.g. "getattr(importlib.import_module('os'), 'system')"

    @property
    def qualname(self) -> str:
        return self.record.qualname


@dataclass(eq=False, slots=True)
class ModuleRef:
    """A module object (result of import_module / __import__ / sys.modules[...])."""

    name: str
    expr: str
    producers: list[Record]  # resolver records that produced it


@dataclass(eq=False, slots=True)
class Obj:
    """The result of a call or instantiation: unknown contents, known origin."""

    callee: Any
    cls: str | None  # qualname of the class or function that produced it, when named
    cls_record: Record | None
    expr: str
    offset: int
    tensors: list[TensorInfo] = field(default_factory=list)
    attached: bool = False
    items: list[tuple[Any, Any]] = field(default_factory=list)  # SETITEM(S) onto it, bounded
    state: Any = None  # BUILD state
    args: Any = None
    # A callable a BUILD stored as the instance's ``__setstate__`` (an instance attribute): the
    # unpickler calls it on the next BUILD of this object.
    planted_setstate: Any = None
    depth: int = 1  # containers nested in it, itself included (nesting.py)


@dataclass(eq=False, slots=True)
class ListV:
    items: list[Any] = field(default_factory=list)
    extra: int = 0
    tensors: list[TensorInfo] = field(default_factory=list)
    attached: bool = False
    kind: str = "list"  # list | set | frozenset
    depth: int = 1  # containers nested in it, itself included (nesting.py)


@dataclass(eq=False, slots=True)
class DictV:
    items: list[tuple[Any, Any]] = field(default_factory=list)
    extra: int = 0
    tensors: list[TensorInfo] = field(default_factory=list)
    attached: bool = False
    depth: int = 1  # containers nested in it, itself included (nesting.py)

    def get(self, key: Any) -> Any:
        for k, v in self.items:
            if type(k) is type(key) and k == key:
                return v
        return None


@dataclass(eq=False, slots=True)
class PersRef:
    """What a persistent_load would return for ``pid`` (torch storages)."""

    pid: Any
    offset: int


@dataclass(eq=False, slots=True)
class Partial:
    func: Any
    args: tuple[Any, ...]
    record: Record | None
    keywords: Any = None  # the partial's keyword arguments (a DictV), when its state sets them


@dataclass(eq=False, slots=True)
class Getter:
    """operator.attrgetter / itemgetter / methodcaller objects."""

    kind: str  # attrgetter | itemgetter | methodcaller
    names: tuple[Any, ...]
    args: tuple[Any, ...]
    record: Record


@dataclass(eq=False, slots=True)
class Opaque:
    """Anything ckptguard does not model (out-of-band buffers, extension codes, ...)."""

    what: str


def text_of(value: Any) -> str | None:
    """A value usable as a name: str, or a Python 2 byte string read as latin-1."""
    if isinstance(value, str):
        return value
    if isinstance(value, Blob) and value.length <= 4096:
        return value.data().decode("latin-1")
    return None


def render(value: Any, budget: int = MAX_RENDER) -> str:
    """A readable, bounded reconstruction of a value as Python source."""
    text = _render(value, budget)
    return text if len(text) <= budget else text[:budget - 1] + "…"


def render_call(callee: str, args: Any, budget: int = MAX_RENDER, kwargs: Any = None) -> str:
    """``callee(arg, ..., **kwargs)`` bounded to ``budget`` characters."""
    items = args if isinstance(args, tuple) else (args,)
    if kwargs is not None:
        items = (*items, KeywordsV(kwargs))
    room = max(16, budget - len(callee))
    parts: list[str] = []
    used = 0
    for item in items:
        piece = _render(item, room - used)
        parts.append(piece)
        used += len(piece) + 2
        if used >= room:
            break
    text = f"{callee}({', '.join(parts)})"
    return text if len(text) <= budget else text[:budget - 2] + "…)"


MAX_RENDER_DEPTH = 6


@dataclass(frozen=True)
class KeywordsV:
    """Keyword arguments of a call, for rendering only."""

    mapping: Any


def _render(value: Any, budget: int, depth: int = 0) -> str:
    if budget <= 0 or depth > MAX_RENDER_DEPTH:
        return "…"
    if isinstance(value, KeywordsV):
        return "**" + _render(value.mapping, budget - 2, depth + 1)
    if isinstance(value, (Ref, ModuleRef, Obj)):
        return value.expr
    if isinstance(value, str):
        return repr(value[:budget])
    if isinstance(value, Blob):
        head = value.data(min(value.length, budget))
        shown = repr(head.decode("latin-1") if value.textual else head)
        return shown if value.length <= budget else f"{shown}…({value.length} bytes)"
    if isinstance(value, tuple):
        parts = []
        used = 0
        for item in value:
            piece = _render(item, budget - used, depth + 1)
            parts.append(piece)
            used += len(piece) + 2
            if used >= budget:
                break
        inner = ", ".join(parts)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, ListV):
        inner = ", ".join(_render(v, budget // 2, depth + 1) for v in value.items[:8])
        more = ", …" if len(value.items) > 8 or value.extra else ""
        return f"{value.kind}([{inner}{more}])" if value.kind != "list" else f"[{inner}{more}]"
    if isinstance(value, DictV):
        quarter, deeper = budget // 4, depth + 1
        inner = ", ".join(f"{_render(k, quarter, deeper)}: {_render(v, quarter, deeper)}"
                          for k, v in value.items[:6])
        more = ", …" if len(value.items) > 6 or value.extra else ""
        return "{" + inner + more + "}"
    if isinstance(value, PersRef):
        return f"persistent_load({_render(value.pid, budget - 16, depth + 1)})"
    if isinstance(value, Partial):
        inner = _render((value.func, *value.args), budget - 18, depth + 1)[1:-1]
        return f"functools.partial({inner})"
    if isinstance(value, Getter):
        return f"operator.{value.kind}({_render(value.names, budget - 20, depth + 1)[1:-1]})"
    if isinstance(value, TensorInfo):
        return f"tensor(shape={value.shape})"
    if isinstance(value, HugeInt):
        return f"<{value.length}-byte int>"
    if isinstance(value, Opaque):
        return f"<{value.what}>"
    return repr(value)[:budget]
