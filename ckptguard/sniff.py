"""Decide an artifact's format from its content.  The extension is only a hint, used to notice a
file whose content disagrees with its name and to pick between formats with no magic bytes."""

from __future__ import annotations

import posixpath
import re
import struct
from dataclasses import dataclass

from ckptguard.facts import Artifact

PICKLE_PROTOCOL_OPS = {0x80}
# Opcodes a protocol 0/1 pickle may plausibly begin with.
PICKLE_START_OPS = set(b"(]})lNIFLSVcdGJKMUTXBCXq\x8c\x95")

EXTENSION_FORMATS: dict[str, str] = {
    ".pkl": "pickle", ".pickle": "pickle", ".pt": "pytorch", ".pth": "pytorch",
    ".bin": "pytorch", ".ckpt": "pytorch", ".joblib": "joblib", ".jbl": "joblib",
    ".dill": "pickle", ".npy": "numpy", ".npz": "npz", ".safetensors": "safetensors",
    ".gguf": "gguf", ".onnx": "onnx", ".keras": "keras", ".h5": "hdf5", ".hdf5": "hdf5",
    ".pb": "savedmodel", ".tflite": "tflite", ".zip": "zip", ".tar": "tar", ".gz": "gzip",
    ".tgz": "gzip", ".xz": "xz", ".bz2": "bz2", ".7z": "7z", ".mar": "zip", ".nemo": "tar",
    ".lz4": "lz4", ".zst": "zstd", ".zstd": "zstd",
}
# Extensions a loader would hand to a pickle-based loader: unrecognised content there is suspect.
# numpy.load(allow_pickle=True) unpickles a .npy/.npz whose content has neither magic.
PICKLE_LOADER_EXTENSIONS = {".pkl", ".pickle", ".pt", ".pth", ".ckpt", ".joblib", ".jbl",
                            ".dill", ".bin", ".model", ".pck", ".sav", ".npy", ".npz"}
# Protobuf formats that are not ONNX but can start with the same field tags (CoreML, Caffe,
# TensorFlow records): their content alone would pass for an ONNX model.
OTHER_PROTOBUF = {".mlmodel", ".caffemodel", ".tfrecord", ".pbtxt", ".prototxt"}
TEXT_FORMATS = {".json": "json", ".md": "markdown", ".py": "python", ".yaml": "yaml",
                ".yml": "yaml", ".txt": "text", ".jinja": "jinja", ".j2": "jinja"}


@dataclass(frozen=True)
class Sniffed:
    format: str  # what the content is ("unknown" when nothing matched)
    expected: str | None  # what the extension suggests, if anything
    also: tuple[str, ...] = ()  # further formats the same bytes parse as (polyglots)

    @property
    def mismatched(self) -> bool:
        return self.expected is not None and not compatible(self.expected, self.format)


# Content formats a given extension may legitimately hold.
_COMPATIBLE = {
    "pytorch": {"pickle", "zip", "tar", "pytorch-zip", "torchscript", "torch-legacy", "torch-tar",
                "safetensors"},
    # joblib.dump(obj, "model.pkl", compress=...) writes a compressed stream under a .pkl name.
    "pickle": {"pickle", "torch-legacy", "joblib", "zlib", "gzip", "bz2", "xz", "lzma", "lz4",
               "zstd"},
    "joblib": {"pickle", "joblib", "gzip", "bz2", "xz", "lzma", "zlib", "lz4", "zstd"},
    "keras": {"zip", "keras"},
    "hdf5": {"hdf5"},
    "npz": {"zip"},
    "savedmodel": {"savedmodel", "protobuf"},
    "gzip": {"gzip"},
    "zip": {"zip"},
    "tar": {"tar"},
}


def compatible(expected: str, actual: str) -> bool:
    return actual == expected or actual in _COMPATIBLE.get(expected, set())


def extension_of(name: str) -> str:
    return posixpath.splitext(name.lower())[1]


TEXT_GLOBAL = re.compile(rb"c[A-Za-z_][A-Za-z0-9_.]*\n[A-Za-z_][A-Za-z0-9_.]*\n")


