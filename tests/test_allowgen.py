"""ckptguard.allowgen: classes and functions judged from source, never imported."""

from __future__ import annotations

import textwrap
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptguard.allowgen.build import BuildResult, build
from ckptguard.allowgen.listfile import dump
from ckptguard.allowgen.sources import read_sources
from ckptguard.cli import main
from ckptguard.engine.namelists import load_list_file

# The package's top level writes a canary file and raises: importing it (by any code path)
# leaves the canary behind, and every test checks that it is absent.
CANARY_INIT = textwrap.dedent('''
    import pathlib
    pathlib.Path(__file__).with_name("IMPORTED").write_text("imported")
    raise RuntimeError("synthetic package imported")
''')

SAFE_CODE = textwrap.dedent('''
    import enum
    from dataclasses import dataclass, field
    from typing import NamedTuple, TypedDict


    class Color(enum.Enum):
        RED = 1


    @dataclass
    class Settings:
        name: str = "x"
        tags: list = field(default_factory=list)

        def __post_init__(self):
            self.name = str(self.name)


    class Point(NamedTuple):
        x: int
        y: int


    class Row(TypedDict):
        a: int


    class Plain:
        def __init__(self, a, b=None):
            self.a = a
            self.b = [] if b is None else list(b)


    class StateOnly:
        def __setstate__(self, state):
            self.__dict__.update(state)


    class Child(Plain):
        def __init__(self, a):
            super().__init__(a, b=())
            self._reset()

        def _reset(self):
            self.count = 0


    def rebuild(values, scale=1):
        return [v * scale for v in values]
''')

UNSAFE_CODE = textwrap.dedent('''
    import importlib
    import pickle
    import subprocess
    import somewhere_external


    class OpensFile:
        def __init__(self, path):
            self.data = open(path).read()


    class CallsStored:
        def __setstate__(self, state):
            self.__dict__.update(state)
            self.fn()


    class Imports:
        def __init__(self, name):
            self.module = importlib.import_module(name)


    class Spawns:
        def __init__(self, cmd):
            subprocess.run(cmd)


    class Unpickles:
        def __setstate__(self, state):
            self.__dict__.update(pickle.loads(state["blob"]))


    class CallsArgument:
        def __init__(self, factory):
            self.value = factory()


    class CallsUnknown:
        def __init__(self, x):
            self.value = somewhere_external.transform(x)


    class ComputedGetattr:
        def __init__(self, obj, name):
            self.value = getattr(obj, name)


    class InheritsUnsafe(OpensFile):
        pass


    def runs(cmd):
        return subprocess.check_output(cmd)
''')

EXPECTED_SAFE = {
    "synth.kinds.Color": "enum", "synth.kinds.Settings": "dataclass",
    "synth.kinds.Point": "namedtuple", "synth.kinds.Row": "typeddict",
    "synth.kinds.Plain": "class", "synth.kinds.StateOnly": "class",
    "synth.kinds.Child": "class", "synth.kinds.rebuild": "function",
}
EXPECTED_UNSAFE = {
    "synth.risky.OpensFile": "opens a file",
    "synth.risky.CallsStored": "self.fn()",
    "synth.risky.Imports": "imports a module",
    "synth.risky.Spawns": "starts a process",
    "synth.risky.Unpickles": "unpickles",
    "synth.risky.CallsArgument": "calls its argument factory()",
    "synth.risky.CallsUnknown": "somewhere_external.transform",
    "synth.risky.ComputedGetattr": "computed attribute name",
    "synth.risky.InheritsUnsafe": "opens a file",
    "synth.risky.runs": "starts a process",
}


def _package(root: Path) -> Path:
    package = root / "synth"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(CANARY_INIT + "from .kinds import Plain as Plain\n")
    (package / "kinds.py").write_text(CANARY_INIT + SAFE_CODE)
    (package / "risky.py").write_text(CANARY_INIT + UNSAFE_CODE)
    return package


@pytest.fixture()
def synth(tmp_path: Path) -> Path:
    return _package(tmp_path / "src")


def _built(path: Path) -> BuildResult:
    return build(read_sources(str(path)))


def _never_imported(package: Path) -> None:
    assert not (package / "IMPORTED").exists()
    import sys

    assert "synth" not in sys.modules


def test_safe_kinds_are_recognised(synth: Path) -> None:
    judged = {j.name: j.verdict for j in _built(synth).judged}
    for name, kind in EXPECTED_SAFE.items():
        assert judged[name].safe, (name, judged[name])
        assert judged[name].kind == kind, (name, judged[name])
    assert "updates __dict__" in judged["synth.kinds.StateOnly"].reason
    assert "__init__ assigns attributes and builds containers" in judged["synth.kinds.Plain"].reason
    _never_imported(synth)


