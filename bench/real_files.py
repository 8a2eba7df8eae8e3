"""False alarms on real, published model files (run by hand, not a unit test).

Downloads the pinned PyPI distributions listed in ``bench/real_files_packages.txt`` into
``bench/.cache/`` (gitignored), unpacks each wheel or sdist with bounded, path-checked extraction,
scans the unpacked tree with ``ckptguard.scan`` under the default configuration, and prints per
format: files scanned, files with a finding at or above the default gate (false alarms: these are
published packages), files with a medium finding, and time.  The baseline measured in the same
run is hashing every scanned byte once (what any tool that reads the files must pay).

    python bench/real_files.py                 # download what is missing, scan everything
    python bench/real_files.py --only gensim   # one package
    python bench/real_files.py --offline       # only what is already in the cache
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # this checkout's ckptguard, installed or not (as the others)
PACKAGES = HERE / "real_files_packages.txt"
CACHE = HERE / ".cache"
MAX_MEMBER_BYTES = 512 * 1024**2
MAX_ARCHIVE_BYTES = 2 * 1024**3
MAX_MEMBERS = 100_000
# Sniffed formats that are not model files; they are scanned but not tabulated.
NOT_MODELS = {"json", "markdown", "python", "yaml", "text", "jinja", "unknown", "hf-repo"}


@dataclass(frozen=True)
class Pin:
    name: str
    version: str
    ships: str

    @property
    def spec(self) -> str:
        return f"{self.name}=={self.version}"

    @property
    def stem(self) -> str:
        return f"{self.name.lower().replace('-', '_').replace('.', '_')}-{self.version}"


@dataclass
class Tally:
    files: int = 0
    gate: list[tuple[str, str, str, str]] = field(default_factory=list)  # file, rule, sev, msg
    medium: list[tuple[str, str, str, str]] = field(default_factory=list)
    medium_files: set[str] = field(default_factory=set)
    gate_files: set[str] = field(default_factory=set)
    bytes: int = 0


def read_pins(path: Path) -> list[Pin]:
    pins = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep or not version.strip():
            raise SystemExit(f"{path}: '{raw}' is not a name==version pin")
        pins.append(Pin(name.strip(), version.strip(), comment.strip()))
    return pins


def find_download(pin: Pin, folder: Path) -> Path | None:
    prefix = pin.stem.lower()
    for candidate in sorted(folder.iterdir()) if folder.is_dir() else []:
        name = candidate.name.lower().replace("-", "_", 1)
        if name.startswith(prefix.replace("-", "_", 1)) and \
                candidate.suffix in (".whl", ".gz", ".zip", ".bz2"):
            return candidate
    return None


def download(pin: Pin, folder: Path, offline: bool) -> Path | None:
    found = find_download(pin, folder)
    if found is not None or offline:
        return found
    folder.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d",
               str(folder), pin.spec]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        print(f"  ! {pin.spec}: pip download failed: {done.stderr.strip()[-300:]}")
        return None
    return find_download(pin, folder)


def _safe_target(root: Path, member: str) -> Path | None:
    path = PurePosixPath(member.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or not path.parts:
        return None
    return root.joinpath(*path.parts)


def _copy_bounded(source: object, target: Path, size: int) -> None:
    read = getattr(source, "read")  # noqa: B009 - both zip and tar members are file-like
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out:
        remaining = min(size, MAX_MEMBER_BYTES)
        while remaining > 0:
            chunk = read(min(remaining, 1 << 20))
            if not chunk:
                break
            out.write(chunk)
            remaining -= len(chunk)


def extract(archive: Path, root: Path) -> None:
    """Unpack regular files only, refusing absolute paths, '..', links and oversized members."""
    if (root / ".done").exists():
        return
    total = 0
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as bundle:
            for info in bundle.infolist()[:MAX_MEMBERS]:
                target = _safe_target(root, info.filename)
                if target is None or info.is_dir() or info.file_size > MAX_MEMBER_BYTES:
                    continue
                total += info.file_size
                if total > MAX_ARCHIVE_BYTES:
                    break
                with bundle.open(info) as member:
                    _copy_bounded(member, target, info.file_size)
    else:
        with tarfile.open(archive) as bundle:
            for count, tinfo in enumerate(bundle):
                if count >= MAX_MEMBERS:
                    break
                target = _safe_target(root, tinfo.name)
                if target is None or not tinfo.isreg() or tinfo.size > MAX_MEMBER_BYTES:
                    continue
                total += tinfo.size
                if total > MAX_ARCHIVE_BYTES:
                    break
                handle = bundle.extractfile(tinfo)
                if handle is not None:
                    with handle:
                        _copy_bounded(handle, target, tinfo.size)
    (root / ".done").write_text("ok", encoding="utf-8")


def hash_baseline(files: Iterator[Path]) -> float:
    started = time.perf_counter()
    for path in files:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return time.perf_counter() - started


def scan_tree(pin: Pin, root: Path, tallies: dict[str, Tally]) -> tuple[float, float]:
    from ckptguard import api
    from ckptguard.model import Severity

    started = time.perf_counter()
    result = api.scan([root], root=root)
    elapsed = time.perf_counter() - started
    top_format: dict[str, str] = {}
    for summary in result.artifacts:
        if len(summary.chain) == 1:
            top_format[summary.chain[0]] = summary.format
    model_files = [name for name, fmt in top_format.items() if fmt not in NOT_MODELS]
    for name in model_files:
        tally = tallies[top_format[name]]
        tally.files += 1
        tally.bytes += (root / name).stat().st_size
    for found in result.findings:
        name = found.location.path
        fmt = top_format.get(name, "other")
        tally = tallies[fmt]
        label = f"{pin.name}:{name}"
        if found.severity >= result.fail_on:
            tally.gate.append((f"{pin.name}:{found.location.artifact}", found.rule_id,
                               found.severity.label, found.message))
            tally.gate_files.add(label)
        elif found.severity >= Severity.MEDIUM:
            tally.medium.append((f"{pin.name}:{found.location.artifact}", found.rule_id,
                                 found.severity.label, found.message))
            tally.medium_files.add(label)
    baseline = hash_baseline(root / name for name in model_files)
    return elapsed, baseline


def _listing(title: str, items: list[tuple[str, str, str, str]]) -> None:
    print(f"\n{title}:")
    rules = Counter(rule for _, rule, _, _ in items)
    print("  by rule: " + ", ".join(f"{rule} x{n}" for rule, n in rules.most_common()))
    for where, rule, severity, message in sorted(items):
        print(f"  {where}\n    {rule} [{severity}] {message[:300]}")


def report(tallies: dict[str, Tally], scan_time: float, hash_time: float,
           verbose: bool) -> None:
    print()
    print(f"{'format':<14}{'files':>7}{'MB':>9}{'>=gate':>8}{'medium':>8}")
    for fmt in sorted(tallies, key=lambda f: (-tallies[f].files, f)):
        tally = tallies[fmt]
        print(f"{fmt:<14}{tally.files:>7}{tally.bytes / 1e6:>9.1f}{len(tally.gate_files):>8}"
              f"{len(tally.medium_files):>8}")
    files = sum(t.files for t in tallies.values())
    alarms = sum(len(t.gate_files) for t in tallies.values())
    ratio = scan_time / hash_time if hash_time > 0 else float("inf")
    print(f"{'total':<14}{files:>7}{sum(t.bytes for t in tallies.values()) / 1e6:>9.1f}"
          f"{alarms:>8}{sum(len(t.medium_files) for t in tallies.values()):>8}")
    print(f"\nscan {scan_time:.1f}s for the unpacked trees; hashing the model files once "
          f"{hash_time:.2f}s (ratio {ratio:.1f}x)")
    gates = [item for t in tallies.values() for item in t.gate]
    if gates:
        _listing("findings at or above the default gate (false alarms to fix)", gates)
    mediums = [item for t in tallies.values() for item in t.medium]
    if verbose and mediums:
        _listing("medium findings (below the gate; allowlist candidates)", mediums)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", default=[], help="package name (repeatable)")
    parser.add_argument("--offline", action="store_true", help="use only cached downloads")
    parser.add_argument("--verbose", action="store_true", help="list medium findings too")
    args = parser.parse_args(argv)
    pins = [p for p in read_pins(PACKAGES) if not args.only or p.name in args.only]
    tallies: dict[str, Tally] = defaultdict(Tally)
    scan_time = hash_time = 0.0
    for pin in pins:
        archive = download(pin, CACHE / "dl", args.offline)
        if archive is None:
            print(f"  - {pin.spec}: not available, skipped")
            continue
        root = CACHE / "unpacked" / pin.stem
        extract(archive, root)
        seconds, baseline = scan_tree(pin, root, tallies)
        scan_time += seconds
        hash_time += baseline
        print(f"  {pin.spec:<36} {seconds:6.1f}s  ({pin.ships})")
    report(tallies, scan_time, hash_time, args.verbose)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