def _looks_like_pickle(head: bytes, loader_extension: bool = False) -> bool:
    if len(head) >= 2 and head[0] == 0x80:
        return 2 <= head[1] <= 5 or (head[1] <= 1 and len(head) > 2)
    if not head or head[0] not in PICKLE_START_OPS:
        return False
    # Protocol 0/1: a text global "c<module>\n<name>\n", or a container/marker opcode followed
    # by something printable.  Confirmed (or refuted) by the pickle parser itself.  Under a name
    # a pickle loader would open, any printable first line is enough (fail closed); elsewhere
    # the global must look like one, so that a text file starting with "c" is not a pickle.
    if head[0] == ord("c"):
        if TEXT_GLOBAL.match(head):
            return True
        line = head[1:].split(b"\n", 2)
        return loader_extension and len(line) >= 3 and line[0] != b"" and \
            all(32 < b < 127 for b in line[0])
    return head[:1] in (b"(", b"]", b"}", b")") and len(head) > 1 and head[1] in PICKLE_START_OPS \
        | {ord("d"), ord("l"), ord("t"), ord("p"), ord("."), ord("I"), ord("S"), ord("V")}


def _protocol_then_no_opcode(head: bytes) -> bool:
    """PROTO followed by a byte that is no opcode: the loader's first error, nothing before it."""
    return len(head) > 2 and head[0] == 0x80 and not _is_opcode(head[2])


def _reads_as_pickle(head: bytes) -> bool:
    """The opcode probe: catches pickles that begin with an unusual opcode, and pickles hidden
    behind another format's magic bytes (a polyglot)."""
    from ckptguard.formats.pickle.probe import reads_as_pickle

    return reads_as_pickle(head)


def _looks_like_safetensors(head: bytes, size: int, ext: str = "") -> bool:
    if len(head) < 9:
        return False
    (length,) = struct.unpack("<Q", head[:8])
    # Under a .safetensors name a header length past the end is the parser's to report.
    return head[8:9] == b"{" and length >= 2 and (length <= size - 8 or ext == ".safetensors")


def _looks_like_onnx(head: bytes) -> bool:
    # ModelProto starts with ir_version (field 1, varint), then a string/message field.
    # Next field: producer_name..graph (2-7), opset_import (8), metadata_props (14),
    # training_info (20), functions (25).
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] <= 20 and \
        head[2] in (0x12, 0x1A, 0x22, 0x28, 0x32, 0x3A, 0x42, 0x72, 0xA2, 0xCA)


def _keras_json(head: bytes) -> str | None:
    """A Keras model config (``model.to_json()`` or an unpacked ``.keras``'s config.json) or its
    metadata.json, recognised by the keys Keras writes first."""
    text = head.lstrip()
    if text.startswith((b'{"module": "keras', b'{"class_name": ')):
        return "keras-config"
    if text.startswith(b'{"keras_version": '):
        return "keras-metadata"
    return None


