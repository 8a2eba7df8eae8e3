"""Verdicts of the analyser and the classes it reasons about."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

# Methods that run when a pickle builds or restores an instance: REDUCE calls the class
# (``__new__`` + ``__init__``, a dataclass's ``__post_init__``), NEWOBJ calls ``__new__``, BUILD
# calls ``__setstate__`` or sets attributes (``__setattr__`` for slot state); ``__del__`` runs by
# itself when the object is collected, with the state the pickle gave it.
ENTRY_METHODS = ("__new__", "__init__", "__post_init__", "__setstate__", "__setattr__",
                 "__del__")


@dataclass(frozen=True)
class Verdict:
    safe: bool
    reason: str
    kind: str = ""  # category of a safe verdict: enum, dataclass, namedtuple, class, function


@dataclass
class ClassModel:
    """One class defined in the analysed sources, with its bases resolved."""

    name: str  # defining module + "." + class name
    module: str
    node: ast.ClassDef
    local_bases: list[ClassModel] = field(default_factory=list)
    external_bases: list[str] = field(default_factory=list)  # resolved dotted names
    problem: str | None = None  # a base or decorator that cannot be resolved
    is_dataclass: bool = False
    mro: list[ClassModel] = field(default_factory=list)

    def method(self, name: str) -> ast.FunctionDef | ast.AsyncFunctionDef | None:
        found: ast.FunctionDef | ast.AsyncFunctionDef | None = None
        for stmt in self.node.body:  # the last definition wins, as at run time
            if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)) and stmt.name == name:
                found = stmt
        return found

    def assigns(self, name: str) -> bool:
        """Whether the class body binds ``name`` other than by ``def`` (``__init__ = f``)."""
        for stmt in self.node.body:
            targets = stmt.targets if isinstance(stmt, ast.Assign) else \
                [stmt.target] if isinstance(stmt, ast.AnnAssign) and stmt.value else []
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        return False