@pytest.mark.parametrize("name", sorted(EXPECTED_UNSAFE))
def test_unsafe_classes_are_refused_with_the_reason(synth: Path, name: str) -> None:
    judged = {j.name: j.verdict for j in _built(synth).judged}
    assert not judged[name].safe, judged[name]
    assert EXPECTED_UNSAFE[name] in judged[name].reason, judged[name].reason
    _never_imported(synth)


def test_a_reexport_is_listed_only_when_proven(synth: Path) -> None:
    result = _built(synth)
    names = {j.name: j for j in result.safe}
    assert names["synth.Plain"].alias_of == "synth.kinds.Plain"
    (synth / "__init__.py").write_text(
        "try:\n    from .kinds import Plain\nexcept ImportError:\n    Plain = None\n")
    assert "synth.Plain" not in {j.name for j in _built(synth).safe}


def test_a_wheel_reads_the_same_as_the_folder(synth: Path, tmp_path: Path) -> None:
    wheel = tmp_path / "synth-1.2.3-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path in sorted(synth.rglob("*.py")):
            archive.write(path, path.relative_to(synth.parent).as_posix())
        archive.writestr("synth-1.2.3.dist-info/METADATA",
                         "Metadata-Version: 2.1\nName: synth\nVersion: 1.2.3\n")
    from_wheel = read_sources(str(wheel))
    from_folder = read_sources(str(synth))
    assert from_wheel.version == "1.2.3"
    assert from_wheel.sha256 == from_folder.sha256
    assert {j.name for j in build(from_wheel).safe} == {j.name for j in build(from_folder).safe}
    _never_imported(synth)


def test_the_output_is_a_list_file_and_reproducible(synth: Path, tmp_path: Path) -> None:
    first, second = dump(_built(synth)), dump(_built(synth))
    assert first == second
    target = tmp_path / "list.yaml"
    target.write_text(first)
    listed = load_list_file(target)
    names = {e.pattern for e in listed.entries()}
    assert set(EXPECTED_SAFE) <= names
    assert not names & set(EXPECTED_UNSAFE)
    assert all(len(e.why.split()) >= 4 and e.category for e in listed.entries())


