"""From sources to allowlist entries: every module-level class and function of the target
packages is judged; a safe one is listed under its defining module, and under each name another
module of the package provably re-exports it as."""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ckptguard.allowgen.analyzer import Analyzer
from ckptguard.allowgen.index import Index, Resolved
from ckptguard.allowgen.model import Verdict
from ckptguard.allowgen.sources import SourceSet


@dataclass(frozen=True)
class Judged:
    name: str  # the dotted name a pickle would use
    kind: str  # "class" or "function"
    verdict: Verdict
    alias_of: str = ""  # the defining name, for re-exports


@dataclass(frozen=True)
class BuildResult:
    sources: SourceSet
    judged: tuple[Judged, ...]  # every class and function, safe or not, sorted by name
    refused: tuple[tuple[str, str], ...]  # safe by analysis but named by the denylist

    @property
    def safe(self) -> tuple[Judged, ...]:
        refused = {name for name, _ in self.refused}
        return tuple(j for j in self.judged if j.verdict.safe and j.name not in refused)


PROBE = "__any_name__"  # a name no module defines: refused only by a whole-module pattern


def make_index(target: SourceSet, context: Iterable[SourceSet] = ()) -> Index:
    modules: dict[str, str] = {}
    packages: dict[str, bool] = {}
    for source in (target, *context):
        for name, text in source.modules.items():
            if name not in modules:
                modules[name] = text
                packages[name] = name in source.inits
    return Index(modules, packages)


def _exports(index: Index, module: str) -> list[str]:
    """Names ``module`` provably binds to something defined elsewhere: unconditional imports and
    aliases, and the literal ``__all__`` of modules it star-imports."""
    info = index.module(module)
    if info is None:
        return []
    names = [n for n, b in info.bindings.items()
             if len(b) == 1 and not b[0].conditional and b[0].kind in ("import", "alias")]
    for source in info.star_imports:
        star = index.module(source)
        if star is not None and star.all_names is not None:
            names.extend(n for n in star.all_names if n not in info.bindings)
    return sorted(set(names))


def build(target: SourceSet, *, context: Iterable[SourceSet] = (),
          trusted: Callable[[str], bool] | None = None,
          refuse: Callable[[str], bool] | None = None) -> BuildResult:
    """Judge every module-level class and function of ``target``.  ``context`` sources help
    resolve bases and calls into other packages (they are analysed as needed, not listed);
    ``trusted`` names outside every source are treated as safe (a reviewed allowlist);
    ``refuse`` names (the denylist) are never listed, whatever the analysis says."""
    index = make_index(target, context)
    analyzer = Analyzer(index, trusted)
    judged: dict[str, Judged] = {}
    tops = set(target.packages)
    for module in index.module_names():
        if module.split(".")[0] not in tops or (refuse is not None and
                                                refuse(f"{module}.{PROBE}")):
            continue  # a module the denylist covers whole (``torch._dynamo.**``): not read
        info = index.module(module)
        if info is None:
            continue
        for name, bindings in sorted(info.bindings.items()):
            if len(bindings) != 1 or bindings[0].conditional:
                continue
            dotted = f"{module}.{name}"
            if bindings[0].kind == "class":
                judged[dotted] = Judged(dotted, "class", analyzer.class_verdict(dotted))
            elif bindings[0].kind == "function" and isinstance(
                    bindings[0].node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                judged[dotted] = Judged(dotted, "function",
                                        analyzer.module_function_verdict(dotted))
    for module in index.module_names():
        if module.split(".")[0] not in tops:
            continue
        for name in _exports(index, module):
            target_ref: Resolved = index.resolve_name(module, name)
            defined = judged.get(target_ref.name)
            alias = f"{module}.{name}"
            if defined is not None and target_ref.kind in ("class", "function") and \
                    alias != defined.name and alias not in judged:
                judged[alias] = Judged(alias, defined.kind, defined.verdict, defined.name)
    refused = tuple(sorted((j.name, "named by dangerous_callables") for j in judged.values()
                           if j.verdict.safe and refuse is not None and refuse(j.name)))
    return BuildResult(target, tuple(judged[k] for k in sorted(judged)), refused)
