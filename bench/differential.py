"""Differential harness: build containers (bench/structures.py) and compare what ckptguard reads
with what the real readers read.

    python bench/differential.py [--minutes 3] [--seed 1] [--only zip,tar,pickle]
                                 [--out bench/out/differential]

* zip: the member names of Python's ``zipfile``, of Info-ZIP (``zipinfo -1``, when installed)
  and of torch's reader (``PyTorchFileReader``, names below the archive root) must be among the
  names of the central directories ckptguard judges (the loaders' one and every other
  candidate), unless ckptguard fails closed on the archive (a parse error).
* tar: ``tarfile.getmembers()`` (name, data offset, size) must equal ckptguard's member list
  whenever both read the archive.
* pickle: every global the C unpickler imports (tests/pickle_oracle.py: inert stubs, in a
  limited child; in-memory and file readings) must be among ckptguard's ``pickle.import``
  facts, in the stream or its ``<read from a file>`` reading.

Only listing and stub-unpickling happen: nothing generated is loaded.  Prints executions,
agreements, fail-closed cases and disagreements per format; saves each disagreement to --out.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import signal
import sys
import tarfile
import tempfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.structures import random_pickle, random_tar, random_zip  # noqa: E402


def ckptguard_zip_names(data: bytes) -> tuple[set[str], set[str], bool] | None:
    """(names, names below each directory's torch root, whether readers could disagree: CON012)
    over every directory ckptguard judges; None when it reports the archive unreadable."""
    from ckptguard.formats.zipfmt.endrecords import examine
    from ckptguard.formats.zipfmt.reader import ZipError, read_directory
    from ckptguard.source import MemorySource

    source = MemorySource(data)
    try:
        primary = read_directory(source, max_entries=100_000, max_bytes=1 << 26)
    except ZipError:
        return None
    found = examine(source, primary, max_entries=100_000, max_bytes=1 << 26)
    others = found.alternates
    names: set[str] = set()
    below_root: set[str] = set()
    for directory in (primary, *others):
        # zipfile cuts names at a NUL byte (CON001/CON005 report such names).
        entries = [e.name.split("\x00", 1)[0] for e in directory.entries]
        names.update(entries)
        root = entries[0].split("/", 1)[0] + "/" if entries and "/" in entries[0] else ""
        below_root.update(n[len(root):] for n in entries if root and n.startswith(root))
    return names, below_root, bool(found.reasons)


def check_zip(data: bytes) -> str:
    mine = ckptguard_zip_names(data)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            theirs: set[str] | None = set(archive.namelist())
    except Exception:  # noqa: BLE001 - the reader refuses the file
        theirs = None
    torch_names: set[str] | None = None
    with contextlib.suppress(ImportError):
        import torch

        with tempfile.NamedTemporaryFile(suffix=".pt") as handle:
            handle.write(data)
            handle.flush()
            try:
                torch_names = set(torch._C.PyTorchFileReader(handle.name).get_all_records())
            except Exception:  # noqa: BLE001 - torch refuses the file
                torch_names = None
    unzip_names = _unzip_names(data)
    if mine is None:
        return "fail-closed" if theirs is not None or torch_names is not None else "agree"
    names, below_root, ambiguous = mine
    # Where ckptguard reports that readers could disagree (CON012, at the gate), a member it
    # could not read in another candidate directory is a fail-closed case, not a silent miss.
    verdict = "fail-closed" if ambiguous else "disagree"
    if theirs is not None and not theirs <= names:
        return f"{verdict}: zipfile lists {sorted(theirs - names)} that ckptguard never judged"
    if unzip_names is not None and not unzip_names <= names | {n.rstrip("/") for n in names}:
        return f"{verdict}: unzip lists {sorted(unzip_names - names)[:5]}"
    if torch_names is not None and not torch_names <= below_root | names:
        return f"{verdict}: torch lists {sorted(torch_names - below_root - names)}"
    return "agree"


def _unzip_names(data: bytes) -> set[str] | None:
    """Info-ZIP's listing (``zipinfo -1``), when it is installed and reads the file."""
    import shutil
    import subprocess

    if shutil.which("zipinfo") is None:
        return None
    with tempfile.NamedTemporaryFile(suffix=".zip") as handle:
        handle.write(data)
        handle.flush()
        done = subprocess.run(["zipinfo", "-1", handle.name], capture_output=True, timeout=20,
                              check=False)
    if done.returncode not in (0, 1):  # 1: warnings (e.g. prepended bytes), still listed
        return None
    # zipinfo shows control characters as ^X and others in its own escapes: only plainly
    # printable names can be compared.
    return {text for line in done.stdout.splitlines()
            if line and (text := line.decode("ascii", "replace")).isprintable()
            and "^" not in text and "\ufffd" not in text}


def check_tar(data: bytes) -> str:
    from ckptguard.formats.tar_reader import TarError, read_members
    from ckptguard.source import MemorySource

    try:
        members, _ = read_members(MemorySource(data), 100_000)
        mine: list[tuple[str, int, int]] | None = [
            (m.name, m.offset, m.real_size if m.sparse is not None else m.size) for m in members]
    except TarError:
        mine = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data)) as archive:
            theirs: list[tuple[str, int, int]] | None = [
                (m.name, m.offset_data, m.size) for m in archive.getmembers()]
    except Exception:  # noqa: BLE001 - tarfile refuses it (or loops: see the caller's limit)
        theirs = None
    if mine is None:
        return "fail-closed" if theirs else "agree"
    if theirs is None or mine == theirs:
        return "agree"
    return f"disagree: tarfile {theirs[:4]} != ckptguard {mine[:4]}"


