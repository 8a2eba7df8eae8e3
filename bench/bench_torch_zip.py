"""How long ckptguard takes on large PyTorch-style zips: a checkpoint must cost its directory and
its pickle, not its weights.

Run from the repository root:

    python bench/bench_torch_zip.py            # 1 GB, 10 GB (sparse) and 20,000 small tensors
    python bench/bench_torch_zip.py --quick    # 1 GB and 2,000 small tensors only

The files are written by hand (STORED members, ZIP64 records past 4 GiB) with a realistic
``data.pkl`` (a protocol-2 pickle of an OrderedDict of ``torch._utils._rebuild_tensor_v2`` calls
with persistent storage ids); the storage records are sparse (holes on disk), and their CRCs are
left at zero since neither the baseline nor ckptguard reads them.  Baselines measured in the same
run: reading the central directory with Python's ``zipfile``, ``ckptguard --version`` as a
process (interpreter + CLI start-up), and every installed peer scanner on the same file
(bench/peers.py; ``python bench/peers.py --install``): the ``vs peer`` column is ckptguard's
CLI time over the fastest peer's that scanned the file (below 1 is faster); peers that refused
it are named with their reason.
Files go to bench/out/ and are deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
GiB = 1 << 30


def _unicode(text: str) -> bytes:
    raw = text.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _int(value: int) -> bytes:
    return b"J" + struct.pack("<i", value)


class _Memo:
    """BINPUT/BINGET bookkeeping for globals used many times."""

    def __init__(self) -> None:
        self.slots: dict[bytes, int] = {}

    def global_(self, module: str, name: str) -> bytes:
        key = f"{module}\n{name}\n".encode()
        if key in self.slots:
            return b"j" + struct.pack("<I", self.slots[key])  # LONG_BINGET
        self.slots[key] = len(self.slots)
        return b"c" + key + b"r" + struct.pack("<I", self.slots[key])  # GLOBAL, LONG_BINPUT


def state_dict_pickle(tensors: list[tuple[str, int]]) -> bytes:
    """data.pkl for float32 vectors (name, numel), storage keys "0", "1", ... in order."""
    memo = _Memo()
    body = [b"\x80\x02", memo.global_("collections", "OrderedDict"), b")R", b"("]
    for key, (name, numel) in enumerate(tensors):
        storage = b"(" + _unicode("storage") + memo.global_("torch", "FloatStorage") + \
            _unicode(str(key)) + _unicode("cpu") + _int(numel) + b"tQ"
        args = b"(" + storage + _int(0) + b"(" + _int(numel) + b"t" + b"(" + _int(1) + b"t" + \
            b"\x89" + memo.global_("collections", "OrderedDict") + b")R" + b"t"
        body += [_unicode(name), memo.global_("torch._utils", "_rebuild_tensor_v2"), args, b"R"]
    body.append(b"u.")
    return b"".join(body)


class ZipWriter:
    """A minimal STORED zip writer that can leave member data as holes (sparse files)."""

    def __init__(self, path: Path) -> None:
        self.handle = path.open("wb")
        self.central: list[bytes] = []

    def add(self, name: str, data: bytes | None = None, size: int = 0) -> None:
        raw = name.encode()
        size = len(data) if data is not None else size
        crc = zlib.crc32(data) if data is not None else 0
        offset = self.handle.tell()
        big = size >= 0xFFFFFFFF or offset >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, size) if big else b""
        shown = 0xFFFFFFFF if big else size
        self.handle.write(struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0x800, 0, 0, 0, crc,
                                      shown, shown, len(raw), len(extra)) + raw + extra)
        if data is not None:
            self.handle.write(data)
        else:
            self.handle.seek(size, 1)
        cextra = struct.pack("<HHQQQ", 1, 24, size, size, offset) if big else b""
        self.central.append(struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0x800, 0, 0, 0, crc, shown, shown,
            len(raw), len(cextra), 0, 0, 0, 0, 0xFFFFFFFF if big else offset) + raw + cextra)

    def close(self) -> None:
        start = self.handle.tell()
        for record in self.central:
            self.handle.write(record)
        size = self.handle.tell() - start
        count = len(self.central)
        if start >= 0xFFFFFFFF or count >= 0xFFFF:
            end64 = self.handle.tell()
            self.handle.write(struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, count,
                                          count, size, start))
            self.handle.write(struct.pack("<4sIQI", b"PK\x06\x07", 0, end64, 1))
        self.handle.write(struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, min(count, 0xFFFF),
                                      min(count, 0xFFFF), min(size, 0xFFFFFFFF),
                                      min(start, 0xFFFFFFFF), 0))
        self.handle.close()


def torch_zip(path: Path, sizes: Iterable[int]) -> Path:
    """A torch.save-style zip of float32 tensors with the given byte sizes."""
    tensors = [(f"layers.{i}.weight", size // 4) for i, size in enumerate(sizes)]
    writer = ZipWriter(path)
    writer.add("archive/data.pkl", state_dict_pickle(tensors))
    writer.add("archive/byteorder", b"little")
    for key, (_, numel) in enumerate(tensors):
        writer.add(f"archive/data/{key}", size=numel * 4)
    writer.add("archive/version", b"3\n")
    writer.add("archive/.data/serialization_id", b"0" * 40)
    writer.close()
    return path


def best_of(runs: int, action: Callable[[], object]) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def _zipfile_directory(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        archive.namelist()


def _zip_parse(path: Path) -> None:
    from ckptguard.facts import Artifact
    from ckptguard.formats import ParseContext
    from ckptguard.formats.zipfmt.parser import parse
    from ckptguard.source import FileSource

    parse(Artifact((path.name,), FileSource(str(path))), ParseContext())


def _cli(*args: str) -> None:
    # From compiled bytecode, as an installed package (and every peer, see peers.timed) runs.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-m", "ckptguard.cli", *args], check=False, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="skip the 10 GB file")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    options = parser.parse_args()
    from peers import table, time_peers, versus

    from ckptguard import Config, scan

    OUT.mkdir(parents=True, exist_ok=True)
    small = 2_000 if options.quick else 20_000
    cases = [("1 GB, 8 tensors", [GiB // 8] * 8)]
    if not options.quick:
        cases.append(("10 GB, 10 tensors", [GiB] * 10))
    cases.append((f"{small} tensors of 10 KB", [10_240] * small))
    startup = best_of(3, lambda: _cli("--version"))
    rows = []
    try:
        for label, sizes in cases:
            path = torch_zip(OUT / f"bench_{len(sizes)}_{sum(sizes)}.pt", sizes)
            directory = best_of(3, lambda p=path: _zipfile_directory(p))  # type: ignore[misc]
            container = best_of(3, lambda p=path: _zip_parse(p))  # type: ignore[misc]
            result = scan([path], Config())
            in_process = best_of(3, lambda p=path: scan([p], Config()))  # type: ignore[misc]
            cli = best_of(2, lambda p=path: _cli("scan", str(p)))  # type: ignore[misc]
            peer = time_peers(path)
            rows.append((label, path.stat().st_size / GiB, len(sizes) + 5, directory,
                         container, in_process, cli, cli - startup, len(result.findings), peer))
            path.unlink()
    finally:
        shutil.rmtree(OUT, ignore_errors=True)
    print(f"ckptguard --version (process start-up): {startup:.3f} s")
    print(f"{'file':<26}{'GiB':>7}{'members':>9}{'zipfile dir':>13}{'zip parse':>11}"
          f"{'scan()':>9}{'CLI scan':>10}{'CLI-startup':>13}{'findings':>10}  vs peer")
    for label, gib, members, directory, container, in_process, cli, over, findings, peer in rows:
        print(f"{label:<26}{gib:>7.2f}{members:>9}{directory:>12.3f}s{container:>10.3f}s"
              f"{in_process:>8.3f}s{cli:>9.3f}s{over:>12.3f}s{findings:>10}  {versus(cli, peer)}")
        for line in table(peer):
            print(line)
    print("zip parse = ckptguard's zip reader and routing alone; scan() adds the pickle engine "
          "on data.pkl and rule evaluation")


if __name__ == "__main__":
    main()
