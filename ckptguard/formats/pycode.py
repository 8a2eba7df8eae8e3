"""Static analysis of Python files shipped in model repositories (``trust_remote_code`` code).

The source is parsed with ``ast.parse`` only: never imported, compiled to bytecode or executed.
Calls are resolved to dotted names through import aliases (``import subprocess as sp``,
``from os import system as s``), simple assignments (``run = os.system``), ``__import__`` /
``importlib.import_module`` with constant names, and ``getattr(mod, 'sys' + 'tem')`` with names
folded from constants.  Calls matching the ``remote_code_calls`` list become ``pycode.call`` facts:
``name``, ``category``, ``file``, ``line``, ``scope`` (``module``: runs on import, ``init``: in
``__init__`` of a class the repo's ``auto_map`` loads, ``function``: elsewhere), ``function``,
``args`` (``literal``, ``computed``, ``decoded``: fed by base64/zlib/marshal/...), ``snippet``.
Also ``pycode.builtins_patch`` (``setattr(builtins, ...)``) and ``parse.error``.

Allowlist-first: a call that is not on that denylist but goes into a capability module
(``rules/lists/remote_code_capabilities.yaml``: process, file-write, network, dynamic-import,
native) and is not on the known-safe list (``remote_code_safe_calls.yaml``) is a
``pycode.capability_call`` fact (``name``, ``capability``, ``file``, ``line``, ``scope``,
``function``, ``snippet``): an API nobody listed is reported, not passed.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from ckptguard.engine.namelists import NameList
from ckptguard.facts import Fact
from ckptguard.model import Location

MAX_EXEC_DEPTH = 3  # exec("...") literals analysed as code, nested at most this deep
MAX_FACTS = 500
MAX_SNIPPET = 160
MAX_FOLD = 4096  # characters of a folded constant string
WRITE_MODES = set("wax+")
BUILTIN_CALLS = {"exec", "eval", "compile", "__import__", "open", "getattr", "setattr",
                 "breakpoint", "input", "vars", "bytes", "bytearray"}


@dataclass(frozen=True)
class CodeLists:
    calls: NameList  # every category, as loaded from rules/lists/remote_code_calls.yaml
    decoders: NameList  # the "decoder" category alone
    capabilities: NameList | None = None  # remote_code_capabilities.yaml (allowlist-first)
    safe: NameList | None = None  # remote_code_safe_calls.yaml


def code_lists(calls: NameList, capabilities: NameList | None = None,
               safe: NameList | None = None) -> CodeLists:
    decoders = NameList.build("decoders", "", [e for e in calls.entries()
                                               if e.category == "decoder"])
    return CodeLists(calls, decoders, capabilities, safe)


# Path attributes and methods that return another path: ``Path(x).parent.joinpath(y).read_text``
# is judged as ``pathlib.Path.read_text``.
PATH_CHAIN = frozenset({"parent", "joinpath", "resolve", "absolute", "expanduser", "with_suffix",
                        "with_name", "with_stem", "relative_to", "cwd", "home"})


def path_method(name: str) -> str:
    """``pathlib.Path.<path-returning>...<method>`` collapsed to ``pathlib.Path.<method>``."""
    prefix = "pathlib.Path."
    if not name.startswith(prefix):
        return name
    parts = name[len(prefix):].split(".")
    while len(parts) > 1 and parts[0] in PATH_CHAIN:
        parts = parts[1:]
    return prefix + ".".join(parts)


def _read_mode(call: ast.Call, position: int) -> bool:
    """Whether an ``open``-style call has a constant mode that only reads (no mode: read)."""
    keywords = {k.arg: k.value for k in call.keywords if k.arg}
    node = call.args[position] if len(call.args) > position else keywords.get("mode")
    if node is None:
        return True
    mode = fold(node)
    return mode is not None and not WRITE_MODES & set(mode)


def fold(node: ast.AST | None, depth: int = 0) -> str | None:
    """The constant string an expression always evaluates to, when it is built only from
    literals (``'sys' + 'tem'``, ``''.join(['o', 's'])``, ``'metsys'[::-1]``, f-strings)."""
    if node is None or depth > 50:
        return None
    value: str | None = None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        value = node.value
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = fold(node.left, depth + 1), fold(node.right, depth + 1)
        value = left + right if left is not None and right is not None else None
    elif isinstance(node, ast.JoinedStr):
        parts = [fold(v.value if isinstance(v, ast.FormattedValue) else v, depth + 1)
                 for v in node.values]
        value = "".join(p for p in parts if p is not None) if None not in parts else None
    elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice) and \
            node.slice.lower is None and node.slice.upper is None and \
            isinstance(node.slice.step, ast.UnaryOp) and isinstance(node.slice.step.op, ast.USub) \
            and isinstance(node.slice.step.operand, ast.Constant) and \
            node.slice.step.operand.value == 1:
        inner = fold(node.value, depth + 1)
        value = inner[::-1] if inner is not None else None
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == "join" and len(node.args) == 1 and \
            isinstance(node.args[0], (ast.List, ast.Tuple)):
        sep = fold(node.func.value, depth + 1)
        items = [fold(e, depth + 1) for e in node.args[0].elts]
        value = sep.join(i for i in items if i is not None) \
            if sep is not None and None not in items else None
    return value if value is None or len(value) <= MAX_FOLD else None


class _Aliases(ast.NodeVisitor):
    """File-wide name -> dotted-name bindings from imports and simple assignments."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.star: list[str] = []  # modules imported with "from m import *"

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.asname:
                self.names[alias.asname] = alias.name
            else:
                root = alias.name.split(".")[0]
                self.names[root] = root

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level or not node.module:
            return  # relative imports stay inside the repo
        for alias in node.names:
            if alias.name == "*":
                self.star.append(node.module)
            else:
                self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"