def test_the_cli_builds_a_list(synth: Path, tmp_path: Path) -> None:
    output, rejected = tmp_path / "out.yaml", tmp_path / "rejected.tsv"
    result = CliRunner().invoke(main, ["allowlist", "build", str(synth), "--output",
                                       str(output), "--rejected", str(rejected)])
    assert result.exit_code == 0, result.output
    names = {e.pattern for e in load_list_file(output).entries()}
    assert "synth.kinds.Settings" in names and "synth.risky.Spawns" not in names
    assert "synth.risky.Spawns\tclass\t" in rejected.read_text()
    missing = CliRunner().invoke(main, ["allowlist", "build", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    _never_imported(synth)


def _pickle_of(module: str, name: str) -> bytes:
    """A protocol-2 pickle that builds ``module.name()`` (REDUCE with no arguments)."""
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R."


def test_config_includes_a_generated_list(synth: Path, tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    listed = project / "ckptguard-allow.yaml"
    assert CliRunner().invoke(main, ["allowlist", "build", str(synth), "-o",
                                     str(listed)]).exit_code == 0
    (project / "model.pkl").write_bytes(_pickle_of("synth.kinds", "Plain"))
    (project / "bad.pkl").write_bytes(_pickle_of("synth.risky", "Spawns"))
    runner = CliRunner()
    before = runner.invoke(main, ["scan", "--format", "json", str(project / "model.pkl")])
    (project / ".ckptguard.toml").write_text('allowlist-files = ["ckptguard-allow.yaml"]\n')
    config = ["--config", str(project / ".ckptguard.toml")]
    after = runner.invoke(main, ["scan", *config, "--format", "json", str(project / "model.pkl")])
    bad = runner.invoke(main, ["scan", *config, "--format", "json", str(project / "bad.pkl")])
    assert "synth.kinds.Plain" in before.output
    assert "synth.kinds.Plain" not in after.output, after.output
    assert "synth.risky.Spawns" in bad.output
    _never_imported(synth)


def test_config_refuses_a_missing_or_broad_list(tmp_path: Path) -> None:
    from ckptguard.config_file import ConfigError, ConfigSource, config_from

    with pytest.raises(ConfigError, match="not a file"):
        config_from(ConfigSource(tmp_path / ".ckptguard.toml",
                                 {"allowlist-files": ["absent.yaml"]}))
    broad = tmp_path / "broad.yaml"
    broad.write_text("description: x\nentries:\n  - name: '**'\n    why: everything is fine\n")
    with pytest.raises(ConfigError, match="no wildcard"):
        config_from(ConfigSource(tmp_path / ".ckptguard.toml",
                                 {"allowlist-files": ["broad.yaml"]}))


DECORATED = textwrap.dedent('''
    def add_doc(*lines):
        def decorate(obj):
            obj.__doc__ = "".join(lines) + (obj.__doc__ or "")
            return obj
        return decorate


    def replace_init(cls):
        cls.__init__ = lambda self: None
        return cls


    @add_doc("documented")
    class Documented:
        def __init__(self, a):
            self.a = a


    @replace_init
    class Patched:
        pass


    class Descriptor:
        def __get__(self, obj, owner):
            return obj.fn()


    class WithDescriptor:
        attr = Descriptor()


    class WithProperty:
        def __init__(self):
            self.size = len(self.value)

        @property
        def value(self):
            return open("/etc/hostname").read()


    class UnreadProperty:
        def __init__(self, a):
            self.a = a

        @property
        def value(self):
            return open("/etc/hostname").read()


    class Mapping(dict):
        def __setitem__(self, key, value):
            self.__dict__[key] = value()
''')


def test_decorators_descriptors_properties_and_setitem(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "more.py").write_text(CANARY_INIT + DECORATED)
    judged = {j.name: j.verdict for j in _built(package).judged}
    assert judged["synth.more.Documented"].safe, judged["synth.more.Documented"]
    assert "replace_init" in judged["synth.more.Patched"].reason
    assert "descriptor synth.more.Descriptor" in judged["synth.more.WithDescriptor"].reason
    assert "reads the property value" in judged["synth.more.WithProperty"].reason
    assert judged["synth.more.UnreadProperty"].safe  # a getter runs only when read
    assert "__setitem__" in judged["synth.more.Mapping"].reason
    assert not any(judged[f"synth.more.{n}"].safe
                   for n in ("Patched", "WithDescriptor", "WithProperty", "Mapping"))
    _never_imported(package)


def test_a_denylisted_name_is_never_listed(synth: Path) -> None:
    result = build(read_sources(str(synth)), refuse=lambda name: name.endswith(".rebuild"))
    assert "synth.kinds.rebuild" not in {j.name for j in result.safe}
    assert ("synth.kinds.rebuild", "named by dangerous_callables") in result.refused
    assert "synth.rebuild" not in dump(result)


def test_an_sdist_is_read_without_running_its_setup(synth: Path, tmp_path: Path) -> None:
    import tarfile

    (synth.parent / "setup.py").write_text(CANARY_INIT)
    sdist = tmp_path / "synth-0.1.tar.gz"
    with tarfile.open(sdist, "w:gz") as archive:
        for path in sorted(synth.parent.rglob("*.py")):
            archive.add(path, f"synth-0.1/{path.relative_to(synth.parent).as_posix()}")
        info = tarfile.TarInfo("synth-0.1/PKG-INFO")
        meta = b"Metadata-Version: 2.1\nName: synth\nVersion: 0.1\n"
        info.size = len(meta)
        import io

        archive.addfile(info, io.BytesIO(meta))
    source = read_sources(str(sdist))
    assert source.version == "0.1" and source.packages == ("synth",)
    assert "setup" not in source.modules
    assert "synth.kinds.Settings" in {j.name for j in build(source).safe}
    assert not (synth.parent / "IMPORTED").exists()
    _never_imported(synth)


STATEFUL = textwrap.dedent('''
    _HOOKS = {}
    _CONFIG = {"a": 1}


    def register_hook(hook):
        _HOOKS[len(_HOOKS)] = hook


    def set_config(**values):
        _CONFIG.update(values)


    def read_config(key):
        return _CONFIG.get(key)


    class Base:
        def __init__(self, a):
            self.a = a
            for hook in _HOOKS.values():
                hook(self)


    class Derived(Base):
        def __init__(self, a):
            Base.__init__(self, a)
''')


def test_module_state_is_never_changed_by_a_listed_function(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "state.py").write_text(CANARY_INIT + STATEFUL)
    judged = {j.name: j.verdict for j in _built(package).judged}
    assert "changes module or class state (_HOOKS)" in judged["synth.state.register_hook"].reason
    assert "changes module state (_CONFIG.update)" in judged["synth.state.set_config"].reason
    # Reading module state is not a change, but what it returns may be a callable.
    assert "may return" in judged["synth.state.read_config"].reason
    # Hooks the program registered in module state are program code; Base.__init__(self) is
    # followed into Base.
    assert judged["synth.state.Base"].safe and judged["synth.state.Derived"].safe
    _never_imported(package)


FINALIZER = textwrap.dedent('''
    import os


    class TempFile:
        def __init__(self, path):
            self.path = path

        def __del__(self):
            os.remove(self.path)


    class Keyed:
        def __init__(self, a):
            self.a = a

        def __hash__(self):
            return len(open(self.a).read())
''')


def test_finalizers_and_hash_are_judged(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "fin.py").write_text(CANARY_INIT + FINALIZER)
    judged = {j.name: j.verdict for j in _built(package).judged}
    assert "__del__" in judged["synth.fin.TempFile"].reason, judged["synth.fin.TempFile"]
    assert "__hash__" in judged["synth.fin.Keyed"].reason, judged["synth.fin.Keyed"]
    assert not judged["synth.fin.TempFile"].safe and not judged["synth.fin.Keyed"].safe
    _never_imported(package)


RETURNS = textwrap.dedent('''
    import pickle

    _LOADERS = {"pickle": pickle.loads}


    def loader_for(kind):
        return _LOADERS[kind]


    def attribute_of(obj):
        return obj.loader


    def scaled(values, factor=2):
        total = [v * factor for v in values]
        return {"total": total, "n": len(values)}


    def through(values):
        return scaled(values)
''')


def test_a_listed_function_returns_data_never_a_callable(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "ret.py").write_text(CANARY_INIT + RETURNS)
    judged = {j.name: j.verdict for j in _built(package).judged}
    for name in ("loader_for", "attribute_of"):
        verdict = judged[f"synth.ret.{name}"]
        assert not verdict.safe and "may return" in verdict.reason, verdict
    assert judged["synth.ret.scaled"].safe and judged["synth.ret.through"].safe
    _never_imported(package)


ERROR_PATHS = textwrap.dedent('''
    import inspect
    import os

    import torch


    class RaisesWithTypename:
        def __init__(self, x):
            if not isinstance(x, int):
                raise TypeError(f"expected int, got {torch.typename(x)}")
            self.x = x


    class NamesThenRaises:
        def __init__(self, x):
            if not isinstance(x, int):
                name = torch.typename(x)
                raise TypeError(name)
            self.x = x


    class TypenameOutsideRaise:  # unsafe twin: the formatter's result is kept
        def __init__(self, x):
            self.kind = torch.typename(x)


    class ErrorPathWithEffect:  # unsafe twin: only formatters are excused, not the branch
        def __init__(self, x):
            if not isinstance(x, int):
                os.remove(x)
                raise TypeError(torch.typename(x))
            self.x = x


    class NestedFunctionRaises:  # unsafe twin: a raise in a nested function excuses nothing
        def __init__(self, x):
            def check():
                raise TypeError("no")
            self.kind = torch.typename(x)


    class HasattrSafe:
        def __init__(self, name):
            if hasattr(self, name):
                raise KeyError(name)

        @property
        def size(self):
            return 1


    class HasattrUnsafeGetter:  # unsafe twin: hasattr may run the getter
        def __init__(self, name):
            if hasattr(self, name):
                raise KeyError(name)

        @property
        def size(self):
            return len(open("/etc/hostname").read())


    class ComparesFunc:
        def __init__(self):
            if getattr(self.reset, "__func__", None) is ComparesFunc.reset:
                self.reset()

        def reset(self):
            self.n = 0


    class KeepsFunc:  # unsafe twin: the function is kept, not just compared
        def __init__(self):
            self.f = getattr(self.reset, "__func__", None)

        def reset(self):
            self.n = 0


    class OwnSignature:
        def __init__(self):
            self.n = len(inspect.signature(self.reset).parameters)

        def reset(self, a):
            self.a = a


    class ArgumentSignature:  # unsafe twin: a pickle-built object's signature
        def __init__(self, fn):
            self.n = len(inspect.signature(fn).parameters)


    class DeletesThroughObject:
        def __delattr__(self, name):
            super().__delattr__(name)


    class DeletesFile:  # unsafe twin
        def __init__(self, path):
            self.path = path

        def __delattr__(self, name):
            os.remove(self.path)
''')


def test_error_messages_and_attribute_probes(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "errors.py").write_text(CANARY_INIT + ERROR_PATHS)
    judged = {j.name.rpartition(".")[2]: j.verdict for j in _built(package).judged
              if j.name.startswith("synth.errors.")}
    for name in ("RaisesWithTypename", "NamesThenRaises", "HasattrSafe", "ComparesFunc",
                 "OwnSignature", "DeletesThroughObject"):
        assert judged[name].safe, (name, judged[name])
    expected = {"TypenameOutsideRaise": "torch.typename",
                "ErrorPathWithEffect": "os.remove",
                "NestedFunctionRaises": "torch.typename",
                "HasattrUnsafeGetter": "may read the property size",
                "KeepsFunc": "__func__",
                "ArgumentSignature": "inspect.signature",
                "DeletesFile": "__delattr__"}
    for name, why in expected.items():
        assert not judged[name].safe and why in judged[name].reason, (name, judged[name])
    _never_imported(package)


# A stand-in for the parts of torch the tensor rules name (read as source, never imported).
FAKE_TORCH = {
    "__init__.py": "",  # torch.zeros/ones are native: unresolved names, reviewed by name
    "autograd/__init__.py": "",
    "autograd/grad_mode.py": textwrap.dedent('''
        class no_grad:
            def __new__(cls, orig_func=None):
                if orig_func is None:
                    return super().__new__(cls)
                return cls()(orig_func)
    '''),
}

TENSORS = textwrap.dedent('''
    import torch
    from torch.autograd.grad_mode import no_grad


    class Stats:
        def __init__(self, n, track=True):
            if track:
                self.mean = torch.zeros(n)
                self.register_buffer("var", torch.ones(n))
            else:
                self.mean = None
                self.register_buffer("var", None)
            self.reset()

        def register_buffer(self, name, value):
            self.__dict__[name] = value

        def reset(self):
            self.mean.zero_()
            self.var.fill_(1)


    class StatsFromArgument:  # unsafe twin: the attribute holds what the caller passed
        def __init__(self, mean):
            self.mean = mean
            self.mean.zero_()


    class StatsOtherMethod:  # unsafe twin: not a tensor method
        def __init__(self, n):
            self.mean = torch.zeros(n)
            self.mean.save("/tmp/x")


    class StatsClassAttribute:  # unsafe twin: a class-level binding of the name
        mean = None

        def __init__(self, n):
            self.mean.zero_()


    class Zeroable:  # a class defining a tensor method unsafely is refused (protocol)
        def zero_(self):
            return open("/etc/hostname").read()


    class NoGradUser:
        def __init__(self, n):
            with no_grad():
                self.n = n


    class NoGradDecorating:  # unsafe twin: no_grad(f) calls cls()(f)
        def __init__(self, fn):
            self.fn = no_grad(fn)
''')


def test_tensor_methods_on_own_tensors_and_no_grad(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "tensors.py").write_text(CANARY_INIT + TENSORS)
    torch_root = tmp_path / "ctx" / "torch"
    for rel, text in FAKE_TORCH.items():
        (torch_root / rel).parent.mkdir(parents=True, exist_ok=True)
        (torch_root / rel).write_text(CANARY_INIT + text)
    result = build(read_sources(str(package)), context=[read_sources(str(torch_root))])
    judged = {j.name.rpartition(".")[2]: j.verdict for j in result.judged
              if j.name.startswith("synth.tensors.")}
    assert judged["Stats"].safe, judged["Stats"]
    assert judged["NoGradUser"].safe, judged["NoGradUser"]
    expected = {"StatsFromArgument": "self.mean.zero_()",
                "StatsOtherMethod": "self.mean.save()",
                "StatsClassAttribute": "self.mean.zero_()",
                "Zeroable": "defines zero_()",
                "NoGradDecorating": "cls()"}
    for name, why in expected.items():
        assert not judged[name].safe and why in judged[name].reason, (name, judged[name])
    assert not (torch_root / "IMPORTED").exists()
    _never_imported(package)


REVIEWED_USE = textwrap.dedent('''
    from synth.risky import OpensFile, Spawns


    class BuildsReviewed:
        def __init__(self, path):
            self.inner = OpensFile(path)


    class BuildsUnreviewed:  # unsafe twin: Spawns is on no reviewed list
        def __init__(self, cmd):
            self.inner = Spawns(cmd)
''')


def test_a_hand_reviewed_class_may_be_constructed(tmp_path: Path) -> None:
    package = _package(tmp_path / "src")
    (package / "reviewed.py").write_text(CANARY_INIT + REVIEWED_USE)
    result = build(read_sources(str(package)),
                   trusted=lambda name: name == "synth.risky.OpensFile")
    judged = {j.name: j.verdict for j in result.judged}
    assert judged["synth.reviewed.BuildsReviewed"].safe
    assert "starts a process" in judged["synth.reviewed.BuildsUnreviewed"].reason
    # The reviewed class itself is still judged from its source, not listed on trust.
    assert not judged["synth.risky.OpensFile"].safe
    _never_imported(package)
