"""The symbolic interpreter: every dynamic-resolution form reaches the real target, uses are
classified, Python 2 names are fixed, and reconstructions are readable and bounded."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.parser import parse
from ckptguard.formats.pickle.values import MAX_RENDER
from ckptguard.source import MemorySource
from fixtures.pickle_asm import (
    BUILD,
    EMPTY_DICT,
    EMPTY_TUPLE,
    NEWOBJ,
    REDUCE,
    STOP,
    binunicode,
    call,
    glob,
    proto,
    stack_global,
    text,
    tup,
)

CMD = binunicode("touch /tmp/x")


def run(stream: bytes) -> ParseOutput:
    return parse(Artifact(("t.pkl",), MemorySource(stream)), ParseContext())


def imports(stream: bytes) -> dict[str, Mapping[str, Any]]:
    """qualname -> attributes of its (last) pickle.import fact."""
    return {f.attrs["qualname"]: f.attrs for f in run(stream).of_kind("pickle.import")}


def getattr_of(obj: bytes, name: str) -> bytes:
    return call(glob("builtins", "getattr"), obj, binunicode(name))


def test_getattr_of_import_module() -> None:
    stream = proto(2) + getattr_of(call(glob("importlib", "import_module"), binunicode("os")),
                                   "system") + tup(CMD) + REDUCE + STOP
    found = imports(stream)
    target = found["os.system"]
    assert target["use"] == "called"
    assert target["resolved_via"] == "builtins.getattr"
    assert target["reconstruction"] == \
        "getattr(importlib.import_module('os'), 'system')('touch /tmp/x')"
    assert found["importlib.import_module"]["use"] == "resolver"
    assert found["builtins.getattr"]["use"] == "resolver"


def test_import_module_alone_is_a_call() -> None:
    found = imports(proto(2) + call(glob("importlib", "import_module"), binunicode("evil")) +
                    STOP)
    assert found["importlib.import_module"]["use"] == "called"


def test_dunder_import_with_and_without_fromlist() -> None:
    top = proto(2) + getattr_of(call(glob("builtins", "__import__"), binunicode("os.path")),
                                "system") + STOP
    assert imports(top)["os.system"]["use"] == "referenced"
    sub = proto(2) + getattr_of(call(glob("builtins", "__import__"), binunicode("os.path"),
                                     b"N", b"N", tup(binunicode("join"))), "join") + STOP
    assert "os.path.join" in imports(sub)


def test_sys_modules_lookups() -> None:
    via_getitem = call(glob("operator", "getitem"), glob("sys", "modules"), binunicode("os"))
    found = imports(proto(2) + getattr_of(via_getitem, "system") + tup(CMD) + REDUCE + STOP)
    assert found["os.system"]["use"] == "called"
    assert found["sys.modules"]["use"] == "resolver"
    assert found["operator.getitem"]["use"] == "resolver"
    via_get = call(getattr_of(glob("sys", "modules"), "get"), binunicode("posix"))
    found = imports(proto(2) + getattr_of(via_get, "system") + STOP)
    assert found["posix.system"]["use"] == "referenced"


def test_operator_getters() -> None:
    module = call(glob("importlib", "import_module"), binunicode("os"))
    attr = call(glob("operator", "attrgetter"), binunicode("path.join")) + tup(module) + REDUCE
    found = imports(proto(2) + attr + STOP)
    assert found["os.path.join"]["resolved_via"] == "operator.attrgetter"
    assert found["operator.attrgetter"]["use"] == "resolver"
    method = call(glob("operator", "methodcaller"), binunicode("system"), CMD) + tup(module) + \
        REDUCE
    found = imports(proto(2) + method + STOP)
    assert found["os.system"]["use"] == "called"
    item = call(glob("operator", "itemgetter"), binunicode("os")) + tup(glob("sys", "modules")) \
        + REDUCE
    found = imports(proto(2) + getattr_of(item, "system") + STOP)
    assert found["os.system"]["resolved_via"] == "builtins.getattr"
    assert found["operator.itemgetter"]["use"] == "resolver"


def test_partial_is_followed_to_its_function() -> None:
    stream = proto(2) + call(glob("functools", "partial"), glob("os", "system"), CMD) + \
        EMPTY_TUPLE + REDUCE + STOP
    found = imports(stream)
    assert found["os.system"]["use"] == "called"
    assert found["functools.partial"]["use"] == "resolver"
    uncalled = proto(2) + call(glob("functools", "partial"), glob("builtins", "int")) + STOP
    assert imports(uncalled)["builtins.int"]["use"] == "referenced"


def test_bound_method_of_an_instance() -> None:
    stream = proto(2) + getattr_of(call(glob("collections", "OrderedDict")), "keys") + STOP
    found = imports(stream)
    method = found["collections.OrderedDict.keys"]
    assert (method["use"], method["owner"]) == ("referenced", "collections.OrderedDict")
    assert found["builtins.getattr"]["use"] == "resolver"


def test_unresolvable_getattr_is_a_call() -> None:
    stream = proto(2) + call(glob("builtins", "getattr"), call(glob("x", "y")),
                             call(glob("builtins", "str"))) + STOP
    assert imports(stream)["builtins.getattr"]["use"] == "called"


def test_protocol4_dotted_name_walk() -> None:
    stream = proto(4) + stack_global("torch.nn.modules.module", "os.system") + text("x") + \
        b"\x85" + REDUCE + STOP
    found = imports(stream)
    walked = found["torch.nn.modules.module.os.system"]
    assert (walked["use"], walked["target"]) == ("resolver", "os.system")
    assert found["os.system"]["use"] == "called"
    assert found["os.system"]["resolved_via"] == "getattr-walk"


def test_python2_names_are_fixed_below_protocol_3() -> None:
    found = imports(proto(2) + glob("__builtin__", "eval") + b"0" +
                    glob("copy_reg", "_reconstructor") + b"0" + glob("__builtin__", "long") +
                    STOP)
    assert found["builtins.eval"]["raw"] == "__builtin__ eval"
    assert "copyreg._reconstructor" in found
    assert "builtins.int" in found
    assert "__builtin__.eval" in imports(proto(3) + glob("__builtin__", "eval") + STOP)


def test_newobj_build_and_reconstructor() -> None:
    stream = proto(2) + glob("pkg", "Model") + EMPTY_TUPLE + NEWOBJ + EMPTY_DICT + BUILD + STOP
    output = run(stream)
    assert {f.attrs["qualname"]: f.attrs["use"] for f in output.of_kind("pickle.import")} == \
        {"pkg.Model": "instantiated"}
    assert [f.attrs["kind"] for f in output.of_kind("pickle.call")] == ["newobj", "setstate"]
    rebuilt = proto(2) + call(glob("copyreg", "_reconstructor"), glob("pkg", "Model"),
                              glob("builtins", "object"), b"N") + STOP
    found = imports(rebuilt)
    assert found["pkg.Model"]["use"] == "instantiated"
    assert found["copyreg._reconstructor"]["use"] == "resolver"


def test_reconstruction_is_bounded() -> None:
    stream = proto(2) + call(glob("os", "system"), binunicode("x" * 10_000)) + STOP
    output = run(stream)
    texts = [f.attrs["reconstruction"] for f in output.facts if "reconstruction" in f.attrs]
    assert texts and all(len(t) <= MAX_RENDER for t in texts)


def test_stack_global_requires_text_operands() -> None:
    stream = proto(4) + b"C\x02osC\x06system\x93" + STOP
    errors = list(run(stream).of_kind("parse.error"))
    assert errors and "STACK_GLOBAL requires str" in errors[0].attrs["error"]


def test_stack_underflow_is_a_parse_error() -> None:
    errors = list(run(proto(2) + REDUCE + STOP).of_kind("parse.error"))
    assert errors and "underflow" in errors[0].attrs["error"]


def test_absurdly_long_names_stop_the_load() -> None:
    stream = proto(4) + stack_global("os", "x" * 5000) + STOP
    errors = list(run(stream).of_kind("parse.error"))
    assert errors and "cannot be imported" in errors[0].attrs["error"]