def magic_format(head: bytes, size: int, name: str) -> list[str]:
    """Every format whose signature is at the start of ``head`` (most specific first)."""
    found: list[str] = []
    ext = extension_of(name)
    base = posixpath.basename(name.lower())
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        found.append("zip")
    if head.startswith(b"\x93NUMPY"):
        found.append("numpy")
    if head.startswith(b"GGUF"):
        found.append("gguf")
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        found.append("hdf5")
    if head[4:8] == b"TFL3":
        found.append("tflite")
    if len(head) > 262 and head[257:262] == b"ustar":
        found.append("tar")
    if head.startswith(b"\x1f\x8b"):
        found.append("gzip")
    if head.startswith(b"BZh") and len(head) > 3 and head[3:4].isdigit():
        found.append("bz2")
    if head.startswith(b"\xfd7zXZ\x00"):
        found.append("xz")
    if head.startswith(b"ZF0x") or (len(head) > 1 and head[0] == 0x78 and
                                   head[1] in (0x01, 0x5E, 0x9C, 0xDA)):
        found.append("zlib")
    if head.startswith(b"]\x00\x00"):
        found.append("lzma")
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        found.append("7z")
    if head.startswith(b"Rar!\x1a\x07"):
        found.append("rar")
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        found.append("zstd")
    if head.startswith(b"\x04\x22\x4d\x18"):
        found.append("lz4")
    if _looks_like_safetensors(head, size, ext):
        found.append("safetensors")
    marker = _looks_like_pickle(head, ext in PICKLE_LOADER_EXTENSIONS)
    if marker and found and _protocol_then_no_opcode(head):
        # A safetensors header length of 0x80 + 256 * k (k <= 5: 128, 384 .. 1408 bytes, common
        # in small models) begins like a protocol marker, but a pickle loader stops at the
        # third byte (no opcode), before importing or calling anything: no polyglot.
        marker = False
    if marker or (ext not in TEXT_FORMATS and _reads_as_pickle(head)):
        found.append("pickle")
    if base in ("saved_model.pb", "keras_metadata.pb", "saved_model.pbtxt") or ext == ".pb":
        if head[:1] in (b"\x08", b"\x12", b"\x0a"):
            found.append("savedmodel")
    elif _looks_like_onnx(head) and ext not in TEXT_FORMATS and ext not in OTHER_PROTOBUF:
        found.append("onnx")
    if not found and ext == ".json":
        keras = _keras_json(head)
        if keras is not None:
            found.append(keras)
    if not found and ext in TEXT_FORMATS:
        found.append(TEXT_FORMATS[ext])
    if not found and ext in (".safetensors", ".gguf", ".tflite") and size > 0 \
            and not head.startswith(b"version https://git-lfs"):  # an LFS pointer is no model
        found.append(ext[1:])  # no known signature: let the parser report what is wrong
    if not found and ext == ".onnx" and size > 0:
        found.append("onnx")  # protobuf has no magic: let the ONNX parser judge (fail closed)
    return found


def _is_opcode(code: int) -> bool:
    from ckptguard.formats.pickle.reader import ARG_READERS

    return ARG_READERS[code] is not None


MAX_PROBE_BYTES = 16 << 20  # how far the sniffer reads to get past a long first argument


def _head(artifact: Artifact, ext: str) -> bytes:
    """The bytes to sniff: SNIFF_BYTES, or more when a pickle's first opcodes carry an argument
    longer than that (a loader reads it whatever its length)."""
    size = artifact.source.size
    head = artifact.source.read(0, SNIFF_BYTES)
    if ext in TEXT_FORMATS:
        return head
    from ckptguard.formats.pickle.probe import probe

    while len(head) < min(size, MAX_PROBE_BYTES):
        verdict = probe(head, at_end=len(head) >= size)
        if isinstance(verdict, bool) or (verdict is not None and verdict > size):
            break  # decided, or an argument longer than the file: the load fails there
        wanted = len(head) * 16 if verdict is None else max(verdict, len(head) * 2)
        head = artifact.source.read(0, min(wanted, MAX_PROBE_BYTES))
    return head


SNIFF_BYTES = 4096


def sniff(artifact: Artifact) -> Sniffed:
    ext = extension_of(artifact.name)
    expected = EXTENSION_FORMATS.get(ext)
    if artifact.format_hint is not None:
        return Sniffed(artifact.format_hint, None)
    size = artifact.source.size
    head = _head(artifact, ext)
    found = magic_format(head, size, artifact.name)
    if "zip" not in found:
        from ckptguard.formats.zipfmt.reader import has_end_record

        if has_end_record(artifact.source):  # a zip after other bytes: a polyglot, or a prefix
            found.append("zip")
    if not found and not _reads_as_pickle(head):
        from ckptguard.formats.known_data import identify

        # A data format of its own (fastText, word2vec, IDL, Core ML) that no unpickler can
        # read either: named, so that there is no extension to disagree with.
        data = identify(head, "/".join(artifact.chain))
        if data is not None:
            return Sniffed(data, None)
    if not found and ext in PICKLE_LOADER_EXTENSIONS and head and _is_opcode(head[0]):
        # A loader unpickles whatever it is handed: content that begins with an opcode is read
        # as the pickle it would be (the parser reports where it stops making sense).
        found.append("pickle")
    if not found:
        return Sniffed("unknown", expected)
    return Sniffed(found[0], expected, tuple(found[1:]))
