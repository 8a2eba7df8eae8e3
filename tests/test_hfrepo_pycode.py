"""AST analysis of repository Python code: aliases, getattr folding, scopes, decoded exec."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ckptguard.engine.namelists import load_list_file
from ckptguard.engine.ruleset import rules_directory
from ckptguard.facts import Fact
from ckptguard.formats.pycode import CodeLists, analyse_python, code_lists, fold
from ckptguard.model import Location


@pytest.fixture(scope="module")
def lists() -> CodeLists:
    return code_lists(load_list_file(rules_directory() / "lists" / "remote_code_calls.yaml"))


def _calls(source: str, lists: CodeLists, entry: frozenset[str] = frozenset()) -> list[Fact]:
    facts = analyse_python(source, "m.py", Location(("repo/m.py",)), lists, entry_classes=entry)
    return [f for f in facts if f.kind == "pycode.call"]


def _names(source: str, lists: CodeLists) -> list[str]:
    return [f.attrs["name"] for f in _calls(source, lists)]


@pytest.mark.parametrize(("source", "expected"), [
    ("import subprocess as sp\nsp.run(['id'])", "subprocess.run"),
    ("from os import system as s\ns('id')", "os.system"),
    ("import os\ngetattr(os, 'sys' + 'tem')('id')", "os.system"),
    ("import os\ngetattr(os, ''.join(['sy', 'stem']))('id')", "os.system"),
    ("import os\ngetattr(os, 'metsys'[::-1])('id')", "os.system"),
    ("__import__('os').system('id')", "os.system"),
    ("import importlib\nimportlib.import_module('subprocess').Popen('id')", "subprocess.Popen"),
    ("import os\nrun = os.system\nrun('id')", "os.system"),
    ("m = __import__('o' + 's')\nm.popen('id')", "os.popen"),
    ("import os\nos.__dict__['system']('id')", "os.system"),
    ("import os\nvars(os)['system']('id')", "os.system"),
    ("import os.path\nos.execv('/bin/sh', [])", "os.execv"),
    ("import socket\ns = socket.socket()\n", "socket.socket"),
    ("from urllib.request import urlopen\nurlopen('http://x')", "urllib.request.urlopen"),
    ("import ctypes\nctypes.CDLL('libx.so')", "ctypes.CDLL"),
    ("from subprocess import *\ncall('id')", "subprocess.call"),
    ("__builtins__['ex' + 'ec']('x')", "builtins.exec"),
    ("__builtins__.eval(x)", "builtins.eval"),
    ("import builtins\nbuiltins.exec(x)", "builtins.exec"),
    ("getattr(__import__('os'), 'system')('id')", "os.system"),
])
def test_resolves_aliased_and_hidden_calls(source: str, expected: str, lists: CodeLists) -> None:
    assert expected in _names(source, lists)


def test_ordinary_model_code_reports_nothing(lists: CodeLists) -> None:
    source = (
        "import json, os, torch\nfrom torch import nn\n"
        "class M(nn.Module):\n    def __init__(self, c):\n        super().__init__()\n"
        "        self.l = nn.Linear(2, 2)\n        p = os.path.join('a', 'b')\n"
        "        with open(p) as f:\n            self.cfg = json.load(f)\n"
        "        with open(p, 'rb') as f:\n            f.read()\n"
        "        self.w = torch.load(p, weights_only=True)\n"
        "    def forward(self, x):\n        return torch.relu(self.l(x))\n")
    assert _calls(source, lists) == []


def test_scopes_module_init_function(lists: CodeLists) -> None:
    source = ("import requests\nrequests.get('a')\n"
              "class Entry:\n    def __init__(self):\n        requests.get('b')\n"
              "    def other(self):\n        requests.get('c')\n"
              "class Helper:\n    def __init__(self):\n        requests.get('d')\n"
              "def f():\n    requests.get('e')\n")
    scopes = [(f.attrs["line"], f.attrs["scope"])
              for f in _calls(source, lists, frozenset({"Entry"}))]
    assert scopes == [(2, "module"), (5, "init"), (7, "function"), (10, "function"),
                      (12, "function")]


def test_decoded_exec_through_variables_and_nested_literal(lists: CodeLists) -> None:
    source = ("import base64, zlib\nx = zlib.decompress(base64.b64decode('eJw='))\n"
              "exec(x)\neval(compile(x, 'f', 'exec'))\n"
              "exec(bytes.fromhex('41').decode())\n"
              "exec(\"import subprocess; subprocess.call('id')\")\n")
    facts = _calls(source, lists)
    decoded = [(f.attrs["name"], f.attrs["line"]) for f in facts if f.attrs["args"] == "decoded"]
    assert ("builtins.exec", 3) in decoded and ("builtins.compile", 4) in decoded
    assert ("builtins.exec", 5) in decoded
    nested = [f for f in facts if f.attrs["nested"] == 1]
    assert [(f.attrs["name"], f.attrs["line"]) for f in nested] == [("subprocess.call", 6)]


def test_open_modes_and_loader_flags(lists: CodeLists) -> None:
    source = ("import torch, numpy, yaml\nopen('a', 'w')\nopen('b', mode='a+')\nopen('c')\n"
              "open('d', 'rb')\nopen('e', m)\ntorch.load('f')\nnumpy.load('g')\n"
              "numpy.load('h', allow_pickle=True)\nyaml.load(s, Loader=yaml.SafeLoader)\n"
              "yaml.load(s)\n")
    lines = [(f.attrs["name"], f.attrs["line"]) for f in _calls(source, lists)]
    assert lines == [("builtins.open", 2), ("builtins.open", 3), ("builtins.open", 6),
                     ("torch.load", 7), ("numpy.load", 9), ("yaml.load", 11)]


def test_code_inside_handlers_with_and_comprehensions_is_seen(lists: CodeLists) -> None:
    source = ("import os\ntry:\n    pass\nexcept Exception:\n    os.system('a')\n"
              "with open('x', 'w') as f:\n    pass\n[os.popen(c) for c in ['b']]\n"
              "match 1:\n    case 1:\n        os.system('c')\n")
    assert _names(source, lists) == ["os.system", "builtins.open", "os.popen", "os.system"]


def test_builtins_patch(lists: CodeLists) -> None:
    facts = analyse_python("import builtins as b\nsetattr(b, 'open', None)\n", "m.py",
                           Location(("m.py",)), lists)
    assert [(f.kind, f.attrs["target"]) for f in facts] == [("pycode.builtins_patch", "open")]


def test_syntax_error_is_a_parse_error(lists: CodeLists) -> None:
    facts = analyse_python("def broken(:\n", "m.py", Location(("m.py",)), lists)
    assert [(f.kind, f.attrs["format"]) for f in facts] == [("parse.error", "python")]


def test_deeply_nested_expression_never_crashes(lists: CodeLists) -> None:
    source = "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n"
    facts = analyse_python(source, "m.py", Location(("m.py",)), lists)
    assert [f.kind for f in facts] in (["parse.error"], ["limit.hit"], [])
    assert facts, "a nesting bomb must be reported"


def test_fact_count_is_bounded(lists: CodeLists) -> None:
    source = "import os\n" + "os.system('x')\n" * 2000
    facts = analyse_python(source, "m.py", Location(("m.py",)), lists)
    assert facts[-1].kind == "limit.hit"
    assert len(facts) < 2000


def test_fold_only_constants() -> None:
    assert fold(ast.parse("'a' + 'b'", mode="eval").body) == "ab"
    assert fold(ast.parse("f'x{\"y\"}'", mode="eval").body) == "xy"
    assert fold(ast.parse("'a' + name", mode="eval").body) is None


def test_analysis_never_touches_files(tmp_path: Path) -> None:
    # Analysis never touches the file system: a source naming a real path creates nothing.
    target = tmp_path / "created"
    lists = code_lists(load_list_file(rules_directory() / "lists" / "remote_code_calls.yaml"))
    analyse_python(f"open({str(target)!r}, 'w').write('x')\n", "m.py", Location(("m.py",)),
                   lists)
    assert not target.exists()


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="osi()[]'\"+.=:\n abc_gtr", max_size=200))
def test_arbitrary_source_never_crashes(source: str) -> None:
    lists = code_lists(load_list_file(rules_directory() / "lists" / "remote_code_calls.yaml"))
    facts = analyse_python(source, "m.py", Location(("m.py",)), lists)
    assert all(f.kind in {"pycode.call", "pycode.builtins_patch", "parse.error", "limit.hit"}
               for f in facts)
