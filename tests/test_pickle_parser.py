"""The parser's fact contract (ckptguard/formats/pickle/README.md): kinds, attributes, streams of
several pickles, legacy torch tensors, nested pickles as children, and every limit."""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.pickle.parser import parse
from ckptguard.limits import DEFAULT_LIMITS
from ckptguard.source import FileSource, MemorySource
from fixtures.pickle_asm import (
    BINPERSID,
    BUILD,
    EMPTY_DICT,
    MARK,
    REDUCE,
    SETITEMS,
    STOP,
    binbytes,
    binunicode,
    call,
    glob,
    int1,
    proto,
    text,
    tup,
)
from fixtures.pickles import os_system_p2, torch_legacy

CANARY = Path("/nonexistent/ckptguard-canary")


def run(stream: bytes, *, chain: tuple[str, ...] = ("t.pkl",), **limits: int | bool
        ) -> ParseOutput:
    ctx = ParseContext(limits=replace(DEFAULT_LIMITS, **limits))
    return parse(Artifact(chain, MemorySource(stream)), ctx)


def one(output: ParseOutput, kind: str) -> dict[str, object]:
    found = [dict(f.attrs) for f in output.of_kind(kind)]
    assert len(found) == 1, (kind, found)
    return found[0]


def test_import_and_call_facts_carry_the_contract_attributes() -> None:
    output = run(os_system_p2(CANARY))
    imp = one(output, "pickle.import")
    assert {"qualname", "module", "name", "raw", "opcode", "offset", "use", "resolved_via",
            "reconstruction"} <= set(imp)
    assert (imp["qualname"], imp["module"], imp["name"], imp["opcode"], imp["offset"]) == \
        ("os.system", "os", "system", "GLOBAL", 2)
    call_fact = one(output, "pickle.call")
    assert (call_fact["callee"], call_fact["kind"]) == ("os.system", "reduce")
    assert isinstance(call_fact["offset"], int) and call_fact["reconstruction"]
    stream = one(output, "pickle.stream")
    assert (stream["pickles"], stream["protocol"], stream["trailing_bytes"]) == (1, 2, 0)
    assert stream["opcodes"] == 7
    located = next(output.of_kind("pickle.import")).location
    assert located.offset == 2 and located.chain == ("t.pkl",)


def test_every_pickle_of_a_stream_is_interpreted() -> None:
    output = run(pickle.dumps([1], protocol=2) + pickle.dumps("x", protocol=0) +
                 os_system_p2(CANARY))
    assert one(output, "pickle.stream")["pickles"] == 3
    assert one(output, "pickle.import")["qualname"] == "os.system"


def test_trailing_bytes_are_a_fact_not_an_error() -> None:
    output = run(pickle.dumps([1], protocol=2) + b"\x00garbage")
    stream = one(output, "pickle.stream")
    assert (stream["trailing_bytes"], stream["trailing_kind"]) == (8, "unknown")
    assert not list(output.of_kind("parse.error"))


def test_error_keeps_what_ran_before_it() -> None:
    stream = os_system_p2(CANARY)[:-1] + b"\xff"
    output = run(stream)
    error = one(output, "parse.error")
    assert error["format"] == "pickle" and error["offset"] == error["read"] == len(stream) - 1
    assert "invalid opcode 0xff" in str(error["error"])
    assert one(output, "pickle.import")["use"] == "called"


def test_truncation_reports_what_was_not_read() -> None:
    output = run(pickle.dumps(list(range(100)), protocol=2)[:50])
    error = one(output, "parse.error")
    assert error["truncated"] is True and error["unread"] == 50 - int(str(error["offset"]))


def test_torch_legacy_tensors() -> None:
    output = run(torch_legacy(CANARY))
    assert output.format == "torch-legacy"
    stream = one(output, "pickle.stream")
    assert (stream["pickles"], stream["trailing_kind"]) == (5, "torch-storages")
    tensors = {f.attrs["name"]: dict(f.attrs) for f in output.of_kind("torch.tensor")}
    weight = tensors["layer1.weight"]
    assert (weight["storage_key"], weight["storage_dtype"], weight["shape"], weight["stride"],
            weight["storage_offset"], weight["numel"]) == ("0", "float32", (2, 2), (2, 1), 0, 4)
    assert tensors["layer1.bias"]["shape"] == (4,)
    assert len(list(output.of_kind("pickle.persistent_id"))) == 2


