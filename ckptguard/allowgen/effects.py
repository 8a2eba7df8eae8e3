"""What one function body calls, judged call by call.

A body is safe when every call in it (nested functions and lambdas included, as if they ran) is
to a known-safe built-in or standard-library callable, a container method, a constructor or
function of the analysed sources that is itself safe, or a method of the class being built that
is itself safe.  Calling an argument, a stored attribute, a computed value or anything unknown
is not safe.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from ckptguard.allowgen.index import Resolved
from ckptguard.allowgen.known import (
    CONTAINER_METHODS,
    HARMLESS_METHOD_DECORATORS,
    LOGGER_METHODS,
    MESSAGE_FORMATTERS,
    MUTATING_METHODS,
    REVIEWED_NATIVE,
    REVIEWED_NO_ARGUMENTS,
    SAFE_BASES,
    SAFE_BUILTINS,
    SAFE_EXTERNAL,
    TENSOR_METHODS,
    danger_of,
)
from ckptguard.allowgen.model import ENTRY_METHODS, ClassModel, Verdict
from ckptguard.pyast import dotted_name

Function = ast.FunctionDef | ast.AsyncFunctionDef
DANGER_MARK = " — "  # separates a dangerous callable from why it is dangerous
# Attributes that reach code objects, module namespaces or the class of an object.
FORBIDDEN_ATTRIBUTES = frozenset({"__globals__", "__code__", "__builtins__", "__subclasses__",
                                  "__class__", "__dict__", "__getattribute__", "__import__",
                                  "__loader__", "__spec__", "__func__", "__self__"})


class Judge(Protocol):
    """The analyser, as a body check sees it."""

    def resolve_in(self, module: str, dotted: str) -> Resolved: ...
    def class_verdict(self, name: str) -> Verdict: ...
    def class_model(self, name: str) -> ClassModel | None: ...
    def property_getter(self, concrete: ClassModel, name: str
                        ) -> tuple[ClassModel, Function] | None: ...
    def function_verdict(self, module: str, node: Function, concrete: ClassModel | None,
                         owner: ClassModel | None) -> Verdict: ...
    def method_after(self, concrete: ClassModel, owner: ClassModel | None, name: str
                     ) -> tuple[ClassModel, Function] | str | None: ...
    def trusted(self, name: str) -> bool: ...
    def tensor_attribute(self, concrete: ClassModel, attr: str) -> bool: ...


@dataclass(frozen=True)
class FunctionFacts:
    """What one walk over a function finds; computed once per function (see ``facts_of``)."""

    nodes: tuple[ast.AST, ...]  # calls, nested defs, attribute reads and yields, in walk order
    params: frozenset[str]
    local: frozenset[str]
    local_defs: frozenset[str]  # functions defined inside: their bodies are checked in place
    imports: Mapping[str, str]
    self_name: str | None
    has_calls: bool
    module_writes: tuple[str, ...] = ()  # module-level (or, in a classmethod, class) state set
    state_loop_names: frozenset[str] = frozenset()  # `for hook in _HOOKS.values()` targets
    self_reads: frozenset[str] = frozenset()  # attributes read as self.NAME (properties run)
    message_calls: frozenset[int] = frozenset()  # ids of calls that only build a raised error
    identity_reads: frozenset[int] = frozenset()  # ids of getattr calls compared by `is` only


@dataclass
class Scope:
    module: str
    concrete: ClassModel | None  # the class being built (self's type)
    owner: ClassModel | None  # the class that defines the function
    facts: FunctionFacts
    notes: set[str] = field(default_factory=set)

    @property
    def params(self) -> frozenset[str]:
        return self.facts.params

    @property
    def local(self) -> frozenset[str]:
        return self.facts.local

    @property
    def imports(self) -> Mapping[str, str]:
        return self.facts.imports

    @property
    def self_name(self) -> str | None:
        return self.facts.self_name


def facts_of(func: Function, module: str, is_package: bool, is_method: bool) -> FunctionFacts:
    decorators = {dotted_name(d) for d in func.decorator_list}
    positional = [*func.args.posonlyargs, *func.args.args]
    self_name = positional[0].arg if is_method and positional and \
        "staticmethod" not in decorators else None
    params: set[str] = set()
    local: set[str] = set()
    local_defs: set[str] = set()
    imports: dict[str, str] = {}
    nodes: list[ast.AST] = []
    stores: list[str] = []  # base names of subscript/attribute stores
    loops: list[tuple[str, set[str]]] = []  # (iterated name, loop target names)
    classmethod_ = "classmethod" in decorators
    reads: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load) and \
                isinstance(node.value, ast.Name) and node.value.id == self_name:
            reads.add(node.attr)
        if isinstance(node, ast.Global):
            stores.extend(node.names)
        elif isinstance(node, (ast.Subscript, ast.Attribute)) and \
                isinstance(node.ctx, (ast.Store, ast.Del)):
            base = node.value
            while isinstance(base, (ast.Subscript, ast.Attribute)):
                base = base.value
            if isinstance(base, ast.Name):
                stores.append(base.id)
        elif isinstance(node, (ast.For, ast.comprehension)):
            source = node.iter
            if isinstance(source, ast.Call) and isinstance(source.func, ast.Attribute) and \
                    source.func.attr in ("values", "items", "keys") and not source.args:
                source = source.func.value
            if isinstance(source, ast.Name):
                loops.append((source.id, {n.id for n in ast.walk(node.target)
                                          if isinstance(n, ast.Name)}))
        if isinstance(node, ast.arg):
            params.add(node.arg)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            local.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node is not func:
            local_defs.add(node.name)
            nodes.append(node)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                target = alias.name if alias.asname else alias.name.split(".")[0]
                imports[alias.asname or target] = target
        elif isinstance(node, ast.ImportFrom):
            parts = module.split(".")
            package = parts if is_package else parts[:-1]
            if node.level > 1:
                package = package[:len(package) - (node.level - 1)]
            origin = ".".join([*package, *([node.module] if node.module else [])]) \
                if node.level else (node.module or "")
            for alias in node.names:
                if alias.name != "*":
                    imports[alias.asname or alias.name] = f"{origin}.{alias.name}"
        elif isinstance(node, (ast.Call, ast.Await, ast.Yield, ast.YieldFrom)) or (
                isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES):
            nodes.append(node)
    if self_name:
        params.discard(self_name)
    message = frozenset(id(n) for n in _error_paths(func) if isinstance(n, ast.Call))
    identity = frozenset(id(side) for n in ast.walk(func) if isinstance(n, ast.Compare) and
                         all(isinstance(op, (ast.Is, ast.IsNot)) for op in n.ops)
                         for side in (n.left, *n.comparators) if isinstance(side, ast.Call))
    own = params | local | local_defs | set(imports)
    writes = sorted({name for name in stores if name not in own and (
        name != self_name or classmethod_)})
    state_loops = frozenset(target for source, targets in loops
                            if source not in own and source != self_name for target in targets)
    return FunctionFacts(tuple(nodes), frozenset(params), frozenset(local - local_defs),
                         frozenset(local_defs), imports, self_name,
                         any(isinstance(n, ast.Call) for n in nodes), tuple(writes),
                         state_loops, frozenset(reads), message, identity)


def _error_paths(func: Function) -> Iterator[ast.AST]:
    """Nodes that run only to build an error that is then raised: the expressions of every
    ``raise``, and every statement of a block inside the function (``if``/``else`` branch,
    ``except`` handler, loop or ``with`` body) whose last statement is a ``raise``.  Nested
    functions are skipped: their bodies run elsewhere."""
    pending: list[ast.AST] = [func]
    while pending:
        node = pending.pop()
        for name in ("body", "orelse", "handlers", "finalbody"):
            block = getattr(node, name, None)
            if not isinstance(block, list) or not block:
                continue
            if name != "handlers" and isinstance(block[-1], ast.Raise) and node is not func:
                for stmt in block:
                    if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef,
                                             ast.ClassDef)):
                        yield from ast.walk(stmt)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Raise):
                yield from ast.walk(child)
            elif not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda,
                                        ast.ClassDef)):
                pending.append(child)


class BodyCheck:
    def __init__(self, judge: Judge, scope: Scope) -> None:
        self.judge = judge
        self.scope = scope

    def run(self, func: Function) -> str | None:
        """None when every call is safe, else a problem found (one naming a dangerous callable
        first: ``open(p).read()`` is reported for ``open``)."""
        problems = [p for p in self._problems() if p]
        if not problems:
            return None
        return next((p for p in problems if DANGER_MARK in p), problems[0])

    def _problems(self) -> Iterator[str | None]:
        for name in self.scope.facts.module_writes:
            yield f"changes module or class state ({name})"
        concrete = self.scope.concrete
        for name in sorted(self.scope.facts.self_reads):
            getter = self.judge.property_getter(concrete, name) if concrete else None
            if getter is not None:
                verdict = self.judge.function_verdict(getter[0].module, getter[1], concrete,
                                                      getter[0])
                if not verdict.safe:
                    yield f"reads the property {name}, which {verdict.reason}"
        for node in self.scope.facts.nodes:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for decorator in node.decorator_list:
                    target = decorator.func if isinstance(decorator, ast.Call) else decorator
                    dotted = dotted_name(target)
                    found = self.judge.resolve_in(self.scope.module, dotted) if dotted else None
                    if found is None or found.name not in HARMLESS_METHOD_DECORATORS:
                        yield f"defines {node.name} with the decorator {ast.unparse(target)}"
            if isinstance(node, ast.Call):
                yield self.call(node)
            elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES - {
                    "__class__", "__dict__"}:
                yield f"reads {node.attr}"
            elif isinstance(node, (ast.Await, ast.Yield, ast.YieldFrom)):
                yield "is a coroutine or generator"

    # -- calls ---------------------------------------------------------------------------
    def call(self, call: ast.Call) -> str | None:
        func = call.func
        if id(call) in self.scope.facts.message_calls:
            dotted = dotted_name(func)
            head = dotted.split(".")[0] if dotted else ""
            if dotted and head not in self.scope.params and head not in self.scope.local and \
                    head != self.scope.self_name:
                target = self.scope.imports[head] + dotted[len(head):] \
                    if head in self.scope.imports else dotted
                if self.judge.resolve_in(self.scope.module, target).name in MESSAGE_FORMATTERS:
                    self.scope.notes.add("calls")
                    return None  # describes an object for the error being raised
        if isinstance(func, ast.Attribute):
            return self.method_call(call, func)
        if isinstance(func, ast.Name):
            name = func.id
            if name in self.scope.imports:
                return self.resolved(self.judge.resolve_in(self.scope.module,
                                                           self.scope.imports[name]), call)
            if name in self.scope.facts.local_defs and name not in self.scope.params:
                return None  # a function defined here: its body is part of this check
            if name in self.scope.facts.state_loop_names and name not in self.scope.params:
                # A hook the program registered in module state (registering functions are
                # refused: they change module state).
                self.scope.notes.add("calls")
                return None
            if name in self.scope.params:
                return f"calls its argument {name}()"
            if name in self.scope.local or name == self.scope.self_name:
                return f"calls a local value {name}()"
            return self.resolved(self.judge.resolve_in(self.scope.module, name), call)
        return f"calls a computed value {ast.unparse(func)[:60]}"

    def method_call(self, call: ast.Call, func: ast.Attribute) -> str | None:
        attr = func.attr
        receiver = func.value
        if isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Name) and \
                receiver.func.id == "super":
            return self.own_method(attr, after_owner=True)
        head = dotted_name(receiver)
        if isinstance(receiver, ast.Constant) and isinstance(receiver.value, (str, bytes)):
            return None  # "".join(...), "{}".format(...): a method of a literal string
        if head is None:
            if attr in CONTAINER_METHODS:
                return None
            return f"calls .{attr}() of a computed value"
        first = head.split(".")[0]
        if first in self.scope.imports:
            target = self.scope.imports[first] + head[len(first):]
            return self.resolved(self.judge.resolve_in(self.scope.module, f"{target}.{attr}"),
                                 call)
        if first == self.scope.self_name:
            if head == first:
                return self.own_method(attr, after_owner=False)
            if head == f"{first}.__dict__" and attr in ("update", "setdefault", "get", "copy",
                                                        "items", "keys", "values", "pop"):
                self.scope.notes.add("updates __dict__")
                return None
            if attr in CONTAINER_METHODS:
                return None
            concrete = self.scope.concrete
            if attr in TENSOR_METHODS and head.count(".") == 1 and concrete is not None and \
                    self.judge.tensor_attribute(concrete, head.split(".")[1]):
                self.scope.notes.add("calls")
                return None  # a tensor the class itself builds (known.TENSOR_METHODS)
            return f"calls {head}.{attr}(), a method of a stored attribute"
        if first in self.scope.params or first in self.scope.local:
            if attr in CONTAINER_METHODS:
                return None
            return f"calls {head}.{attr}() of an argument or local value"
        if attr in LOGGER_METHODS and "log" in first.lower():
            return None
        if attr in CONTAINER_METHODS and head == first and first not in SAFE_BUILTINS:
            if attr in MUTATING_METHODS:
                return f"changes module state ({first}.{attr})"
            return None  # reads a container of module-level state (not pickle data)
        if first in ("object", "dict", "list", "tuple", "set", "str", "int", "float") and \
                head == first and (attr in ENTRY_METHODS or attr in CONTAINER_METHODS):
            return None
        owner = self.judge.resolve_in(self.scope.module, head)
        if owner.kind == "class":  # Base.method(self, ...): a method looked up from Base
            return self.class_method(owner.name, attr, call)
        return self.resolved(self.judge.resolve_in(self.scope.module, f"{head}.{attr}"), call)

    def class_method(self, class_name: str, name: str, call: ast.Call) -> str | None:
        model = self.judge.class_model(class_name)
        if model is None:
            return f"calls {class_name}.{name}, which cannot be read"
        found = self.judge.method_after(model, None, name)
        if not isinstance(found, tuple):
            if name in ENTRY_METHODS and (found is None or self.judge.trusted(found)
                                          or found in SAFE_BASES):
                return None
            return f"calls {class_name}.{name}, not a method of the analysed sources"
        owner, node = found
        first = call.args[0] if call.args else None
        on_self = isinstance(first, ast.Name) and first.id == self.scope.self_name
        concrete = self.scope.concrete if on_self and self.scope.concrete else model
        self.scope.notes.add("calls")
        verdict = self.judge.function_verdict(owner.module, node, concrete, owner)
        return None if verdict.safe else f"{class_name}.{name}() {verdict.reason}"

    def own_method(self, name: str, *, after_owner: bool) -> str | None:
        concrete = self.scope.concrete
        if concrete is None:
            return f"calls {name}() of an unknown class"
        found = self.judge.method_after(concrete, self.scope.owner if after_owner else None,
                                        name)
        if found is None:
            if after_owner and (name in ENTRY_METHODS or name == "__delattr__"):
                # object's own __init__/__new__/__setattr__/__delattr__ (property deleters
                # are judged with the class)
                return None
            return f"calls self.{name}(), which no analysed class defines (a stored attribute?)"
        if isinstance(found, str):
            if name in ENTRY_METHODS or name in CONTAINER_METHODS or (
                    found in SAFE_BASES and name.startswith("__")):
                return None  # the external base is trusted: checked with the class
            return f"calls {name}() inherited from {found}, not analysed"
        owner, node = found
        self.scope.notes.add("calls")
        verdict = self.judge.function_verdict(owner.module, node, concrete, owner)
        return None if verdict.safe else f"{name}() {verdict.reason}"

    def resolved(self, target: Resolved, call: ast.Call) -> str | None:
        kind, name = target.kind, target.name
        if name in REVIEWED_NATIVE:
            self.scope.notes.add("calls")
            return None
        if kind == "builtin":
            return self.builtin(name.split(".", 1)[1], call)
        self.scope.notes.add("calls")
        if kind == "class":
            if name in REVIEWED_NO_ARGUMENTS and not call.args and not call.keywords:
                return None
            if self.judge.trusted(name):
                return None  # on the hand-reviewed list: safe to construct from any arguments
            verdict = self.judge.class_verdict(name)
            return None if verdict.safe else f"constructs {name}, which {verdict.reason}"
        if kind == "function" and isinstance(target.node, (ast.FunctionDef,
                                                           ast.AsyncFunctionDef)):
            verdict = self.judge.function_verdict(target.module, target.node, None, None)
            return None if verdict.safe else f"calls {name}, which {verdict.reason}"
        if kind == "external":
            if name in SAFE_EXTERNAL:
                return None
            if name == "inspect.signature" and self.own_bound_method(call):
                return None
            why = danger_of(name)
            if why:
                return f"calls {name}{DANGER_MARK}{why}"
            if name in SAFE_EXTERNAL or name in REVIEWED_NATIVE or self.judge.trusted(name):
                return None
            if name.startswith("logging.") and name.rsplit(".", 1)[1] in LOGGER_METHODS:
                return None
            return f"calls {name}, outside the analysed sources and not known safe"
        if kind == "module":
            return f"calls module {name}"
        if name in REVIEWED_NATIVE or (name and self.judge.trusted(name)):
            return None
        return f"calls {ast.unparse(call.func)[:60]}, which static analysis cannot resolve"

    def own_bound_method(self, call: ast.Call) -> bool:
        """``inspect.signature(self.method)`` with no other argument: it reads the signature
        metadata of a method the class defines (``eval_str`` stays False: nothing is
        evaluated).  Any other argument may be a pickle-built object with a
        ``__signature__`` of its own, and is not accepted."""
        if len(call.args) != 1 or call.keywords:
            return False
        arg = call.args[0]
        concrete = self.scope.concrete
        if concrete is None or not (isinstance(arg, ast.Attribute) and isinstance(
                arg.value, ast.Name) and arg.value.id == self.scope.self_name):
            return False
        return isinstance(self.judge.method_after(concrete, None, arg.attr), tuple)

    def any_getter(self, concrete: ClassModel) -> str | None:
        """``hasattr(self, name)`` with a computed name may run any property getter of the
        class (``__getattr__`` is judged with the class): each must be safe."""
        for cls in concrete.mro:
            for stmt in cls.node.body:
                if not isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                getter = self.judge.property_getter(concrete, stmt.name)
                if getter is None:
                    continue
                verdict = self.judge.function_verdict(getter[0].module, getter[1], concrete,
                                                      getter[0])
                if not verdict.safe:
                    return f"calls hasattr(self, name), which may read the property " \
                           f"{stmt.name}, which {verdict.reason}"
        self.scope.notes.add("calls")
        return None

    def builtin(self, name: str, call: ast.Call) -> str | None:
        if name in ("getattr", "setattr", "delattr", "hasattr"):
            key = call.args[1] if len(call.args) > 1 else None
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                if name == "getattr" and key.value == "__func__" and \
                        id(call) in self.scope.facts.identity_reads:
                    return None  # `getattr(m, "__func__", None) is f`: compared, never used
                return None if key.value not in FORBIDDEN_ATTRIBUTES or name == "hasattr" \
                    else f"calls {name} on {key.value}"
            first = call.args[0] if call.args else None
            on_self = isinstance(first, ast.Name) and first.id == self.scope.self_name
            if name in ("setattr", "delattr") and on_self:
                self.scope.notes.add("sets attributes by name")
                return None
            if name == "hasattr" and on_self and self.scope.concrete is not None:
                return self.any_getter(self.scope.concrete)
            return f"calls {name} with a computed attribute name"
        if name == "type" and len(call.args) > 1:
            return None
        if name in SAFE_BUILTINS:
            return None
        why = danger_of(f"builtins.{name}")
        if why:
            return f"calls {name}(){DANGER_MARK}{why}"
        return f"calls built-in {name}(), not known safe"


def check_body(judge: Judge, func: Function, facts: FunctionFacts, module: str,
               concrete: ClassModel | None, owner: ClassModel | None
               ) -> tuple[str | None, set[str], bool]:
    """(problem or None, notes, whether the body calls anything at all)."""
    scope = Scope(module, concrete, owner, facts)
    problem = BodyCheck(judge, scope).run(func)
    return problem, scope.notes, facts.has_calls
