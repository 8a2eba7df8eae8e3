"""The allowlist is the product: ordinary checkpoints pass the default gate, nothing that loads,
imports or runs code is allowed, and every entry says why it is safe."""

from __future__ import annotations

from pathlib import Path

import pytest

from ckptguard.api import scan
from ckptguard.engine.namelists import NameList, load_list_file
from ckptguard.engine.ruleset import RuleSet, rules_directory
from ckptguard.model import Severity
from fixtures.benign_ml import FIXTURES as BENIGN

LISTS = rules_directory() / "lists"
SAFE_FOLDER = LISTS / "safe_globals"
RULES = RuleSet.load()
SAFE = RULES.lists["safe_globals"]
DANGEROUS = RULES.lists["dangerous_callables"]

# Files of the ML allowlist and the top-level packages their entries may name.
LIBRARY_FILES = {
    "torch.yaml": ("torch",),
    "numpy.yaml": ("numpy",),
    "sklearn.yaml": ("sklearn",),
    "scipy.yaml": ("scipy",),
    "joblib.yaml": ("joblib", "sklearn"),
    "gensim.yaml": ("gensim",),
    "transformers.yaml": ("transformers", "peft", "accelerate"),
    "configs.yaml": ("omegaconf", "pytorch_lightning", "lightning", "lightning_fabric"),
    "boosting.yaml": ("xgboost", "lightgbm"),
    "tokenizers.yaml": ("tokenizers",),
    "morfessor.yaml": ("morfessor",),
}

# Loaders, code paths and gadgets that look like data: none may ever be allowed.
MUST_NOT_ALLOW = (
    "torch.load", "torch.hub.load", "torch.hub.load_state_dict_from_url", "torch.jit.load",
    "torch.serialization.load", "torch.serialization._load", "torch.storage._load_from_bytes",
    "torch._tensor._rebuild_from_type_v2", "torch.utils.cpp_extension.load",
    "torch.utils.cpp_extension.load_inline", "torch._C._jit_pass_inline",
    "torch.fx.graph_module.reduce_graph_module", "torch.fx.graph_module._forward_from_src",
    "torch.nn.modules.module.Module.__setstate__", "torch.nn.functional.torch",
    "torch.nn.modules.module.register_module_forward_hook", "torch.package.PackageImporter",
    "numpy.load", "numpy.loads", "numpy.lib.npyio.load", "numpy.fromfile", "numpy.frompyfunc",
    "numpy.testing.assert_equal", "numpy.distutils.exec_command.exec_command",
    "numpy.f2py.compile", "numpy.ctypeslib.load_library", "numpy.core._ufunc_reconstruct",
    "numpy._core._ufunc_reconstruct", "numpy.lib.format.read_array",
    "joblib.load", "joblib.numpy_pickle_compat.read_zfile", "joblib.numpy_pickle.load",
    "sklearn.datasets.fetch_openml", "sklearn.datasets._openml.fetch_openml",
    "sklearn.datasets.load_svmlight_file", "sklearn.datasets.dump_svmlight_file",
    "sklearn.tree.export_graphviz", "sklearn.tree._export.export_graphviz",
    "sklearn.utils._testing.assert_run_python_script_without_output",
    "sklearn.utils.parallel.delayed", "sklearn.utils.parallel.Parallel",
    "gensim.utils.unpickle", "gensim.utils.pickle", "gensim.utils.SaveLoad.load",
    "tokenizers.models.BPE", "tokenizers.Tokenizer.from_file",
    "sentencepiece.SentencePieceProcessor",
    "os.system", "builtins.eval", "builtins.exec", "builtins.getattr", "builtins.__import__",
    "operator.attrgetter", "operator.methodcaller", "importlib.import_module",
    "pickle.loads", "subprocess.Popen",
)


def _own_files() -> list[Path]:
    return [SAFE_FOLDER / name for name in sorted(LIBRARY_FILES)]


def test_every_library_file_exists_and_loads() -> None:
    for path in _own_files():
        listed = load_list_file(path)
        assert list(listed.entries()), f"{path.name} has no entries"
        assert listed.description.strip(), f"{path.name} has no description"


