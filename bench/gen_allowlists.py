"""Regenerate rules/lists/safe_globals/generated/<lib>.yaml from pinned library source.

Each library is read from a pinned wheel (``pip download --no-deps`` into bench/.cache/wheels)
or, for the big ones already in this environment, from the installed package when its version
is the pinned one.  Nothing is imported: ckptguard.allowgen parses the source with ``ast``.
The output is sorted and carries no timestamp, so a re-run gives the same bytes.

    python bench/gen_allowlists.py                 # every library below
    python bench/gen_allowlists.py torch numpy     # some
    python bench/gen_allowlists.py --compare       # also compare with the hand-written lists
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ckptguard.allowgen.build import BuildResult, build
from ckptguard.allowgen.listfile import dump
from ckptguard.allowgen.sources import SourceSet, read_sources
from ckptguard.engine.namelists import ListEntry, NameList, load_list_file
from ckptguard.engine.ruleset import RuleSet, rules_directory

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache" / "wheels"
SAFE = rules_directory() / "lists" / "safe_globals"
OUT = SAFE / "generated"
SITE = [p for p in sys.path if p.endswith("site-packages")]


@dataclass(frozen=True)
class Library:
    name: str  # output file stem
    requirement: str  # NAME==VERSION on PyPI
    packages: tuple[str, ...]  # top-level packages listed
    installed: bool = False  # read from this environment when the version matches
    context: tuple[str, ...] = ()  # other libraries (by name) used to resolve calls
    python: str = "3.11"  # the interpreter the wheel is built for (fairseq: no 3.11 wheel)


LIBRARIES = (
    Library("torch", "torch==2.13.0", ("torch",), installed=True),
    Library("numpy", "numpy==2.4.6", ("numpy",), installed=True),
    Library("scipy", "scipy==1.17.1", ("scipy",), installed=True, context=("numpy",)),
    Library("sklearn", "scikit-learn==1.9.1", ("sklearn",), installed=True,
            context=("numpy", "scipy", "joblib")),
    Library("joblib", "joblib==1.6.0", ("joblib",), installed=True),
    Library("transformers", "transformers==4.46.3", ("transformers",), context=("torch",)),
    Library("accelerate", "accelerate==1.1.1", ("accelerate",), context=("torch",)),
    Library("peft", "peft==0.13.2", ("peft",), context=("torch", "transformers")),
    Library("lightning", "lightning==2.4.0", ("lightning",), context=("torch",)),
    Library("pytorch_lightning", "pytorch-lightning==2.4.0", ("pytorch_lightning",),
            context=("torch",)),
    Library("lightning_fabric", "lightning-fabric==2.4.0", ("lightning_fabric",),
            context=("torch",)),
    Library("sentence_transformers", "sentence-transformers==3.3.1",
            ("sentence_transformers",), context=("torch", "transformers")),
    Library("diffusers", "diffusers==0.31.0", ("diffusers",), context=("torch",)),
    Library("timm", "timm==1.0.11", ("timm",), context=("torch",)),
    Library("omegaconf", "omegaconf==2.3.0", ("omegaconf",)),
    Library("gensim", "gensim==4.3.3", ("gensim",), context=("numpy",)),
    Library("lightgbm", "lightgbm==4.5.0", ("lightgbm",), context=("numpy",)),
    Library("sklearn_crfsuite", "sklearn-crfsuite==0.5.0", ("sklearn_crfsuite",),
            context=("sklearn", "numpy", "scipy")),
    Library("thinc", "thinc==8.3.2", ("thinc",), context=("numpy",)),
    Library("spacy", "spacy==3.8.2", ("spacy",), context=("thinc",)),
    Library("pyannote_audio", "pyannote.audio==3.3.2", ("pyannote",), context=("torch",)),
    Library("ultralytics", "ultralytics==8.3.40", ("ultralytics",), context=("torch",)),
    # xgboost-cpu: the same xgboost package without the CUDA build (4 MB instead of 150 MB)
    Library("xgboost", "xgboost-cpu==2.1.3", ("xgboost",), context=("numpy",)),
    Library("fairseq", "fairseq==0.12.2", ("fairseq",), context=("torch",), python="3.8"),
)
BY_NAME = {lib.name: lib for lib in LIBRARIES}

# Names the hand review left out on purpose (docs/allowlist.md, "Precision"), whatever the
# analysis finds: the generator never lists them.
EXCLUDED = (
    "sklearn.utils.parallel.**", "sklearn.utils._testing.**", "sklearn.datasets.**",
    "sklearn.externals.**", "torch.serialization.**", "torch.hub.**", "torch.jit.**",
    "torch.package.**", "torch.utils.cpp_extension.**", "torch.fx.graph_module.**",
    "numpy.lib.npyio.**", "numpy.lib.format.**", "numpy.testing.**", "numpy.f2py.**",
    "numpy.ctypeslib.**", "gensim.utils.**", "joblib.numpy_pickle_compat.**", "scipy.io.**",
)


def _wheel(lib: Library) -> Path:
    name, _, version = lib.requirement.partition("==")
    stem = name.replace("-", "_").replace(".", "_").lower()
    CACHE.mkdir(parents=True, exist_ok=True)
    found = sorted(p for p in CACHE.glob("*.whl")
                   if p.name.lower().startswith(f"{stem}-{version}-"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                    "--only-binary", ":all:", "--python-version", lib.python, "--implementation",
                    "cp", "--platform", "manylinux2014_x86_64", "--platform",
                    "manylinux_2_28_x86_64", "--platform", "any", "--dest", str(CACHE),
                    lib.requirement], check=True, timeout=900)
    return _wheel(lib)


def sources_of(lib: Library, cache: dict[str, SourceSet]) -> SourceSet:
    if lib.name in cache:
        return cache[lib.name]
    version = lib.requirement.partition("==")[2]
    source: SourceSet | None = None
    if lib.installed:
        found = read_sources(lib.packages[0], search=SITE)
        if found.version.split("+")[0] == version:
            source = found
    if source is None:
        source = read_sources(str(_wheel(lib)))
        keep = {m: t for m, t in source.modules.items() if m.split(".")[0] in lib.packages}
        source = SourceSet(lib.packages, source.version, keep, source.origin,
                           source.inits & frozenset(keep))
    cache[lib.name] = source
    return source


def hand_list() -> NameList:
    entries = [e for path in sorted(SAFE.glob("*.yaml")) for e in load_list_file(path).entries()]
    return NameList.build("hand", "hand-written safe_globals", entries)


def generate(lib: Library, cache: dict[str, SourceSet], hand: NameList) -> BuildResult:
    dangerous = RuleSet.load().lists["dangerous_callables"]
    excluded = NameList.build("excluded", "", [
        *(e for e in dangerous.entries()),
        *(ListEntry(p, "excluded", "left out by review")
          for p in EXCLUDED)])
    target = sources_of(lib, cache)
    context = [sources_of(BY_NAME[name], cache) for name in lib.context]
    return build(target, context=context, trusted=lambda n: n in hand,
                 refuse=lambda n: n in excluded)


def compare(result: BuildResult, hand: NameList, packages: tuple[str, ...]) -> str:
    """How the generated entries relate to the hand-written ones of the same packages."""
    safe = {j.name for j in result.safe}
    judged = {j.name: j for j in result.judged}
    own = [e for e in hand.entries() if e.pattern.split(".")[0] in packages]
    reproduced = [e for e in own if e.pattern in safe or
                  ("*" in e.pattern and any(NameList.build("x", "", [e]).lookup(n)
                                            for n in safe))]
    disagree = [(e.pattern, judged[e.pattern].verdict.reason) for e in own
                if e.pattern in judged and e.pattern not in safe]
    unseen = [e.pattern for e in own if e.pattern not in judged and e not in reproduced]
    lines = [f"  hand entries: {len(own)}, reproduced: {len(reproduced)}, judged unsafe: "
             f"{len(disagree)}, not visible to the analyser (native code, patterns, other "
             f"layouts): {len(unseen)}; generated: {len(safe)}"]
    lines += [f"    unsafe by analysis: {name}: {why}" for name, why in disagree]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("libraries", nargs="*", help="output names (default: all)")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    chosen = [BY_NAME[name] for name in args.libraries] if args.libraries else list(LIBRARIES)
    hand = hand_list()
    cache: dict[str, SourceSet] = {}
    OUT.mkdir(parents=True, exist_ok=True)
    for lib in chosen:
        try:
            sources_of(lib, cache)
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            print(f"{lib.name}: cannot get {lib.requirement}: {exc}", file=sys.stderr)
            continue
        start, cpu = time.perf_counter(), time.process_time()
        result = generate(lib, cache, hand)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        target = OUT / f"{lib.name}.yaml"
        if result.safe:
            target.write_text(dump(result, tool="bench/gen_allowlists.py"), encoding="utf-8")
        elif target.exists():
            target.unlink()  # nothing proven safe: no list (rather than an empty one)
        print(f"{lib.name} {result.sources.version}: {len(result.sources.modules)} modules, "
              f"{len(result.judged)} judged, {len(result.safe)} safe, "
              f"{len(result.refused)} refused, {seconds:.1f}s wall, {cpu:.1f}s CPU "
              "(parse and analysis; sources already read)")
        if args.compare:
            print(compare(result, hand, lib.packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
