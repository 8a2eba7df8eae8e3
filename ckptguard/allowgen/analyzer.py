"""Classifying classes and functions of the analysed sources as safe to build and restore.

A class is safe when building it from a pickle (calling it, or ``__new__`` plus
``__setstate__``/attribute restore) runs only code proven safe: enums (a lookup by value, plus
``_missing_`` when defined), NamedTuples, TypedDicts, and classes whose ``__new__``,
``__init__``, ``__post_init__``, ``__setstate__``, ``__setattr__`` and property setters, found
through the class's MRO in the analysed sources, pass ``effects.check_body``.  A base, decorator
or metaclass that cannot be proven harmless makes the class unsafe.  Nothing is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator

from ckptguard.allowgen.effects import Function, FunctionFacts, check_body, facts_of
from ckptguard.allowgen.index import Index, Resolved
from ckptguard.allowgen.known import (
    CONTAINER_METHODS,
    DATACLASS_DECORATORS,
    ENUM_BASES,
    HARMLESS_CLASS_DECORATORS,
    HARMLESS_METHOD_DECORATORS,
    LOADER_CALLED_METHODS,
    NAMEDTUPLE_BASES,
    PROTOCOL_METHODS,
    REVIEWED_NATIVE,
    SAFE_BASES,
    SAFE_EXTERNAL,
    SAFE_METACLASSES,
    TENSOR_CLASSES,
    TYPEDDICT_BASES,
)
from ckptguard.allowgen.model import ENTRY_METHODS, ClassModel, Verdict
from ckptguard.allowgen.returns import DATA_BUILTINS, DataCheck
from ckptguard.pyast import dotted_name

IN_PROGRESS = Verdict(True, "(being analysed)")


class Analyzer:
    def __init__(self, index: Index, trusted: Callable[[str], bool] | None = None) -> None:
        self.index = index
        self._trusted = trusted or (lambda name: False)
        self._classes: dict[str, ClassModel | None] = {}
        self._class_verdicts: dict[str, Verdict] = {}
        self._function_verdicts: dict[tuple[str, str, int], Verdict] = {}
        self._facts: dict[tuple[int, bool], FunctionFacts] = {}
        self._returns: dict[tuple[str, int], bool] = {}
        self._tensor_attributes: dict[tuple[str, str], bool] = {}

    # -- Judge protocol ----------------------------------------------------------------
    def trusted(self, name: str) -> bool:
        return self._trusted(name)

    def resolve_in(self, module: str, dotted: str) -> Resolved:
        head, _, tail = dotted.partition(".")
        base = self.index.resolve_name(module, head)
        if not tail:
            return base
        if base.kind == "module":
            return self.index.resolve_dotted(f"{base.name}.{tail}")
        if base.kind in ("external", "builtin"):
            return Resolved("external", f"{base.name}.{tail}")
        if self.index.has_module(dotted):
            return Resolved("module", dotted, module=dotted)
        return Resolved("unknown", dotted)

    def method_after(self, concrete: ClassModel, owner: ClassModel | None, name: str
                     ) -> tuple[ClassModel, Function] | str | None:
        chain = concrete.mro
        if owner is not None:
            names = [c.name for c in chain]
            chain = chain[names.index(owner.name) + 1:] if owner.name in names else []
        for cls in chain:
            node = cls.method(name)
            if node is not None:
                return cls, node
            if cls.assigns(name):
                return f"{cls.name} (assigned in the class body)"
        for cls in [concrete, *concrete.mro]:
            for base in cls.external_bases:
                if base not in ("builtins.object", "typing.Generic", "abc.ABC"):
                    return base
        return None

    def tensor_attribute(self, concrete: ClassModel, attr: str) -> bool:
        """Whether the class's own code binds ``self.<attr>`` only to tensors: every
        ``self.attr = v``, ``setattr(self, "attr", v)``, ``self.register_buffer("attr", v)`` and
        ``self.register_parameter("attr", v)`` in the methods of its MRO gives a tensor factory
        call, a reviewed tensor class built from one, a tensor method of one, or None; no class
        body binds the name; and every base is analysed.  (What a pickle restores instead is
        covered by TENSOR_METHODS being protocol methods; see known.py.)"""
        key = (concrete.name, attr)
        if key not in self._tensor_attributes:
            self._tensor_attributes[key] = self._tensor_bound(concrete, attr)
        return self._tensor_attributes[key]

    def _tensor_bound(self, concrete: ClassModel, attr: str) -> bool:
        if any(b != "builtins.object" for cls in concrete.mro for b in cls.external_bases):
            return False
        bound = False
        for cls in concrete.mro:
            if cls.assigns(attr) or cls.method(attr) is not None:
                return False
            for stmt in cls.node.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                positional = [*stmt.args.posonlyargs, *stmt.args.args]
                if not positional:
                    continue
                me = positional[0].arg
                for value in _bindings_of(stmt, me, attr):
                    if value is None or not self._tensor_expr(cls.module, value):
                        return False
                    bound = True
        return bound

    def _tensor_expr(self, module: str, node: ast.expr) -> bool:
        if isinstance(node, ast.Constant) and node.value is None:
            return True
        if isinstance(node, ast.IfExp):
            return self._tensor_expr(module, node.body) and self._tensor_expr(module,
                                                                               node.orelse)
        if not isinstance(node, ast.Call):
            return False
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in ("clone", "detach"):
            return self._tensor_expr(module, func.value)
        dotted = dotted_name(func)
        found = self.resolve_in(module, dotted) if dotted else None
        if found is None:
            return False
        if found.name in TENSOR_CLASSES:
            first = node.args[0] if node.args else None
            return first is None or self._tensor_expr(module, first)
        return found.name in REVIEWED_NATIVE and found.name.startswith("torch.") and \
            found.name.split(".")[-1] in TENSOR_FACTORIES

    # -- classes -------------------------------------------------------------------------
    def class_model(self, name: str) -> ClassModel | None:
        if name in self._classes:
            return self._classes[name]
        module, _, short = name.rpartition(".")
        info = self.index.module(module)
        binding = info.unique(short) if info else None
        if binding is None or binding.kind != "class" or not isinstance(binding.node,
                                                                         ast.ClassDef):
            self._classes[name] = None
            return None
        model = ClassModel(name, module, binding.node)
        self._classes[name] = model
        self._fill(model)
        return model

    def _fill(self, model: ClassModel) -> None:
        for decorator in model.node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            resolved = self._resolve_expr(model.module, target)
            if resolved in DATACLASS_DECORATORS:
                model.is_dataclass = True
            elif resolved not in HARMLESS_CLASS_DECORATORS and \
                    not self._identity_decorator(model.module, decorator):
                model.problem = f"has the class decorator {resolved or ast.unparse(target)}, " \
                                "not known harmless"
        for keyword in model.node.keywords:
            if keyword.arg == "metaclass":
                meta = self._resolve_expr(model.module, keyword.value)
                if meta not in SAFE_METACLASSES and not self._harmless_metaclass(meta):
                    model.problem = f"has the metaclass {meta or ast.unparse(keyword.value)}"
        for base in model.node.bases:
            expr = base.value if isinstance(base, ast.Subscript) else base
            if isinstance(expr, ast.Call):
                callee = self._resolve_expr(model.module, expr.func)
                if callee in ("collections.namedtuple", "typing.NamedTuple"):
                    model.external_bases.append("typing.NamedTuple")
                    continue
                model.problem = f"has a computed base {ast.unparse(base)}"
                continue
            dotted = dotted_name(expr)
            found = self.resolve_in(model.module, dotted) if dotted else None
            if found is None or found.kind in ("unknown", "module", "function"):
                model.problem = f"has the base {ast.unparse(base)}, which cannot be resolved"
            elif found.kind == "class":
                parent = self.class_model(found.name)
                if parent is None or parent is model:
                    model.problem = f"has the base {found.name}, which cannot be read"
                else:
                    model.local_bases.append(parent)
            else:
                model.external_bases.append(found.name)
        seen: list[ClassModel] = [model]
        for parent in model.local_bases:
            for cls in parent.mro:
                if cls not in seen:
                    seen.append(cls)
        model.mro = seen

    def _identity_decorator(self, module: str, decorator: ast.expr) -> bool:
        """A decorator (or decorator factory) of the analysed sources that returns the object it
        is given, changing at most its ``__doc__``/``__module__``/``__qualname__``/``__name__``,
        and whose body is safe: ``add_start_docstrings(...)``, ``set_module("numpy")``."""
        factory = isinstance(decorator, ast.Call)
        target = decorator.func if isinstance(decorator, ast.Call) else decorator
        dotted = dotted_name(target)
        found = self.resolve_in(module, dotted) if dotted else None
        if found is None or found.kind != "function" or not isinstance(
                found.node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
        outer = found.node
        applied: Function = outer
        if factory:
            inner = {s.name: s for s in outer.body
                     if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef))}
            last = outer.body[-1] if outer.body else None
            if not (isinstance(last, ast.Return) and isinstance(last.value, ast.Name)
                    and last.value.id in inner):
                return False
            applied = inner[last.value.id]
        if not _returns_its_argument(applied):
            return False
        return self.function_verdict(found.module, outer, None, None).safe

    def _harmless_metaclass(self, name: str | None) -> bool:
        if not name:
            return False
        if name in ("enum.EnumMeta", "enum.EnumType"):
            return True
        meta = self.class_model(name)
        return meta is not None and meta.problem is None and \
            all(cls.method("__call__") is None for cls in meta.mro) and \
            all(b in SAFE_METACLASSES or b in ("enum.EnumMeta", "enum.EnumType")
                for cls in meta.mro for b in cls.external_bases)

    def _resolve_expr(self, module: str, node: ast.AST) -> str | None:
        dotted = dotted_name(node)
        if dotted is None:
            return None
        resolved = self.resolve_in(module, dotted)
        return resolved.name if resolved.kind != "unknown" else None

    def class_verdict(self, name: str) -> Verdict:
        if name in self._class_verdicts:
            return self._class_verdicts[name]
        self._class_verdicts[name] = IN_PROGRESS
        model = self.class_model(name)
        verdict = Verdict(False, "cannot be read") if model is None else self._judge(model)
        self._class_verdicts[name] = verdict
        return verdict

    def _judge(self, model: ClassModel) -> Verdict:
        for cls in model.mro:
            if cls.problem:
                return Verdict(False, cls.problem if cls is model else
                               f"inherits from {cls.name}, which {cls.problem}")
        externals = {b for cls in model.mro for b in cls.external_bases}
        if externals & ENUM_BASES:
            return self._enum(model)
        if externals & TYPEDDICT_BASES:
            return Verdict(True, "TypedDict: a plain dict at run time", "typeddict")
        for base in sorted(externals - ENUM_BASES - NAMEDTUPLE_BASES - SAFE_BASES):
            if self._trusted(base):
                continue
            return Verdict(False, f"inherits from {base}, which is not proven safe")
        notes: list[str] = []
        for method in self._checked_methods(model):
            found = self.method_after(model, None, method)
            if found is None or isinstance(found, str):
                continue
            owner, node = found
            verdict = self.function_verdict(owner.module, node, model, owner)
            if not verdict.safe:
                return Verdict(False, f"{method}: {verdict.reason}")
            notes.append(f"{method} {verdict.reason}")
        for owner, node, label in self._accessors(model):
            verdict = self.function_verdict(owner.module, node, model, owner)
            if not verdict.safe:
                return Verdict(False, f"{label}: {verdict.reason}")
        descriptor = self._descriptor(model)
        if descriptor:
            return Verdict(False, descriptor)
        factory = self._dataclass_factories(model)
        if factory:
            return Verdict(False, factory)
        bad = self._container_method_problem(model)
        if bad:
            return Verdict(False, bad)
        if externals & NAMEDTUPLE_BASES:
            return Verdict(True, "; ".join(["NamedTuple: a tuple of its fields", *notes]),
                           "namedtuple")
        if any(cls.is_dataclass for cls in model.mro):
            return Verdict(True, "; ".join(["dataclass: the generated __init__ assigns fields",
                                            *notes]), "dataclass")
        if not notes:
            return Verdict(True, "no constructor or state hook of its own: instances are "
                                 "built by object.__new__ and restored by __dict__ update",
                           "class")
        return Verdict(True, "; ".join(notes), "class")

    def _checked_methods(self, model: ClassModel) -> list[str]:
        return [*ENTRY_METHODS, *LOADER_CALLED_METHODS.get(model.name.split(".")[0], ())]

    def property_getter(self, concrete: ClassModel, name: str
                        ) -> tuple[ClassModel, Function] | None:
        """The getter a read of ``self.name`` runs, first in the MRO."""
        for cls in concrete.mro:
            for stmt in cls.node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        stmt.name == name and any(
                            (dotted_name(d) or "").split(".")[-1] in ("property",
                                                                     "cached_property")
                            for d in stmt.decorator_list):
                    return cls, stmt
            if any(isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Assign,
                                  ast.AnnAssign)) and getattr(s, "name", None) == name
                   for s in cls.node.body):
                return None
        return None

    def _accessors(self, model: ClassModel) -> Iterator[tuple[ClassModel, Function, str]]:
        """Code that reading or setting an attribute can run: property getters and setters,
        ``__getattr__``/``__getattribute__``/``__delattr__``, through the MRO."""
        for cls in model.mro:
            for stmt in cls.node.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                marks = {d.attr if isinstance(d, ast.Attribute) else dotted_name(d)
                         for d in stmt.decorator_list}
                if marks & {"setter", "deleter"}:  # BUILD's slot state calls setattr
                    yield cls, stmt, f"property {stmt.name}"
                elif stmt.name in ("__getattr__", "__getattribute__", "__delattr__"):
                    yield cls, stmt, stmt.name

    def _descriptor(self, model: ClassModel) -> str | None:
        """A class attribute built from an analysed class that defines ``__get__``/``__set__``
        runs that code on attribute access: it must be safe too."""
        for cls in model.mro:
            for stmt in cls.node.body:
                value = stmt.value if isinstance(stmt, (ast.Assign, ast.AnnAssign)) else None
                if not isinstance(value, ast.Call):
                    continue
                dotted = dotted_name(value.func)
                found = self.resolve_in(cls.module, dotted) if dotted else None
                if found is None or found.kind != "class":
                    continue
                descriptor = self.class_model(found.name)
                for hook in ("__get__", "__set__", "__delete__", "__set_name__"):
                    located = self.method_after(descriptor, None, hook) if descriptor else None
                    if isinstance(located, tuple):
                        verdict = self.function_verdict(located[0].module, located[1],
                                                        descriptor, located[0])
                        if not verdict.safe:
                            return f"holds the descriptor {found.name}, whose {hook} " \
                                   f"{verdict.reason}"
        return None

    def _enum(self, model: ClassModel) -> Verdict:
        found = self.method_after(model, None, "_missing_")
        if isinstance(found, tuple):
            owner, node = found
            verdict = self.function_verdict(owner.module, node, model, owner)
            if not verdict.safe:
                return Verdict(False, f"_missing_: {verdict.reason}")
            return Verdict(True, f"enum: members are looked up by value; _missing_ "
                                 f"{verdict.reason}", "enum")
        return Verdict(True, "enum: members are looked up by value, no _missing_ hook", "enum")

    def _dataclass_factories(self, model: ClassModel) -> str | None:
        for cls in model.mro:
            if not cls.is_dataclass:
                continue
            for stmt in cls.node.body:
                if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.value, ast.Call)):
                    continue
                for keyword in stmt.value.keywords:
                    if keyword.arg != "default_factory":
                        continue
                    problem = self._factory_problem(cls.module, keyword.value)
                    if problem:
                        return f"field default_factory {problem}"
        return None

    def _factory_problem(self, module: str, node: ast.expr) -> str | None:
        dotted = dotted_name(node)
        if dotted is None:
            if isinstance(node, ast.Lambda):
                for call in (n for n in ast.walk(node.body) if isinstance(n, ast.Call)):
                    if self._factory_problem(module, call.func):
                        return f"{ast.unparse(node)} calls {ast.unparse(call.func)}"
                return None
            return f"{ast.unparse(node)} is computed"
        resolved = self.resolve_in(module, dotted)
        if resolved.kind == "builtin" and resolved.name.split(".")[1] in (
                "list", "dict", "set", "tuple", "frozenset", "str", "int", "float", "bool"):
            return None
        if resolved.kind == "class" and self.class_verdict(resolved.name).safe:
            return None
        if resolved.kind == "function" and isinstance(resolved.node, (ast.FunctionDef,
                                                                      ast.AsyncFunctionDef)):
            verdict = self.function_verdict(resolved.module, resolved.node, None, None)
            return None if verdict.safe else f"{resolved.name} {verdict.reason}"
        if resolved.kind == "external" and resolved.name in ("collections.OrderedDict",
                                                             "collections.defaultdict"):
            return None
        return f"{dotted} is not proven safe"

    def _container_method_problem(self, model: ClassModel) -> str | None:
        for cls in model.mro:
            for stmt in cls.node.body:
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        stmt.name in PROTOCOL_METHODS:
                    verdict = self.function_verdict(cls.module, stmt, model, cls)
                    if not verdict.safe:
                        return f"defines {stmt.name}() that {verdict.reason} (a method " \
                               "other allowlisted code calls on the objects it is given)"
        return None

    # -- functions -----------------------------------------------------------------------
    def function_verdict(self, module: str, node: Function, concrete: ClassModel | None,
                         owner: ClassModel | None) -> Verdict:
        key = (concrete.name if concrete else "", module, id(node))
        if key in self._function_verdicts:
            return self._function_verdicts[key]
        self._function_verdicts[key] = IN_PROGRESS
        verdict = self._function(module, node, concrete, owner)
        self._function_verdicts[key] = verdict
        return verdict

    def _function(self, module: str, node: Function, concrete: ClassModel | None,
                  owner: ClassModel | None) -> Verdict:
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            name = self._resolve_expr(module, target)
            if name not in HARMLESS_METHOD_DECORATORS and not (
                    isinstance(target, ast.Attribute) and target.attr == "setter") and \
                    not self._identity_decorator(module, decorator):
                return Verdict(False, f"is decorated with {name or ast.unparse(target)}")
        key = (id(node), owner is not None)
        facts = self._facts.get(key)
        if facts is None:
            info = self.index.module(module)
            facts = facts_of(node, module, bool(info and info.is_package), owner is not None)
            self._facts[key] = facts
        problem, notes, calls = check_body(self, node, facts, module, concrete, owner)
        if problem:
            return Verdict(False, problem)
        if "updates __dict__" in notes:
            return Verdict(True, "updates __dict__", "function")
        if not calls:
            return Verdict(True, "assigns attributes only", "function")
        if "calls" not in notes:
            return Verdict(True, "assigns attributes and builds containers", "function")
        return Verdict(True, "calls only proven-safe code", "function")

    def module_function_verdict(self, name: str) -> Verdict:
        """A function a pickle may call: its body must be safe and it must return data (never
        a callable that is not itself on the list)."""
        resolved = self.index.resolve_dotted(name)
        if resolved.kind != "function" or not isinstance(resolved.node, (ast.FunctionDef,
                                                                         ast.AsyncFunctionDef)):
            return Verdict(False, "cannot be read")
        verdict = self.function_verdict(resolved.module, resolved.node, None, None)
        if verdict.safe and not self.returns_data(resolved.module, resolved.node):
            return Verdict(False, "may return an attribute or a module-level object (a "
                                  "callable the pickle could call next)")
        return verdict

    def returns_data(self, module: str, node: Function) -> bool:
        key = (module, id(node))
        if key not in self._returns:
            self._returns[key] = True  # a cycle: judged by the other returns
            check = DataCheck(node, lambda call: self._call_returns_data(module, call, check))
            self._returns[key] = check.returns_data(node)
        return self._returns[key]

    def _call_returns_data(self, module: str, call: ast.Call, check: DataCheck) -> bool:
        arguments = [*call.args, *(k.value for k in call.keywords)]
        if not all(check.data(a) for a in arguments):
            return False
        func = call.func
        if isinstance(func, ast.Attribute) and (isinstance(func.value, ast.Constant) or (
                func.attr in CONTAINER_METHODS and check.data(func.value))):
            return True
        dotted = dotted_name(func)
        if dotted is None or dotted.split(".")[0] in check.params or \
                dotted.split(".")[0] in check.assigned:
            return False
        found = self.resolve_in(module, dotted)
        if found.kind == "builtin":
            return found.name.split(".", 1)[1] in DATA_BUILTINS
        if found.kind == "class":
            return True  # an instance of an analysed class
        if found.kind == "function" and isinstance(found.node, (ast.FunctionDef,
                                                                ast.AsyncFunctionDef)):
            return self.returns_data(found.module, found.node)
        return found.name in SAFE_EXTERNAL or found.name in REVIEWED_NATIVE


TENSOR_FACTORIES = frozenset({"empty", "zeros", "ones", "full", "tensor", "as_tensor",
                              "empty_strided", "empty_like", "zeros_like", "ones_like",
                              "arange"})
REGISTERING = frozenset({"register_buffer", "register_parameter"})


def _bindings_of(func: Function, me: str, attr: str) -> Iterator[ast.expr | None]:
    """Values ``func`` binds to ``me.attr`` by name; None for a binding whose value cannot be
    told (unpacking, augmented assignment, an attribute or item of it).  Bindings under a
    computed name (``setattr(self, name, value)`` in ``load_state_dict``, the generic
    ``register_buffer`` body) are not attributed: their value is an argument, hence either
    built by the class's code or by the pickle, and the second case is what makes
    TENSOR_METHODS protocol methods."""
    for node in ast.walk(func):
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                for part in ast.walk(target):
                    if isinstance(part, ast.Attribute) and part.attr == attr and isinstance(
                            part.value, ast.Name) and part.value.id == me:
                        direct = part is target and not isinstance(node, ast.AugAssign)
                        if isinstance(node, ast.AnnAssign) and node.value is None:
                            continue  # an annotation binds nothing
                        yield node.value if direct else None
        elif isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) and isinstance(
                node.func.value, ast.Name) and node.func.value.id == me else \
                "setattr" if isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and node.args and isinstance(node.args[0], ast.Name) and \
                node.args[0].id == me else None
            if name not in (*REGISTERING, "setattr"):
                continue
            args = node.args[1:] if name == "setattr" else node.args
            key = args[0] if args else None
            if isinstance(key, ast.Constant) and key.value == attr:
                yield args[1] if len(args) > 1 else None


RENAMING_ATTRIBUTES = frozenset({"__doc__", "__module__", "__qualname__", "__name__"})


def _returns_its_argument(func: Function) -> bool:
    """Every ``return`` of ``func`` (not of functions inside it) returns its first parameter,
    which is never rebound, and only its naming attributes are assigned."""
    positional = [*func.args.posonlyargs, *func.args.args]
    if not positional:
        return False
    param = positional[0].arg
    returns = 0
    pending: list[ast.AST] = list(func.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            continue
        if isinstance(node, ast.Return):
            if not (isinstance(node.value, ast.Name) and node.value.id == param):
                return False
            returns += 1
        if isinstance(node, ast.Name) and node.id == param and isinstance(node.ctx, ast.Store):
            return False
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)) and \
                isinstance(node.value, ast.Name) and node.value.id == param and \
                node.attr not in RENAMING_ATTRIBUTES:
            return False
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                node.func.id in ("setattr", "delattr"):
            return False
        pending.extend(ast.iter_child_nodes(node))
    return returns > 0
