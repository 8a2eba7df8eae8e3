"""Cost of the ONNX parser and of the repository-code AST analysis, against baselines measured in
the same run.

Run from the repository root:

    python bench/bench_formats_b.py            # 200 MB ONNX model, torch.nn + sklearn sources
    python bench/bench_formats_b.py --quick    # 50 MB model, torch.nn only

ONNX: a model with inline float32 initializers, parsed by ``ckptguard.formats.onnx_fmt.parse``
(with and without tensor refs) against the bare protobuf decode (``ModelProto.ParseFromString``
of the file's bytes), which is the floor for any parser that uses the onnx package.

Python: ``pycode.analyse_python`` over real library sources (torch.nn, scikit-learn) against
``ast.parse`` alone; it also counts what the analysis reports on this ordinary (non-hostile)
code, by category and scope, which is what an HF-repo scan of such code would raise.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"


def timed(function: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def onnx_model(path: Path, megabytes: int) -> None:
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    count = 100
    side = int((megabytes * 1024**2 / count / 4) ** 0.5)
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((side, side), dtype=np.float32),
                                     f"layer{i}.weight") for i in range(count)]
    nodes = [helper.make_node("MatMul", [f"h{i}", f"layer{i}.weight"], [f"h{i + 1}"])
             for i in range(count)]
    graph = helper.make_graph(nodes, "bench", [helper.make_tensor_value_info(
        "h0", onnx.TensorProto.FLOAT, [1, side])], [helper.make_tensor_value_info(
            f"h{count}", onnx.TensorProto.FLOAT, [1, side])], inits)
    path.write_bytes(helper.make_model(graph).SerializeToString())


def bench_onnx(megabytes: int) -> None:
    import onnx

    from ckptguard.facts import Artifact
    from ckptguard.formats import ParseContext
    from ckptguard.formats.onnx_fmt import parse
    from ckptguard.source import FileSource

    OUT.mkdir(exist_ok=True)
    path = OUT / "bench_b.onnx"
    onnx_model(path, megabytes)
    size = path.stat().st_size
    artifact = Artifact((path.name,), FileSource(str(path)))

    def baseline() -> None:
        onnx.ModelProto().ParseFromString(path.read_bytes())

    base = timed(baseline)
    plain = timed(lambda: parse(artifact, ParseContext()))
    tensors = timed(lambda: parse(artifact, ParseContext(want_tensors=True)))
    refs = parse(artifact, ParseContext(want_tensors=True)).tensors
    sliced = sum(1 for t in refs if isinstance(t.source, FileSource))
    print(f"onnx {size / 1e6:.0f} MB: protobuf decode {base:.3f}s; ckptguard parse "
          f"{plain:.3f}s ({plain / base:.2f}x); with tensor refs {tensors:.3f}s "
          f"({tensors / base:.2f}x); {sliced}/{len(refs)} tensors are file slices")
    path.unlink()


def bench_python(roots: list[Path]) -> None:
    from ckptguard.engine.namelists import load_list_file
    from ckptguard.engine.ruleset import rules_directory
    from ckptguard.formats.pycode import analyse_python, code_lists
    from ckptguard.model import Location

    lists = code_lists(load_list_file(rules_directory() / "lists" / "remote_code_calls.yaml"))
    files = sorted(p for root in roots for p in root.rglob("*.py"))
    sources = [(str(p), p.read_text("utf-8", "replace")) for p in files]
    total = sum(len(s) for _, s in sources)
    base = timed(lambda: [ast.parse(s) for _, s in sources], repeat=1)
    reported: Counter[str] = Counter()

    def analyse() -> None:
        reported.clear()
        for name, source in sources:
            for fact in analyse_python(source, name, Location((name,)), lists):
                reported[f"{fact.kind}:{fact.attrs.get('category', '')}:"
                         f"{fact.attrs.get('scope', '')}"] += 1

    cost = timed(analyse, repeat=1)
    print(f"python {len(files)} files, {total / 1e6:.1f} MB: ast.parse {base:.2f}s; analysis "
          f"{cost:.2f}s ({cost / base:.2f}x)")
    for key, count in reported.most_common(12):
        print(f"  {count:5d}  {key}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    bench_onnx(50 if args.quick else 200)
    roots = [package_dir("torch") / "nn"]
    if not args.quick:
        roots.append(package_dir("sklearn"))
    bench_python(roots)


def package_dir(name: str) -> Path:
    """Where a package's sources are, without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{name} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


if __name__ == "__main__":
    main()