@pytest.mark.parametrize("path", _own_files(), ids=lambda p: p.name)
def test_every_entry_says_why_it_is_safe(path: Path) -> None:
    for entry in load_list_file(path).entries():
        assert len(entry.why.split()) >= 4, f"{path.name}: {entry.pattern} has no real reason"
        assert entry.category, f"{path.name}: {entry.pattern} is not in a category"


@pytest.mark.parametrize("path", _own_files(), ids=lambda p: p.name)
def test_entries_stay_inside_their_library(path: Path) -> None:
    roots = LIBRARY_FILES[path.name]
    for entry in load_list_file(path).entries():
        assert entry.pattern.split(".")[0] in roots, f"{path.name}: {entry.pattern}"
        # A wildcard may stand for one class or one module member, never for a whole top-level
        # package or an unbounded run of segments.
        assert "**" not in entry.pattern, f"{path.name}: {entry.pattern} is too broad"
        assert not entry.pattern.split(".")[1].startswith("*"), entry.pattern


def test_no_safe_entry_is_a_dangerous_callable() -> None:
    clashes = []
    for entry in DANGEROUS.entries():
        # A denylist name (or a pattern taken literally) that an allowlist entry would match.
        hit = SAFE.lookup(entry.pattern)
        if hit is not None:
            clashes.append((entry.pattern, hit.pattern))
    for entry in SAFE.entries():
        hit = DANGEROUS.lookup(entry.pattern)
        if hit is not None:
            clashes.append((hit.pattern, entry.pattern))
    assert not clashes, f"allowlisted and denylisted at once: {clashes}"


@pytest.mark.parametrize("name", MUST_NOT_ALLOW)
def test_loaders_and_gadgets_are_not_allowed(name: str) -> None:
    hit = SAFE.lookup(name)
    assert hit is None, f"{name} is allowed by {hit.pattern if hit else ''}"


@pytest.mark.parametrize("name", [
    "torch._utils._rebuild_tensor_v2", "torch.nn.modules.linear.Linear", "torch.FloatStorage",
    "torch.optim.adamw.AdamW", "torch.optim.lr_scheduler.OneCycleLR", "torch.bfloat16",
    "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.dtype",
    "numpy.random._pickle.__randomstate_ctor", "numpy.random._pcg64.PCG64DXSM",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble.forest.RandomForestClassifier",  # the pre-0.22 module layout
    "sklearn.tree._tree.Tree", "sklearn._loss.loss.HalfBinomialLoss",
    "gensim.models.keyedvectors.KeyedVectors", "omegaconf.dictconfig.DictConfig",
])
def test_common_checkpoint_globals_are_allowed(name: str) -> None:
    assert name in SAFE


@pytest.mark.parametrize("name", [
    "transformers.models.bert.configuration_bert.BertConfig",
    "transformers.training_args.TrainingArguments", "peft.tuners.lora.config.LoraConfig",
    "accelerate.state.PartialState",
])
def test_common_checkpoint_classes_may_be_restored(name: str) -> None:
    """On the restore-only list: a checkpoint may instantiate them; a call is PKL002."""
    restorable = RuleSet.load().lists["restorable_globals"]
    assert name in restorable


def test_patterns_do_not_reach_through_attributes() -> None:
    # One "*" is one dotted segment: an allowed module member must not open a path to
    # attributes of what it names (module imports such as ``tokenizers.decoders.os.system``).
    assert "tokenizers.decoders.os.system" not in SAFE
    assert "transformers.models.bert.configuration_bert.os.system" not in SAFE
    assert "sklearn.linear_model._base.np.load" not in SAFE


def _without_allowlist(rules: RuleSet) -> RuleSet:
    lists = dict(rules.lists)
    lists["safe_globals"] = NameList.build("safe_globals", "empty", [])
    return RuleSet(rules.rules, lists, rules.checks)


@pytest.mark.parametrize("fixture", BENIGN, ids=lambda f: f.name)
def test_benign_checkpoint_is_spotless(fixture, make_fixture) -> None:  # type: ignore[no-untyped-def]
    path: Path = make_fixture(fixture.name)
    result = scan([path], rules=RULES, root=path.parent)
    serious = [(f.rule_id, f.severity.label, f.message)
               for f in result.at_or_above(Severity.MEDIUM)]
    assert not result.failed, serious
    assert not serious