def _tensor(key: str) -> bytes:
    pid = tup(text("storage"), glob("torch", "HalfStorage"), text(key), text("cpu"), int1(2))
    return call(glob("torch._utils", "_rebuild_tensor_v2"), pid + BINPERSID, int1(0),
                tup(int1(2)), tup(int1(1)), b"\x89", call(glob("collections", "OrderedDict")))


def test_tensor_names_follow_nested_state_dicts_and_modules() -> None:
    params = call(glob("collections", "OrderedDict")) + MARK + text("weight") + _tensor("7") + \
        SETITEMS
    module_state = EMPTY_DICT + MARK + text("_parameters") + params + SETITEMS
    layer = glob("torch.nn", "Linear") + tup() + REDUCE + module_state + BUILD
    modules = call(glob("collections", "OrderedDict")) + MARK + text("fc") + layer + SETITEMS
    top = EMPTY_DICT + MARK + text("model") + EMPTY_DICT + MARK + text("_modules") + modules + \
        SETITEMS + SETITEMS
    output = run(proto(2) + top + STOP)
    tensor = one(output, "torch.tensor")
    assert (tensor["name"], tensor["storage_dtype"]) == ("model.fc.weight", "float16")


def test_tensor_without_a_key_is_named_by_offset() -> None:
    output = run(proto(2) + _tensor("0") + STOP)
    assert str(one(output, "torch.tensor")["name"]).startswith("tensor@")


def test_nested_pickle_becomes_a_child() -> None:
    inner = os_system_p2(CANARY)
    output = run(proto(3) + call(glob("pickle", "loads"), binbytes(inner)) + STOP,
                 chain=("outer.pkl",))
    nested = one(output, "pickle.nested")
    assert (nested["callee"], nested["size"]) == ("pickle.loads", len(inner))
    (child,) = output.children
    assert child.chain == ("outer.pkl", f"<nested pickle @{nested['offset']}>")
    assert child.format_hint == "pickle"
    assert child.source.read(0, child.source.size) == inner


def test_nested_depth_is_bounded() -> None:
    chain = ("a.pkl", "<nested pickle @1>", "<nested pickle @2>")
    output = run(proto(3) + call(glob("pickle", "loads"), binbytes(b"N.")) + STOP, chain=chain,
                 max_nested_pickle_depth=2)
    assert not output.children
    assert one(output, "limit.hit")["limit"] == "nested pickle depth"


def test_limits_become_facts() -> None:
    data = pickle.dumps(list(range(1000)), protocol=2)
    exact = {"scale_pickle_limits": False}  # the counts as exact caps, not scaled floors
    assert one(run(data, max_pickle_opcodes=50, **exact), "limit.hit")["limit"] == \
        "pickle opcodes"
    memo = pickle.dumps([str(i) for i in range(50)], protocol=4)
    assert one(run(memo, max_pickle_memo=10, **exact), "limit.hit")["limit"] == "pickle memo"
    deep = proto(2) + b"K\x01" * 3000 + STOP  # the bound is checked every 1024 opcodes
    assert one(run(deep, max_pickle_stack=20), "limit.hit")["limit"] == "pickle stack"
    nested = b"(" * 30 + b"N."
    assert one(run(nested, max_pickle_nesting=10), "limit.hit")["limit"] == "pickle nesting"
    many = pickle.dumps(1, protocol=2) * 5
    assert one(run(many, max_pickles_per_stream=3), "limit.hit")["limit"] == \
        "pickles per stream"


def test_limit_keeps_facts_found_before_it() -> None:
    stream = os_system_p2(CANARY)[:-1] + b"K\x01" * 100 + STOP
    output = run(stream, max_pickle_opcodes=20, scale_pickle_limits=False)
    assert one(output, "pickle.import")["qualname"] == "os.system"
    assert one(output, "limit.hit")["limit"] == "pickle opcodes"


