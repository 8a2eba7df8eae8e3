"""HDF5 files: plain HDF5 (``hdf5``) or Keras-2 models (``keras-h5``, a root ``model_config``).

Opened read-only with h5py; only the root attributes Keras writes (``model_config``,
``training_config``, ``keras_version``, ``backend``) are read, each bounded in size before it is
read.  Weights are never touched.  Without h5py the file cannot be examined, and that is a fact
(``hdf5.unexamined``), never a silent pass.
"""

from __future__ import annotations

import io
from typing import Any

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.keras_fmt import analyse_config, decode_json
from ckptguard.model import Location
from ckptguard.source import ByteSource, FileSource, MemorySource

CONFIG_ATTRS = ("model_config", "training_config")
VERSION_ATTRS = ("keras_version", "backend")


class SourceReader(io.RawIOBase):
    """A read-only, seekable file object over a ByteSource (for archive members)."""

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self.source = source
        self.position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.position, io.SEEK_END: self.source.size}
        self.position = max(0, base[whence] + offset)
        return self.position

    def readinto(self, buffer: Any) -> int:
        data = self.source.read(self.position, len(buffer))
        buffer[: len(data)] = data
        self.position += len(data)
        return len(data)


def _open(h5py: Any, source: ByteSource) -> Any:
    if isinstance(source, FileSource) and source.start == 0 and source.length is None:
        return h5py.File(source.path, "r")
    if isinstance(source, MemorySource):
        return h5py.File(io.BytesIO(source.data), "r")
    return h5py.File(SourceReader(source), "r")


def _attribute(h5file: Any, name: str, limit: int, output: ParseOutput,
               where: Location) -> Any:
    import h5py

    if name not in h5file.attrs:
        return None
    attribute = h5py.h5a.open(h5file.id, name.encode())
    size = attribute.get_storage_size()
    # A variable-length string stores only a heap reference in the attribute: its text (bounded
    # by the file's size) is measured after reading.
    variable = attribute.get_type().get_class() == h5py.h5t.STRING and \
        attribute.get_type().is_variable_str()
    value = None if size > limit else h5file.attrs[name]
    if variable and isinstance(value, (str, bytes)):
        size = len(value)
    if size > limit:
        output.add("limit.hit", where.within(key=name), limit="max_header_bytes", value=size,
                   detail=f"HDF5 root attribute {name!r} of {size} bytes was not examined")
        return None
    return value


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if hasattr(value, "tolist"):
        listed = value.tolist()
        return _text(listed) if isinstance(listed, (bytes, str)) else None
    return None


def _raw(text: str) -> bytes:
    """h5py decodes invalid UTF-8 with surrogate escapes: hand the JSON decoder the raw bytes
    (so that invalid text is reported as such), or replacement characters for other lone
    surrogates."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def parse(artifact: Artifact, context: ParseContext) -> ParseOutput:
    output = ParseOutput(format="hdf5")
    where = artifact.location
    try:
        import h5py
    except ImportError:
        output.add("hdf5.unexamined", where, reason="h5py is not installed",
                   detail="install ckptguard[hdf5] (h5py) to examine HDF5 files")
        return output
    try:
        with _open(h5py, artifact.source) as h5file:
            values = {name: _attribute(h5file, name, context.limits.max_header_bytes, output,
                                       where) for name in (*CONFIG_ATTRS, *VERSION_ATTRS)}
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, OverflowError) as exc:
        output.add("parse.error", where, format="hdf5",
                   error=f"not a readable HDF5 file: {exc}"[:300], offset=None,
                   read=artifact.source.size)
        return output
    versions = {name: _text(values[name]) for name in VERSION_ATTRS}
    if any(versions.values()):
        output.add("keras.version", where, keras_version=versions["keras_version"] or "",
                   backend=versions["backend"] or "", source="hdf5 root attributes")
    for name in CONFIG_ATTRS:
        text = _text(values[name])
        if values[name] is not None and text is None:
            output.add("parse.error", where.within(key=name), format="keras-h5",
                       error=f"root attribute {name!r} is not text", offset=None, read=0)
            continue
        if text is None:
            continue
        if name == "model_config":
            output.format = "keras-h5"
        data = decode_json(_raw(text), output, where.within(key=name), "keras-h5")
        if data is not None:
            analyse_config(data, output, where.within(key=name), name)
    return output
