"""Evidence is bounded by construction: a decompiled view never expands shared structure."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from ckptguard import Config
from ckptguard.api import scan
from ckptguard.formats.pickle.decompile import (
    MAX_RENDER_COST,
    _renders_within,
    _with_stderr_captured,
    decompiled_view,
)
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


# GLOBAL os system, then a BINGET of memo key 5 that was never stored: a loader stops there.
MISSING_MEMO = b"\x80\x02cos\nsystem\nq\x00h\x05X\x04\x00\x00\x00echo\x85R."
# A MARK-consuming TUPLE with no MARK: fickling cannot interpret it at all (an empty tree).
NO_MARK = b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00echot."


def test_a_view_fickling_had_to_patch_is_unavailable_and_says_why(
        capsys: pytest.CaptureFixture[str]) -> None:
    view = decompiled_view(MISSING_MEMO)
    assert view.startswith("unavailable (fickling: malformed pickle file. BINGET")
    assert "None(" not in view  # fickling's placeholder is not shown as what a loader does
    unreadable = decompiled_view(NO_MARK)
    assert unreadable.startswith("unavailable (fickling: malformed pickle file.")
    assert capsys.readouterr().err == ""  # nothing from fickling reaches the terminal


def test_other_writes_to_stderr_meanwhile_are_passed_on(
        capsys: pytest.CaptureFixture[str]) -> None:
    def work() -> int:
        sys.stderr.write("Warning: malformed pickle file. from fickling\n")
        sys.stderr.write("progress line from elsewhere\n")
        return 7

    result, warnings = _with_stderr_captured(work)
    assert result == 7
    assert warnings == ["Warning: malformed pickle file. from fickling"]
    assert capsys.readouterr().err == "progress line from elsewhere\n"


def test_the_cli_report_carries_no_third_party_warning(tmp_path: Path) -> None:
    path = tmp_path / "patched.pkl"
    path.write_bytes(MISSING_MEMO)
    # The real entry point in its own process: the scan runs in a worker process whose stderr
    # is the terminal's, which an in-process runner would not see.
    done = subprocess.run([sys.executable, "-c", "from ckptguard.cli import main; main()",
                           "scan", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1, done.stderr
    assert "PKL001" in done.stdout and "unavailable (fickling:" in done.stdout
    assert "Warning:" not in done.stderr and "Warning:" not in done.stdout