LIBRARY_FIXTURES = [f for f in BENIGN if f.requires]


@pytest.mark.parametrize("fixture", LIBRARY_FIXTURES, ids=lambda f: f.name)
def test_the_allowlist_is_what_lets_it_pass(fixture, make_fixture) -> None:  # type: ignore[no-untyped-def]
    # Control: with the allowlist emptied the same file raises import findings, so the test
    # above passes because of the allowlist, not because nothing was looked at.
    path: Path = make_fixture(fixture.name)
    result = scan([path], rules=_without_allowlist(RULES), root=path.parent)
    assert result.at_or_above(Severity.MEDIUM), [f.rule_id for f in result.findings]


def _resolves(name: str) -> bool:
    """Whether ``name`` names an attribute of an importable module (imports the library, calls
    nothing from any scanned file)."""
    import importlib

    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


@pytest.mark.parametrize("library", ["torch", "scipy"])
def test_exact_names_exist_in_the_installed_library(library: str) -> None:
    # These two files name only the current module layout, so a typo shows up as a name the
    # installed release does not have.  (numpy.yaml and sklearn.yaml also keep older layouts.)
    pytest.importorskip(library)
    missing = [e.pattern for e in load_list_file(SAFE_FOLDER / f"{library}.yaml").entries()
               if "*" not in e.pattern and not _resolves(e.pattern)]
    assert not missing, missing


def test_argument_callers_are_allowlisted_helpers() -> None:
    # ALW001's list exists because these helpers are allowed; a helper that is not allowed is
    # already reported as called (PKL002), so listing it there would say nothing.
    helpers = RULES.lists["argument_callers"]
    for entry in helpers.entries():
        probe = entry.pattern.replace("*", "ball_tree")
        assert probe in SAFE, f"{entry.pattern} is in argument_callers but not in safe_globals"


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw


def test_padding_cannot_hide_the_callable_from_alw001(tmp_path: Path) -> None:
    # __randomstate_ctor((40 long strings), zz_fixture.helpers.touch): the call's rendering is cut
    # short before the callable; ALW001 fails closed instead of missing it.
    padding = b"(" + b"".join(_unicode("A" * 50) for _ in range(40)) + b"t"
    data = (b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\n" + padding
            + b"czz_fixture.helpers\ntouch\n\x86R.")
    path = tmp_path / "padded.pkl"
    path.write_bytes(data)
    result = scan([path], rules=RULES, root=tmp_path)
    assert result.failed
    assert any(f.rule_id == "ALW001" and "zz_fixture.helpers.touch" in f.message
               for f in result.findings), result.findings


RESTORABLE_FOLDER = LISTS / "restorable_globals"


def test_restorable_entries_are_justified_and_neither_safe_to_call_nor_dangerous() -> None:
    """Classes safe to restore but not to call: each says why, none is also on the call-safe
    list (that would make the split meaningless) and none is a dangerous callable."""
    rules = RuleSet.load()
    safe, dangerous = rules.lists["safe_globals"], rules.lists["dangerous_callables"]
    files = sorted(RESTORABLE_FOLDER.glob("*.yaml"))
    assert files
    for path in files:
        listed = load_list_file(path)
        for entry in listed.entries():
            assert entry.why.strip(), f"{path.name}: {entry.pattern} has no reason"
            probe = entry.pattern.replace("*", "x")
            assert safe.lookup(probe) is None, f"{entry.pattern} is also on safe_globals"
            assert dangerous.lookup(probe) is None, f"{entry.pattern} is dangerous"


def test_restoring_is_allowed_but_calling_is_not(make_fixture) -> None:  # type: ignore[no-untyped-def]
    restored = scan([make_fixture("restorable_training_args")])
    assert restored.findings == () and not restored.failed
    called = scan([make_fixture("restorable_training_args_called")])
    assert called.failed
    assert [(f.rule_id, f.severity) for f in called.findings] == [("PKL002", Severity.HIGH)]