@dataclass
class _Sink:
    facts: list[Fact]
    dropped: int = 0

    def add(self, fact: Fact) -> None:
        if len(self.facts) < MAX_FACTS:
            self.facts.append(fact)
        else:
            self.dropped += 1


class _Analyser:
    def __init__(self, tree: ast.Module, source: str, file: str, where: Location,
                 entry_classes: frozenset[str], lists: CodeLists, sink: _Sink,
                 depth: int, line: int | None = None) -> None:
        self.tree, self.source, self.file, self.where = tree, source, file, where
        self.entry_classes, self.lists, self.sink, self.depth = entry_classes, lists, sink, depth
        self.line = line  # inside exec("..."): the line of the exec call in the file
        self.lines: list[str] | None = None
        collector = _Aliases()
        collector.visit(tree)
        self.aliases = collector.names
        self.star = collector.star
        self.decoded_names: set[str] = set()
        self._assignments(tree)

    def _assignments(self, tree: ast.Module) -> None:
        """``run = os.system``, ``m = __import__('os')``, ``data = base64.b64decode(...)``."""
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                    isinstance(node.targets[0], ast.Name):
                target = node.targets[0].id
                if self._decodes(node.value):
                    self.decoded_names.add(target)
                if isinstance(node.value, ast.Call):
                    resolved = self._import_call(node.value)  # m = __import__('os')
                else:
                    resolved = self.resolve(node.value)  # run = os.system
                if resolved is not None:
                    self.aliases.setdefault(target, resolved)

    def _import_call(self, call: ast.Call) -> str | None:
        name = self.resolve(call.func)
        if name in ("builtins.__import__", "importlib.import_module") and call.args:
            return fold(call.args[0])
        return None

    def resolve(self, node: ast.AST, depth: int = 0) -> str | None:
        """The dotted name an expression refers to, or None when it is not import-rooted."""
        if depth > 30:
            return None
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            if node.id == "__builtins__":
                return "builtins"
            if node.id in BUILTIN_CALLS or node.id == "builtins":
                return f"builtins.{node.id}"
            for module in self.star:  # from subprocess import *; call(...)
                if self.lists.calls.lookup(f"{module}.{node.id}") is not None or (
                        self.lists.capabilities is not None and
                        self.lists.capabilities.lookup(f"{module}.{node.id}") is not None):
                    return f"{module}.{node.id}"
            return None
        if isinstance(node, ast.Attribute):
            base = self.resolve(node.value, depth + 1)
            if base == "builtins.builtins":
                base = "builtins"
            return f"{base}.{node.attr}" if base is not None else None
        if isinstance(node, ast.Call):
            imported = self._import_call(node)
            if imported is not None:
                return imported
            func = self.resolve(node.func, depth + 1)
            if func == "builtins.getattr" and len(node.args) >= 2:
                attr = fold(node.args[1])
                base = self.resolve(node.args[0], depth + 1)
                if attr is not None and base is not None:
                    return f"{base}.{attr}"
                return None
            return func  # a call's result: Path(x).write_text -> pathlib.Path.write_text
        if isinstance(node, ast.Subscript):  # os.__dict__['system'], vars(os)['system']
            key = fold(node.slice)
            value = node.value
            if key is not None and isinstance(value, ast.Attribute) and value.attr == "__dict__":
                base = self.resolve(value.value, depth + 1)
                return f"{base}.{key}" if base is not None else None
            if key is not None and isinstance(value, ast.Name) and value.id == "__builtins__":
                return f"builtins.{key}"
            if key is not None and isinstance(value, ast.Call) and \
                    self.resolve(value.func, depth + 1) == "builtins.vars" and value.args:
                base = self.resolve(value.args[0], depth + 1)
                return f"{base}.{key}" if base is not None else None
        return None

    def _decodes(self, node: ast.AST) -> bool:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                name = self.resolve(sub.func)
                if name is not None and name in self.lists.decoders:
                    return True
                if isinstance(sub.func, ast.Attribute) and sub.func.attr in ("decode",
                                                                             "fromhex") \
                        and self._decodes(sub.func.value):
                    return True
            if isinstance(sub, ast.Name) and sub.id in self.decoded_names:
                return True
        return False

    def _args_kind(self, call: ast.Call) -> str:
        if not call.args:
            return "none"
        first = call.args[0]
        if self._decodes(first):
            return "decoded"
        return "literal" if fold(first) is not None else "computed"

    def run(self) -> None:
        self._visit_body(self.tree.body, "module", "<module>")

    def _visit_body(self, body: list[ast.stmt], scope: str, function: str) -> None:
        for statement in body:
            self._visit_statement(statement, scope, function)

    def _visit_statement(self, node: ast.stmt, scope: str, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for expr in [*node.decorator_list, *node.args.defaults, *node.args.kw_defaults]:
                if expr is not None:
                    self._visit_expr(expr, scope, function)
            self._visit_body(node.body, "function", node.name)
            return
        if isinstance(node, ast.ClassDef):
            for expr in [*node.decorator_list, *node.bases, *(k.value for k in node.keywords)]:
                self._visit_expr(expr, scope, function)
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        item.name == "__init__" and node.name in self.entry_classes:
                    self._visit_body(item.body, "init", f"{node.name}.__init__")
                elif isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._visit_statement(item, scope, f"{node.name}.{item.name}")
                else:
                    self._visit_statement(item, scope, node.name)
            return
        self._visit_children(node, scope, function)

    def _visit_children(self, node: ast.AST, scope: str, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self._visit_statement(child, scope, function)
            elif isinstance(child, ast.expr):
                self._visit_expr(child, scope, function)
            else:  # except handlers, with items, match cases, keywords, comprehensions
                self._visit_children(child, scope, function)

    def _visit_expr(self, node: ast.expr, scope: str, function: str) -> None:
        for sub in ast.walk(node):
            if isinstance(sub, ast.Call):
                self._call(sub, scope, function)

    def _call(self, call: ast.Call, scope: str, function: str) -> None:
        name = self.resolve(call.func)
        if name is None:
            return
        if name == "builtins.setattr" and call.args and \
                self.resolve(call.args[0]) in ("builtins", "builtins.builtins"):
            self.sink.add(Fact.of("pycode.builtins_patch", self._at(call), file=self.file,
                                  line=self._line(call), target=fold(call.args[1])
                                  if len(call.args) > 1 else None,
                                  scope=scope, function=function, snippet=self._snippet(call)))
            return
        entry = self.lists.calls.lookup(name)
        if entry is None:
            self._capability(name, call, scope, function)
            return
        if entry.category == "decoder" or not self._dangerous(name, call):
            return
        args = self._args_kind(call)
        self.sink.add(Fact.of("pycode.call", self._at(call), name=name, category=entry.category,
                              file=self.file, line=self._line(call), scope=scope, function=function,
                              args=args, snippet=self._snippet(call), nested=self.depth))
        if entry.category == "code-execution" and args == "literal" and \
                name in ("builtins.exec", "builtins.eval", "builtins.compile"):
            self._nested(fold(call.args[0]) or "", scope, function, self._line(call))

    def _capability(self, name: str, call: ast.Call, scope: str, function: str) -> None:
        """Allowlist-first: a call into a capability module that nobody declared safe."""
        lists = self.lists
        name = path_method(name)
        capability = lists.capabilities.lookup(name) if lists.capabilities is not None else None
        if capability is None or (lists.safe is not None and lists.safe.lookup(name)):
            return
        if (name == "io.open" and _read_mode(call, 1)) or \
                (name == "pathlib.Path.open" and _read_mode(call, 0)):
            return
        self.sink.add(Fact.of("pycode.capability_call", self._at(call), name=name,
                              capability=capability.category, file=self.file,
                              line=self._line(call), scope=scope, function=function,
                              snippet=self._snippet(call), nested=self.depth))

    def _dangerous(self, name: str, call: ast.Call) -> bool:
        keywords = {k.arg: k.value for k in call.keywords if k.arg}
        if name in ("builtins.open", "io.open"):
            mode_node = call.args[1] if len(call.args) > 1 else keywords.get("mode")
            if mode_node is None:
                return False
            mode = fold(mode_node)
            return mode is None or bool(WRITE_MODES & set(mode))
        if name == "torch.load":
            flag = keywords.get("weights_only")
            return not (isinstance(flag, ast.Constant) and flag.value is True)
        if name == "numpy.load":
            flag = keywords.get("allow_pickle")
            return isinstance(flag, ast.Constant) and flag.value is True
        if name == "yaml.load":
            loader = keywords.get("Loader") or (call.args[1] if len(call.args) > 1 else None)
            return loader is None or "Safe" not in (self.resolve(loader) or "")
        return True

    def _nested(self, code: str, scope: str, function: str, line: int) -> None:
        if self.depth >= MAX_EXEC_DEPTH:
            return
        try:
            tree = ast.parse(code)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return
        inner = _Analyser(tree, code, self.file, self.where, self.entry_classes, self.lists,
                          self.sink, self.depth + 1, line)
        inner.aliases = {**self.aliases, **inner.aliases}
        inner._visit_body(tree.body, scope, function)

    def _line(self, node: ast.expr) -> int:
        return self.line if self.line is not None else node.lineno

    def _at(self, node: ast.expr) -> Location:
        return self.where.within(line=self._line(node))

    def _snippet(self, node: ast.expr) -> str:
        """The call's source text (first line of it), from lines split once per file."""
        if self.lines is None:
            self.lines = self.source.splitlines()
        index = node.lineno - 1
        if not 0 <= index < len(self.lines):
            return ""
        raw = self.lines[index].encode("utf-8")
        end = node.end_col_offset if node.end_lineno == node.lineno else None
        text = raw[node.col_offset:end].decode("utf-8", "replace")
        text = " ".join(text.split())
        return text if len(text) <= MAX_SNIPPET else text[:MAX_SNIPPET] + "…"


def analyse_python(source: str, file: str, where: Location, lists: CodeLists, *,
                   entry_classes: frozenset[str] = frozenset()) -> list[Fact]:
    """Facts about one Python file; ``entry_classes`` are the class names the repo's auto_map
    loads from this file (their ``__init__`` runs when the model is constructed)."""
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        return [Fact.of("parse.error", where.within(line=line), format="python", file=file,
                        error=f"{type(exc).__name__}: {exc}"[:300], offset=None, read=len(source))]
    except (RecursionError, MemoryError):
        return [Fact.of("parse.error", where, format="python", file=file,
                        error="nested too deeply for the Python parser", offset=None,
                        read=len(source))]
    sink = _Sink([])
    try:
        _Analyser(tree, source, file, where, entry_classes, lists, sink, 0).run()
    except RecursionError:
        sink.facts.append(Fact.of("limit.hit", where, limit="python nesting", value=0,
                                  detail=f"{file}: expressions nested too deeply to analyse"))
    if sink.dropped:
        sink.facts.append(Fact.of("limit.hit", where, limit="facts per Python file",
                                  value=sink.dropped,
                                  detail=f"{file}: {sink.dropped} further calls not reported"))
    return sink.facts


def iter_calls(facts: list[Fact]) -> Iterator[Fact]:
    return (f for f in facts if f.kind == "pycode.call")
