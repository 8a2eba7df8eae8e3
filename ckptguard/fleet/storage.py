"""Files behind URLs: listing through fsspec, and a ByteSource that reads byte ranges.

Local paths stay ``FileSource`` (memory-mapped, ranges for free).  Other filesystems are read
with ranged requests for ``read``; ``view`` (used by parsers that need the whole buffer) fetches
the object once, bounded by the member-size limit."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatch
from typing import Any

from ckptguard.api import ScanError
from ckptguard.source import ByteSource, FileSource

LOCAL_PROTOCOLS = {"file", "local"}


class StorageError(ScanError):
    """A URL that cannot be listed or read: the CLI says so in one line and exits 2."""


@dataclass(frozen=True)
class RemoteFile:
    url: str  # what the user named, joined with the member path: shown in reports
    protocol: str
    path: str  # the path inside its filesystem
    size: int
    content_hash: str | None = None  # a hash the backend already knows (e.g. LFS sha256)
    storage_options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def local(self) -> bool:
        return self.protocol in LOCAL_PROTOCOLS

    def source(self, max_bytes: int) -> ByteSource:
        if self.local:
            return FileSource(self.path)
        return RangeSource(self.url, dict(self.storage_options), self.size, max_bytes)


def _filesystem(url: str, options: Mapping[str, Any]) -> tuple[Any, str]:
    import fsspec.core
    from fsspec.registry import known_implementations

    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(options))
    except ImportError as exc:
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        known = known_implementations.get(protocol, {})
        package = str(known.get("err") or exc)
        raise StorageError(f"{url}: reading {protocol}:// URLs needs a package that is not "
                           f"installed ({package}); e.g. pip install "
                           f"{_PACKAGES.get(protocol, 'the fsspec backend for ' + protocol)}"
                           ) from None
    except ValueError as exc:
        if "Protocol not known" in str(exc):
            raise StorageError(f"{url}: unknown URL scheme (fsspec has no backend for it)"
                               ) from None
        raise
    return fs, path


# The packages of the common fsspec backends, to name in the message when one is missing.
_PACKAGES = {"s3": "s3fs", "s3a": "s3fs", "gs": "gcsfs", "gcs": "gcsfs", "az": "adlfs",
             "abfs": "adlfs", "abfss": "adlfs", "hf": "huggingface_hub", "http": "aiohttp",
             "https": "aiohttp", "sftp": "paramiko", "ssh": "paramiko"}


def _protocol(fs: Any) -> str:
    protocol = fs.protocol
    return str(protocol[0] if isinstance(protocol, (tuple, list)) else protocol)


def _known_hash(info: Mapping[str, Any]) -> str | None:
    lfs = info.get("lfs")
    if isinstance(lfs, Mapping) and isinstance(lfs.get("sha256"), str):
        return f"sha256:{lfs['sha256']}"
    for key in ("sha256", "SHA256", "ChecksumSHA256"):
        if isinstance(info.get(key), str):
            return f"sha256:{info[key]}"
    return None


def _url_for(url: str, root: str, path: str, protocol: str) -> str:
    if path == root:
        return url
    relative = path[len(root):].lstrip("/") if path.startswith(root) else path
    return f"{url.rstrip('/')}/{relative}"


def expand(urls: Iterable[str], *, storage_options: Mapping[str, Any] | None = None,
           excludes: Iterable[str] = (), max_files: int = 1_000_000) -> list[RemoteFile]:
    """Every file under the given URLs (folders walked recursively), sorted by URL."""
    options = dict(storage_options or {})
    patterns = tuple(excludes)
    found: dict[str, RemoteFile] = {}
    for url in urls:
        fs, root = _filesystem(url, options)
        protocol = _protocol(fs)
        if not fs.exists(root):
            raise StorageError(f"{url}: no such file or folder")
        if fs.isdir(root):
            listing = fs.find(root, detail=True)
            entries = sorted(listing.items())
        else:
            entries = [(root, fs.info(root))]
        for path, info in entries:
            if info.get("type") not in (None, "file"):
                continue
            shown = _url_for(url, root, path, protocol)
            if any(fnmatch(shown, p) or fnmatch(shown.rsplit("/", 1)[-1], p) for p in patterns):
                continue
            remote_options = options if protocol not in LOCAL_PROTOCOLS else {}
            found[shown] = RemoteFile(shown, protocol, path, int(info.get("size") or 0),
                                      _known_hash(info), remote_options)
            if len(found) > max_files:
                raise StorageError(f"more than {max_files} files under {url}")
    return [found[key] for key in sorted(found)]


@dataclass(frozen=True)
class RangeSource:
    """A ByteSource over an fsspec URL: ranged reads, whole-object view on demand."""

    url: str
    storage_options: Mapping[str, Any]
    length: int
    max_bytes: int

    @property
    def size(self) -> int:
        return self.length

    def read(self, offset: int, length: int) -> bytes:
        if offset < 0 or length <= 0 or offset >= self.length:
            return b""
        end = min(self.length, offset + length)
        fs, path = _filesystem(self.url, self.storage_options)
        data: bytes = fs.cat_file(path, start=offset, end=end)
        return data

    def view(self) -> memoryview:
        if self.length > self.max_bytes:
            raise StorageError(f"{self.url}: {self.length} bytes is past the limit for "
                               "reading a remote object whole")
        return memoryview(self.read(0, self.length))
