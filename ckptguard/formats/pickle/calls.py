"""What a call in a pickle would do, worked out symbolically.

``invoke`` handles REDUCE/INST/OBJ/NEWOBJ/NEWOBJ_EX: it records the call, follows dynamic
resolution (getattr, import_module, __import__, sys.modules lookups, operator getters,
functools.partial, copyreg reconstructors) to the callable actually reached, notices bytes handed
to a deserializer, and turns torch rebuild calls into tensors.  ``build`` handles BUILD.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ckptguard.formats.pickle import special
from ckptguard.formats.pickle.containers import attach_state
from ckptguard.formats.pickle.names import (
    DESERIALIZERS,
    JOBLIB_OLD_WRAPPERS,
    JOBLIB_WRAPPERS,
    TORCH_PARAMETER,
    TORCH_REBUILD,
    UNPICKLERS,
    canonical,
)
from ckptguard.formats.pickle.trace import CallEvent, NestedEvent, Note, Trace
from ckptguard.formats.pickle.values import (
    Blob,
    DictV,
    Getter,
    ListV,
    ModuleRef,
    Obj,
    Partial,
    Ref,
    TensorInfo,
    render,
    render_call,
    text_of,
)

if TYPE_CHECKING:
    from ckptguard.formats.pickle.interpreter import Machine

Resolver = Callable[["Machine", Ref, tuple[Any, ...], int, str], Any]
INSTANTIATING = ("newobj", "newobj_ex")


def invoke(m: Machine, callee: Any, args: Any, kind: str, offset: int,
           kwargs: Any = None) -> Any:
    """The value a call would produce; records the call and what it reaches."""
    items: tuple[Any, ...] = args if isinstance(args, tuple) else (args,)
    if isinstance(callee, Partial):
        if callee.record is not None and isinstance(callee.func, Ref):
            callee.record.flags.add("resolver")
        return invoke(m, callee.func, callee.args + items, kind, offset,
                      callee.keywords if kwargs is None else kwargs)
    if isinstance(callee, Getter):
        return _apply_getter(m, callee, items, offset)
    if not isinstance(callee, Ref):
        expr = render(callee, 120)
        reconstruction = render_call(expr, items, kwargs=kwargs)
        m.trace.call(CallEvent(expr, kind, offset, reconstruction, True))
        made = Obj(callee, None, None, reconstruction, offset, args=items)
        m.nesting.made_from(made, items, offset)
        return made
    record = callee.record
    reconstruction = render_call(callee.expr, items, kwargs=kwargs) \
        if m.trace.worth_rendering(record.qualname) else f"{callee.expr}(…)"
    m.trace.call(CallEvent(record.qualname, kind, offset, reconstruction, False))
    name = canonical(record.qualname)
    resolver = RESOLVERS.get(name)
    if resolver is not None:
        result = resolver(m, callee, items, offset, reconstruction)
        if result is not None:
            if record.reconstruction == callee.expr:
                record.reconstruction = reconstruction
            return result
    if record.reconstruction == callee.expr:
        record.reconstruction = reconstruction
    loads_carried_bytes = (name in DESERIALIZERS or record.qualname in DESERIALIZERS) and \
        kind not in INSTANTIATING and _nested(m, record.qualname, items, offset)
    if name in UNPICKLERS:
        # Unpickler(io.BytesIO(b)).load(): the bytes are scanned; the class stays a call.
        _nested(m, name, items, offset)
    record.flags.add("instantiated" if kind in INSTANTIATING else
                     "deserializer" if loads_carried_bytes else "called")
    if name in TORCH_REBUILD:
        tensor = special.rebuild_tensor(items, offset)
        if tensor is not None:
            m.trace.tensors.append(tensor)
            return tensor
    elif name in TORCH_PARAMETER and items and isinstance(items[0], TensorInfo):
        return items[0]
    made = Obj(callee, record.qualname, record, reconstruction, offset, args=items)
    m.nesting.made_from(made, items if kwargs is None else (*items, kwargs), offset)
    return made


def method_call(trace: Trace, target: Any, method: str, args: tuple[Any, ...],
                offset: int) -> None:
    """APPENDS/SETITEMS on something that is not a plain container call one of its methods."""
    owner = target.cls if isinstance(target, Obj) and target.cls else render(target, 80)
    dynamic = not (isinstance(target, Obj) and target.cls)
    trace.call(CallEvent(f"{owner}.{method}", "reduce", offset,
                           render_call(f"{render(target, 80)}.{method}", args), dynamic))


def _nested(m: Machine, callee: str, items: tuple[Any, ...], offset: int) -> bool:
    """Record bytes the pickle hands to a deserializer; whether there were such bytes (only
    then is the call judged by what the bytes hold)."""
    data = items[0] if items else None
    if isinstance(data, Obj) and data.cls in ("io.BytesIO", "_io.BytesIO") and data.args:
        data = data.args[0]
    if isinstance(data, Obj):
        data = special.bytes_built_at_load(data)
    if isinstance(data, Blob):
        pickle_like = DESERIALIZERS.get(canonical(callee), DESERIALIZERS.get(callee, True))
        m.trace.nested.append(NestedEvent(callee, data.offset if data.contiguous else offset,
                                          data.length, data, pickle_like))
        return bool(pickle_like)  # marshal.loads makes code whatever the bytes: still a call
    return False


def build(m: Machine, obj: Any, state: Any, offset: int) -> None:
    if isinstance(obj, Partial):
        if isinstance(state, tuple) and len(state) >= 2:
            obj.func = state[0]
            if isinstance(state[1], tuple):
                obj.args = state[1]
            if len(state) >= 3 and isinstance(state[2], DictV) and state[2].items:
                obj.keywords = state[2]
        return
    if isinstance(obj, (Ref, ModuleRef)):
        # BUILD on a class, function or module itself: its __setstate__ or __dict__.update runs
        # on the global, which patches process state for everything loaded afterwards.
        name = obj.qualname if isinstance(obj, Ref) else obj.name
        m.trace.call(CallEvent(f"{name}.__setstate__", "setstate", offset,
                               render_call(f"{obj.expr}.__setstate__", (state,)), False,
                               on_global=True))
        if isinstance(obj, Ref):
            obj.record.flags.add("called")
        return
    if not isinstance(obj, Obj):
        return
    if obj.planted_setstate is not None:
        # CPython looks __setstate__ up on the instance: a callable an earlier BUILD stored
        # there is called with this state.
        invoke(m, obj.planted_setstate, (state,), "reduce", offset)
        return
    cls = obj.cls or "<dynamic>"
    method = f"{cls}.__setstate__"
    reconstruction = render_call(f"{obj.expr}.__setstate__", (state,)) \
        if m.trace.worth_rendering(method) else f"{method}(…)"
    m.trace.call(CallEvent(method, "setstate", offset, reconstruction, obj.cls is None))
    if obj.cls_record is not None:
        obj.cls_record.flags.add("instantiated")
    attach_state(state, obj)
    m.nesting.place(obj, (state,), offset)
    obj.state = state
    obj.planted_setstate = _planted_setstate(state)
    if obj.cls in JOBLIB_WRAPPERS:
        special.skip_joblib_array(m, state, offset + 1)
    elif obj.cls in JOBLIB_OLD_WRAPPERS:
        m.trace.joblib_arrays += 1
        # joblib.load opens this file beside the pickle with numpy.load(allow_pickle=True).
        filename = state.get("filename") if isinstance(state, DictV) else None
        m.trace.side_files.append(Note(offset, filename if isinstance(filename, str) else "",
                                       (("wrapper", obj.cls),)))


def _planted_setstate(state: Any) -> Any:
    """The value BUILD would store as the instance attribute ``__setstate__`` (through the
    ``__dict__`` update or the slot-state ``setattr``), if any."""
    parts = state if isinstance(state, tuple) and len(state) == 2 else (state,)
    for part in parts:
        if isinstance(part, DictV):
            planted = part.get("__setstate__")
            if planted is not None:
                return planted
    return None


# -- dynamic resolution -------------------------------------------------------------------------


def attribute(m: Machine, base: Any, name: str, offset: int, via: Ref | None) -> Ref | None:
    """``getattr(base, name)`` as a named reference, when ``base`` is something named."""
    via_name = via.qualname if via is not None else None
    expr = f"getattr({render(base, 120)}, {name!r})"
    if isinstance(base, ModuleRef):
        for producer in base.producers:
            producer.flags.add("resolver")
        return m.named(base.name, name, raw=expr, opcode="REDUCE", offset=offset, via=via_name,
                       expr=expr)
    if isinstance(base, Ref):
        base.record.flags.add("resolver")
        record = base.record
        return m.named(record.module, f"{record.name}.{name}", raw=expr, opcode="REDUCE",
                       offset=offset, via=via_name, expr=expr)
    if isinstance(base, Obj) and base.cls_record is not None:
        record = base.cls_record
        return m.named(record.module, f"{record.name}.{name}", raw=expr, opcode="REDUCE",
                       offset=offset, via=via_name, expr=expr, owner=record.qualname)
    return None


def _getattr(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    name = text_of(args[1]) if len(args) >= 2 else None
    if name is None:
        return None
    result = attribute(m, args[0], name, offset, ref)
    if result is not None:
        ref.record.flags.add("resolver")
    return result


def _module(m: Machine, ref: Ref, name: str, recon: str, *extra: Any) -> ModuleRef:
    ref.record.flags.add("pending")
    producers = [ref.record, *(e.record for e in extra if isinstance(e, Ref))]
    for producer in producers[1:]:
        producer.flags.add("pending")
    return ModuleRef(name, recon, producers)


def _import_module(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    name = text_of(args[0]) if args else None
    if name is None:
        return None
    package = text_of(args[1]) if len(args) > 1 else None
    if name.startswith(".") and package:
        level = len(name) - len(name.lstrip("."))
        base = package.rsplit(".", level - 1)[0] if level > 1 else package
        name = f"{base}.{name.lstrip('.')}"
    return _module(m, ref, name, recon)


def _dunder_import(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    name = text_of(args[0]) if args else None
    if name is None:
        return None
    fromlist = args[3] if len(args) > 3 else None
    nonempty = (isinstance(fromlist, tuple) and bool(fromlist)) or \
        (isinstance(fromlist, ListV) and bool(fromlist.items))
    return _module(m, ref, name if nonempty else name.split(".")[0], recon)


def _lookup(m: Machine, ref: Ref, container: Any, key: Any, recon: str,
            extra: Any = None) -> Any:
    if isinstance(container, Ref) and canonical(container.qualname) == "sys.modules":
        name = text_of(key)
        if name is not None:
            return _module(m, ref, name, recon, container)
    if isinstance(container, DictV):
        found = container.get(key)
        if found is not None:
            ref.record.flags.add("resolver")
            return found
    return None


def _getitem(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    return _lookup(m, ref, args[0], args[1], recon) if len(args) >= 2 else None


def _modules_get(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    name = text_of(args[0]) if args else None
    return _module(m, ref, name, recon) if name is not None else None


def _getter(kind: str) -> Resolver:
    def make(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
        if not args:
            return None
        ref.record.flags.add("pending")
        names, extra = (args[:1], args[1:]) if kind == "methodcaller" else (args, ())
        return Getter(kind, names, extra, ref.record)
    return make


def _apply_getter(m: Machine, getter: Getter, items: tuple[Any, ...], offset: int) -> Any:
    target = items[0] if items else None
    m.trace.call(CallEvent(f"operator.{getter.kind}(...)", "reduce", offset,
                           render_call(render(getter, 120), items), False))
    results = []
    for raw_name in getter.names:
        if getter.kind == "itemgetter":
            value = _lookup(m, Ref(getter.record, getter.record.qualname), target, raw_name,
                            render_call(render(getter, 120), items))
            results.append(value)
            continue
        name = text_of(raw_name)
        value = target
        for part in (name or "").split(".") if name else []:
            value = attribute(m, value, part, offset, Ref(getter.record, getter.record.qualname))
            if value is None:
                break
        if value is not None and name:
            getter.record.flags.add("resolver")
        if getter.kind == "methodcaller":
            return invoke(m, value, getter.args, "reduce", offset) if value is not None else \
                Obj(getter, None, None, render(getter), offset)
        results.append(value)
    if any(r is None for r in results):
        return Obj(getter, None, None, render_call(render(getter, 120), items), offset)
    return results[0] if len(results) == 1 else tuple(results)


def _partial(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    if not args:
        return None
    func = args[0]
    ref.record.flags.add("resolver" if isinstance(func, Ref) else "pending")
    return Partial(func, args[1:], ref.record)


def _instance(m: Machine, ref: Ref, cls: Any, recon: str, offset: int, base: Any = None) -> Any:
    if not isinstance(cls, Ref):
        return None
    ref.record.flags.add("resolver")
    cls.record.flags.add("instantiated")
    if isinstance(base, Ref) and canonical(base.qualname) != "builtins.object":
        base.record.flags.add("instantiated")
    return Obj(cls, cls.qualname, cls.record, recon, offset)


def _reconstructor(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    return _instance(m, ref, args[0] if args else None, recon, offset,
                     args[1] if len(args) > 1 else None)


def _newobj(m: Machine, ref: Ref, args: tuple[Any, ...], offset: int, recon: str) -> Any:
    return _instance(m, ref, args[0] if args else None, recon, offset)


RESOLVERS: dict[str, Resolver] = {
    "builtins.getattr": _getattr,
    "importlib.import_module": _import_module,
    "builtins.__import__": _dunder_import,
    "importlib.__import__": _dunder_import,
    "operator.getitem": _getitem,
    "sys.modules.get": _modules_get,
    "sys.modules.__getitem__": _modules_get,
    "operator.attrgetter": _getter("attrgetter"),
    "operator.itemgetter": _getter("itemgetter"),
    "operator.methodcaller": _getter("methodcaller"),
    "functools.partial": _partial,
    "copyreg._reconstructor": _reconstructor,
    "copyreg.__newobj__": _newobj,
    "copyreg.__newobj_ex__": _newobj,
}
