"""TorchScript code carried by an archive (``<root>/code/__torch__/**.py``).

``torch.jit.load`` compiles these files and resolves every ``__torch__.*`` class named in the
archive's pickles against them: such names are never imported from Python.  What that code can do
is what its operator calls can do, so each file is read with ``ast`` (serialized TorchScript is a
Python subset), never compiled or run, and the distinct calls it makes are recorded: the rules
judge file-access operators (``rules/lists/torchscript_ops.yaml``), operators from namespaces that
need a native library, and code that runs while loading (``__setstate__``).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from ckptguard.pyast import dotted_name

# Operator namespaces that torch itself registers; anything else needs a library the user loads.
STANDARD_NAMESPACES = frozenset({
    "aten", "prim", "quantized", "_quantized", "quantized_decomposed", "profiler", "cuda",
    "mkldnn", "mkl", "sparse", "_nested", "_caffe2", "fbgemm", "xnnpack", "prepacked", "_test",
    "onednn", "mps", "inductor", "higher_order", "_c10d_functional", "c10d", "_dtensor",
})
CODE_FOLDER = "code/"


@dataclass(frozen=True)
class ScriptClass:
    qualname: str  # __torch__.<module path>.<Class>
    line: int
    setstate: bool  # defines __setstate__, which runs while the archive loads


@dataclass(frozen=True)
class ScriptCall:
    name: str  # dotted, as written (torch.from_file, ops.my_ns.my_op)
    line: int
    function: str  # enclosing def ("" at class or module level)
    namespace: str  # operator namespace for ops.<ns>.* / torch.classes.<ns>.*, else ""
    custom: bool  # needs an operator or class library outside torch


@dataclass(frozen=True)
class ScriptModule:
    module: str  # __torch__.torch.nn.modules.linear
    classes: tuple[ScriptClass, ...]
    calls: tuple[ScriptCall, ...]


def module_name(relative: str) -> str | None:
    """``code/__torch__/a/b.py`` -> ``__torch__.a.b``; None for files that are not code."""
    if not relative.startswith(CODE_FOLDER) or not relative.endswith(".py"):
        return None
    path = relative[len(CODE_FOLDER):-len(".py")]
    return path.replace("/", ".") if path else None


def _namespace(name: str) -> str:
    parts = name.split(".")
    if parts[0] == "torch" and len(parts) > 2 and parts[1] in ("ops", "classes"):
        return parts[2]
    if parts[0] == "ops" and len(parts) > 1:
        return parts[1]
    return ""


def _calls(tree: ast.Module) -> Iterator[ScriptCall]:
    seen: set[str] = set()

    def visit(node: ast.AST, function: str) -> Iterator[ScriptCall]:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, ast.FunctionDef) else function
            if isinstance(child, ast.Call):
                name = dotted_name(child.func)
                if name is not None and name not in seen:
                    seen.add(name)
                    namespace = _namespace(name)
                    yield ScriptCall(name, child.lineno, function, namespace,
                                     bool(namespace) and namespace not in STANDARD_NAMESPACES)
            yield from visit(child, inner)

    yield from visit(tree, "")


def analyse(relative: str, text: str) -> ScriptModule:
    """The classes and distinct calls of one code file; ``SyntaxError`` when it does not parse
    (torch.jit.load would refuse it too, but nothing in it was judged)."""
    module = module_name(relative) or relative
    tree = ast.parse(text, filename=relative)
    classes = tuple(
        ScriptClass(f"{module}.{node.name}", node.lineno,
                    any(isinstance(item, ast.FunctionDef) and item.name == "__setstate__"
                        for item in node.body))
        for node in tree.body if isinstance(node, ast.ClassDef))
    return ScriptModule(module, classes, tuple(_calls(tree)))
