"""An index of parsed modules and static name resolution across them.

Only what the module's text proves is used: a name bound once, unconditionally, at module level
by ``class``, ``def``, ``import``/``from ... import`` (including ``*`` with a literal ``__all__``
or the public names) or ``NAME = other.name``.  Anything else resolves to ``Unknown``.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field

from ckptguard.pyast import dotted_name

MAX_DEPTH = 40


@dataclass(frozen=True)
class Binding:
    kind: str  # "class", "function", "import", "alias", "other"
    node: ast.AST | None = None
    target: str = ""  # for "import": the dotted name imported
    conditional: bool = False  # bound inside if/try/for/with: not a proof


@dataclass
class ModuleInfo:
    name: str
    is_package: bool
    tree: ast.Module
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    star_imports: list[str] = field(default_factory=list)
    all_names: tuple[str, ...] | None = None

    def unique(self, name: str) -> Binding | None:
        """The binding of ``name`` when exactly one, unconditional one exists."""
        found = self.bindings.get(name)
        if not found or len(found) != 1 or found[0].conditional:
            return None
        return found[0]


@dataclass(frozen=True)
class Resolved:
    """What a dotted name statically refers to."""

    kind: str  # "class", "function", "module", "external", "builtin", "unknown"
    name: str  # canonical dotted name (defining module + qualname) or the external name
    node: ast.AST | None = None
    module: str = ""  # defining module, for classes and functions


UNKNOWN = Resolved("unknown", "")


def absolute_import(module: ModuleInfo, level: int, target: str | None) -> str:
    if level == 0:
        return target or ""
    parts = module.name.split(".")
    base = parts if module.is_package else parts[:-1]
    if level > 1:
        base = base[:len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _record(info: ModuleInfo, name: str, binding: Binding) -> None:
    info.bindings.setdefault(name, []).append(binding)


def _bind_targets(info: ModuleInfo, target: ast.AST, conditional: bool) -> None:
    for node in ast.walk(target):
        if isinstance(node, ast.Name):
            _record(info, node.id, Binding("other", None, conditional=conditional))


def _collect(info: ModuleInfo, body: list[ast.stmt], conditional: bool) -> None:
    for stmt in body:
        if isinstance(stmt, ast.ClassDef):
            _record(info, stmt.name, Binding("class", stmt, conditional=conditional))
        elif isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
            _record(info, stmt.name, Binding("function", stmt, conditional=conditional))
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    _record(info, alias.asname, Binding("import", target=alias.name,
                                                        conditional=conditional))
                else:
                    top = alias.name.split(".")[0]
                    _record(info, top, Binding("import", target=top, conditional=conditional))
        elif isinstance(stmt, ast.ImportFrom):
            source = absolute_import(info, stmt.level, stmt.module)
            for alias in stmt.names:
                if alias.name == "*":
                    if not conditional:
                        info.star_imports.append(source)
                    continue
                _record(info, alias.asname or alias.name,
                        Binding("import", target=f"{source}.{alias.name}",
                                conditional=conditional))
        elif isinstance(stmt, ast.Assign):
            only = stmt.targets[0] if len(stmt.targets) == 1 else None
            simple = only.id if isinstance(only, ast.Name) else None
            if simple and isinstance(stmt.value, (ast.Name, ast.Attribute)):
                _record(info, simple, Binding("alias", stmt.value, conditional=conditional))
            else:
                for target in stmt.targets:
                    _bind_targets(info, target, conditional)
            if simple == "__all__" and isinstance(stmt.value, (ast.List, ast.Tuple)):
                names = [e.value for e in stmt.value.elts
                         if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                info.all_names = tuple(names)
        elif isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
            _bind_targets(info, stmt.target, conditional)
            if isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) and \
                    stmt.target.id == "__all__":
                info.all_names = None  # extended at run time: not a literal any more
        elif isinstance(stmt, ast.Delete):
            for target in stmt.targets:
                _bind_targets(info, target, True)
        elif isinstance(stmt, (ast.If, ast.Try, ast.For, ast.While, ast.With, ast.Match)):
            for child in ast.iter_child_nodes(stmt):
                if isinstance(child, ast.stmt):
                    _collect(info, [child], True)
                elif isinstance(child, (ast.ExceptHandler, ast.match_case)):
                    _collect(info, list(child.body), True)
            for extra in ("orelse", "finalbody"):
                _collect(info, list(getattr(stmt, extra, []) or []), True)


def parse_module(name: str, text: str, is_package: bool) -> ModuleInfo | None:
    try:
        tree = ast.parse(text, type_comments=False)
    except (SyntaxError, ValueError, RecursionError):
        return None
    info = ModuleInfo(name, is_package, tree)
    _collect(info, tree.body, False)
    return info


class Index:
    """Parsed modules by dotted name, parsed on first use."""

    def __init__(self, sources: Mapping[str, str], packages: Mapping[str, bool]) -> None:
        self._sources = sources
        self._is_package = packages
        self._parsed: dict[str, ModuleInfo | None] = {}
        self._tops = frozenset(name.split(".")[0] for name in sources)
        self._names: dict[tuple[str, str], Resolved] = {}

    def has_module(self, name: str) -> bool:
        return name in self._sources

    def module(self, name: str) -> ModuleInfo | None:
        if name not in self._parsed:
            text = self._sources.get(name)
            self._parsed[name] = None if text is None else \
                parse_module(name, text, self._is_package.get(name, False))
        return self._parsed[name]

    def module_names(self) -> list[str]:
        return sorted(self._sources)

    def resolve_dotted(self, dotted: str, depth: int = 0) -> Resolved:
        if depth > MAX_DEPTH or not dotted:
            return UNKNOWN
        parts = dotted.split(".")
        for split in range(len(parts), 0, -1):
            prefix = ".".join(parts[:split])
            if self.has_module(prefix):
                rest = parts[split:]
                if not rest:
                    return Resolved("module", prefix, module=prefix)
                return self.resolve_attribute(prefix, rest, depth + 1)
        if parts[0] in self.tops():
            return Resolved("unknown", dotted)  # inside an analysed package, not provable
        if len(parts) == 1 and hasattr(builtins, parts[0]):
            return Resolved("builtin", f"builtins.{parts[0]}")
        return Resolved("external", dotted)

    def tops(self) -> frozenset[str]:
        return self._tops

    def resolve_attribute(self, module: str, rest: list[str], depth: int) -> Resolved:
        first = self.resolve_name(module, rest[0], depth)
        if first.kind == "unknown" and len(rest) > 1:
            return Resolved("unknown", ".".join([first.name or f"{module}.{rest[0]}", *rest[1:]]))
        if len(rest) == 1 or first.kind in ("unknown", "external", "builtin"):
            if first.kind in ("external", "builtin") and len(rest) > 1:
                return Resolved("external", ".".join([first.name, *rest[1:]]))
            return first
        if first.kind == "module":
            return self.resolve_dotted(".".join([first.name, *rest[1:]]), depth + 1)
        return UNKNOWN  # attributes of classes or functions: not followed

    def resolve_name(self, module: str, name: str, depth: int = 0) -> Resolved:
        """What ``name`` at the top level of ``module`` refers to."""
        key = (module, name)
        if key not in self._names:
            found = self._resolve_name(module, name, depth)
            if depth > 0 and found.kind == "unknown":
                return found  # may be an artefact of a cycle cut short: not cached
            self._names[key] = found
        return self._names[key]

    def _resolve_name(self, module: str, name: str, depth: int) -> Resolved:
        if depth > MAX_DEPTH:
            return UNKNOWN
        info = self.module(module)
        if info is None:
            return UNKNOWN
        binding = info.unique(name)
        if binding is None:
            if name in info.bindings:
                return Resolved("unknown", f"{module}.{name}")
            if self.has_module(f"{module}.{name}"):
                return Resolved("module", f"{module}.{name}", module=f"{module}.{name}")
            for source in info.star_imports:
                star = self.module(source)
                listed = star is not None and (
                    (star.all_names is None and not name.startswith("_"))
                    or (star.all_names is not None and name in star.all_names))
                if listed:
                    found = self.resolve_name(source, name, depth + 1)
                    if found.kind != "unknown":
                        return found
                elif not listed and star is None and not self.has_module(source):
                    return Resolved("unknown", f"{module}.{name}")  # an external star import
            if hasattr(builtins, name):
                return Resolved("builtin", f"builtins.{name}")
            return Resolved("unknown", f"{module}.{name}")
        if binding.kind == "class":
            return Resolved("class", f"{module}.{name}", binding.node, module)
        if binding.kind == "function":
            return Resolved("function", f"{module}.{name}", binding.node, module)
        if binding.kind == "import":
            if self.has_module(binding.target):
                return Resolved("module", binding.target, module=binding.target)
            return self.resolve_dotted(binding.target, depth + 1)
        if binding.kind == "alias" and binding.node is not None:
            dotted = dotted_name(binding.node)
            if dotted:
                head, _, tail = dotted.partition(".")
                base = self.resolve_name(module, head, depth + 1)
                if not tail:
                    return base
                if base.kind == "module":
                    return self.resolve_dotted(f"{base.name}.{tail}", depth + 1)
                if base.kind in ("external", "builtin"):
                    return Resolved("external", f"{base.name}.{tail}")
        return Resolved("unknown", f"{module}.{name}")