def test_member_artifacts_and_files(tmp_path: Path) -> None:
    path = tmp_path / "data.pkl"
    path.write_bytes(b"junk" + os_system_p2(CANARY))
    member = Artifact(("model.pt", "archive/data.pkl"), FileSource(str(path), 4))
    output = parse(member, ParseContext())
    fact = next(output.of_kind("pickle.import"))
    assert fact.location.chain == ("model.pt", "archive/data.pkl") and fact.attrs["offset"] == 2


def test_extension_and_divergence_facts() -> None:
    ext = one(run(proto(2) + b"\x82\x05" + STOP), "pickle.extension")
    assert (ext["code"], ext["opcode"]) == (5, "EXT1")
    crossing = proto(4) + b"\x95\x02\x00\x00\x00\x00\x00\x00\x00" + text("abc") + STOP
    assert "FRAME" in str(one(run(crossing), "pickle.divergence")["detail"])
    output = run(proto(2) + binunicode("a") + STOP)
    assert not list(output.of_kind("pickle.divergence"))


def test_decompiled_view_is_evidence_for_suspect_imports() -> None:
    output = run(pickle.dumps([1], protocol=2) + os_system_p2(CANARY))
    view = str(one(output, "pickle.import")["decompiled"])
    assert "from os import system" in view
    benign = run(proto(2) + call(glob("collections", "OrderedDict")) + STOP)
    assert "decompiled" not in one(benign, "pickle.import")


def test_decompiled_view_is_bounded() -> None:
    big = proto(2) + call(glob("os", "system"), binunicode("x" * 70_000)) + STOP
    assert str(one(run(big), "pickle.import")["decompiled"]).startswith("unavailable")


def test_import_records_are_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ckptguard.formats.pickle import interpreter

    monkeypatch.setattr(interpreter, "MAX_IMPORTS", 5)
    stream = proto(2) + (glob("collections", "OrderedDict") + b"0") * 10 + b"N" + STOP
    output = run(stream)
    assert one(output, "limit.hit")["limit"] == "pickle imports"
    assert len(list(output.of_kind("pickle.import"))) == 5


def test_legacy_torch_tensor_bytes_are_file_slices(tmp_path: Path) -> None:
    import struct as _struct

    path = tmp_path / "legacy.pt"
    path.write_bytes(torch_legacy(CANARY))
    artifact = Artifact(("legacy.pt",), FileSource(str(path)))
    output = parse(artifact, ParseContext(want_tensors=True))
    refs = {ref.name: ref for ref in output.tensors}
    assert set(refs) == {"layer1.weight", "layer1.bias"}
    weight = refs["layer1.weight"]
    assert (weight.dtype, weight.shape) == ("float32", (2, 2))
    assert isinstance(weight.source, FileSource)
    assert _struct.unpack("<4f", weight.source.read(0, 16)) == (1.0, 2.0, 3.0, 4.0)
    assert not parse(artifact, ParseContext()).tensors


def test_pickle_limits_scale_with_the_stream() -> None:
    """Counts are floors that grow with the stream (one opcode per byte at most, memo entries
    within the memory budget): a large plain-data pickle parses instead of failing closed."""
    rows = pickle.dumps([(str(i), i) for i in range(3000)], protocol=4)
    scaled = run(rows, max_pickle_opcodes=100, max_pickle_memo=100)
    assert not list(scaled.of_kind("limit.hit")) and not list(scaled.of_kind("parse.error"))
    exact = run(rows, max_pickle_memo=100, scale_pickle_limits=False)
    assert one(exact, "limit.hit")["limit"] == "pickle memo"


def test_pickle_memo_stays_within_the_memory_budget() -> None:
    from ckptguard.limits import MEMO_ENTRY_BYTES

    rows = pickle.dumps([str(i) for i in range(3000)], protocol=4)
    capped = run(rows, max_pickle_memo=100, pickle_memory_budget=500 * MEMO_ENTRY_BYTES)
    hit = one(capped, "limit.hit")
    assert hit["limit"] == "pickle memo" and hit["value"] == 500


def test_protocol_0_strings_longer_than_a_megabyte_parse() -> None:
    big = "x" * (3 * 1024 * 1024)
    output = run(pickle.dumps({"vocab": big}, protocol=0))
    assert not list(output.of_kind("parse.error")) and not list(output.of_kind("limit.hit"))
    assert one(output, "pickle.stream")["pickles"] == 1
