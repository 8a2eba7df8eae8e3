"""Names that matter in a Jinja template, by what reaching them would give an attacker.

These are fixed facts about Jinja and Python (what a template global or an attribute leads to),
not tunable policy; the rules in ``rules/template/`` decide how each finding is reported.
"""

from __future__ import annotations

# Objects every Jinja environment (or a Flask app) exposes whose attributes lead to Python module
# globals: ``cycler.__init__.__globals__.os`` is the classic sandbox escape.
TEMPLATE_GLOBALS = frozenset({
    "cycler", "joiner", "namespace", "lipsum", "range", "dict", "self", "config", "request",
    "url_for", "get_flashed_messages", "session", "g", "application",
})
# Globals with no use in a chat template: naming them at all is a probe for framework objects.
FRAMEWORK_GLOBALS = frozenset({
    "self", "config", "request", "url_for", "get_flashed_messages", "session", "application",
})
# Undefined (global) names a template would need to reach modules and builtins.  Names a chat
# template may receive as render variables (``system``, ``file``) are deliberately absent.
PROCESS_GLOBALS = frozenset({
    "os", "subprocess", "sys", "builtins", "importlib", "posix", "nt", "pty", "ctypes",
    "shutil", "socket", "pickle", "marshal", "eval", "exec", "compile", "open", "getattr",
    "setattr", "globals", "locals", "vars", "breakpoint", "import_module",
})
# Attribute and key names that only exist on modules, functions and frames that run processes or
# import code; ordinary message fields never use them.
PROCESS_ATTRIBUTES = frozenset({
    "subprocess", "builtins", "importlib", "ctypes", "pty", "popen", "Popen", "check_output",
    "check_call", "getoutput", "getstatusoutput", "spawnv", "spawnve", "spawnl", "spawnlp",
    "execv", "execve", "execl", "execlp", "execvp", "fork", "forkpty", "import_module",
    "load_module", "func_globals", "f_globals", "f_locals", "f_back", "f_builtins", "gi_frame",
    "gi_code", "cr_frame", "tb_frame", "co_code",
})
# Dunder names a sandbox escape walks through (any other dunder is flagged too).
ESCAPE_DUNDERS = frozenset({
    "__class__", "__globals__", "__builtins__", "__subclasses__", "__mro__", "__base__",
    "__bases__", "__init__", "__import__", "__dict__", "__getattribute__", "__reduce__",
    "__reduce_ex__", "__code__", "__self__", "__func__", "__loader__", "__spec__",
})
# Filters and tests that read or build attribute names.
ATTRIBUTE_FILTERS = frozenset({"attr", "map", "selectattr", "rejectattr", "groupby", "sort",
                               "sum", "unique", "min", "max"})
TEMPLATE_LOADING = ("Include", "Import", "FromImport", "Extends")


def is_dunder(name: str) -> bool:
    return "__" in name


def is_private(name: str) -> bool:
    return name.startswith("_")
