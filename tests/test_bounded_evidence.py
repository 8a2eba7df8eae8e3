"""Evidence is bounded by construction: a decompiled view never expands shared structure."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

from ckptguard import Config
from ckptguard.api import scan
from ckptguard.formats.pickle.decompile import MAX_RENDER_COST, _renders_within, decompiled_view
from fixtures.bombs import memo_bomb_pickle


def test_memo_shared_lists_are_not_expanded(tmp_path: Path) -> None:
    data = memo_bomb_pickle(tmp_path / "PWNED")
    assert len(data) < 2048
    view = decompiled_view(data)
    assert view.startswith("unavailable") and str(MAX_RENDER_COST) in view


def test_render_cost_counts_each_use_of_a_shared_node() -> None:
    shared = ast.List(elts=[ast.Constant(1)], ctx=ast.Load())
    tree: ast.AST = shared
    for _ in range(30):  # 2**30 uses of ``shared`` once expanded; fickling stores tuples
        tree = ast.List(elts=(tree, tree), ctx=ast.Load())
    assert not _renders_within(tree, 10_000)
    assert _renders_within(ast.List(elts=(shared, shared), ctx=ast.Load()), 10)


def test_small_pickles_still_get_a_view() -> None:
    view = decompiled_view(pickle.dumps({"a": [1, 2], "b": "text"}, protocol=2))
    assert "result" in view and "'text'" in view


def test_memo_bomb_is_judged_on_the_call(tmp_path: Path) -> None:
    path = tmp_path / "memo_bomb.pkl"
    path.write_bytes(memo_bomb_pickle(tmp_path / "PWNED"))
    result = scan([path], Config())
    pkl = [f for f in result.findings if f.rule_id == "PKL001"]
    assert pkl and result.failed
    assert pkl[0].evidence_dict()["decompiled"].startswith("unavailable")