def check_pickle(data: bytes) -> str:
    from tests.pickle_oracle import run_oracle
    from tests.test_differentials import ckptguard_imports

    oracle = run_oracle(data, pickles=4, timeout=20)
    if oracle is None:
        return "oracle-died"
    loader = set(oracle["memory"].imports) | set(oracle["file"].imports)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stream.pkl"
        path.write_bytes(data)
        mine = ckptguard_imports(path)
    missed = loader - mine
    return f"disagree: the loader imports {sorted(missed)} ckptguard did not see" if missed \
        else "agree"


CHECKS: dict[str, tuple[Callable[[random.Random], bytes], Callable[[bytes], str]]] = {
    "zip": (random_zip, check_zip), "tar": (random_tar, check_tar),
    "pickle": (random_pickle, check_pickle),
}


class _Slow(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise _Slow


def run_check(check: Callable[[bytes], str], data: bytes, seconds: int = 30) -> str:
    """One comparison under a time limit (tarfile loops forever on some archives)."""
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(seconds)
    try:
        return check(data)
    except _Slow:
        return "timeout: a reader did not finish"
    finally:
        signal.alarm(0)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--only", default="zip,tar,pickle")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "differential")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    formats = args.only.split(",")
    deadline = time.monotonic() + args.minutes * 60
    outcomes: dict[str, Counter[str]] = {fmt: Counter() for fmt in formats}
    examples: dict[str, str] = {}
    while time.monotonic() < deadline:
        fmt = rng.choice(formats)
        build, check = CHECKS[fmt]
        data = build(rng)
        verdict = run_check(check, data)
        kind = verdict.split(":", 1)[0]
        outcomes[fmt][kind] += 1
        if kind == "disagree":
            args.out.mkdir(parents=True, exist_ok=True)
            saved = args.out / f"{fmt}-{sum(outcomes[fmt].values())}.bin"
            saved.write_bytes(data)
            examples.setdefault(f"{fmt}: {verdict[:160]}", str(saved))
            print(f"DISAGREE {fmt}: {verdict[:200]} -> {saved}", flush=True)
    for fmt, counts in outcomes.items():
        print(f"{fmt}: {sum(counts.values())} executions, " +
              ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    for example, saved in examples.items():
        print(f"  {example} ({saved})")
    return 1 if any(c["disagree"] for c in outcomes.values()) else 0


if __name__ == "__main__":
    raise SystemExit(main())
