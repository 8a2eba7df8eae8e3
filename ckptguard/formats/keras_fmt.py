"""Keras model configs: ``config.json`` of a ``.keras`` zip (format ``keras-config``), and the
``model_config`` / ``training_config`` JSON of Keras-2 HDF5 files (via ``keras_h5``).

The config is walked as plain JSON, depth- and size-bounded; nothing is deserialised by Keras.
Lambda layers carry marshalled Python bytecode that runs on load: the bytes are base64-decoded
only to list the printable names they contain, never unmarshalled.  Objects whose ``module``,
``registered_name`` or ``class_name`` point outside Keras/TensorFlow are custom code the loader
imports.

``TorchModuleWrapper`` layers carry a base64 torch archive the loader ``torch.load``s: it is
decoded and scanned as a child artifact; serialized functions naming Keras API functions are
stated so that loaders and safety switches can be judged (see ``keras_embedded``).

Facts: ``keras.model``, ``keras.lambda``, ``keras.custom_object``, ``keras.version``,
``keras.torch_module``, ``keras.function_ref``, ``parse.error``, ``limit.hit``.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.formats import ParseContext
from ckptguard.formats.keras_embedded import (
    function_reference,
    is_torch_wrapper,
    safe_mode_argument,
    torch_wrapper,
)
from ckptguard.limits import DEFAULT_LIMITS, Limits
from ckptguard.model import Location

# Packages maintained by the Keras/TensorFlow teams: importing them runs no publisher code.
KERAS_ROOTS = frozenset({"keras", "tensorflow", "tf_keras", "keras_core", "keras_hub", "keras_nlp",
                         "keras_cv", "tensorflow_addons", "tensorflow_hub"})
MAX_DEPTH = 64
MAX_NODES = 2_000_000
MAX_FACTS = 1_000
MAX_CODE_BYTES = 1024**2  # bytecode decoded to look for names
NAME_RUN = re.compile(rb"[\x20-\x7e]{3,200}")


@dataclass
class _Walk:
    output: ParseOutput
    where: Location
    artifact: Artifact | None = None  # where decoded embedded archives are attached as children
    limits: Limits = DEFAULT_LIMITS
    nodes: int = 0
    facts: int = 0
    limited: set[str] = field(default_factory=set)

    def add(self, kind: str, path: str, **attrs: Any) -> None:
        if self.facts >= MAX_FACTS:
            self.limited.add("facts")
            return
        self.facts += 1
        self.output.add(kind, self.where.within(key=path), path=path, **attrs)


# Marshal's string records: a type byte (``FLAG_REF`` 0x80 may be set), a length, the bytes.
# ``z``/``Z``: short ASCII (1-byte length); ``a``/``A``/``u``/``t``/``s``: 4-byte length.
_SHORT_STRINGS = frozenset(b"zZ")
_LONG_STRINGS = frozenset(b"aAuts")
_WHITESPACE = re.compile(r"\s+")


def bytecode_names(encoded: str, limit: int = 24) -> tuple[str, tuple[str, ...], int]:
    """``(encoding, printable strings, size)`` of a marshalled code object stored as base64
    (Keras 3 and tf.keras, with or without line breaks) or latin-1 text (old Keras).

    The strings are read from marshal's string records (names, constants, the file name), not
    by running or unmarshalling anything; bytes that hold no such record fall back to runs of
    printable characters."""
    text = encoded[: MAX_CODE_BYTES * 2]
    try:
        raw = base64.b64decode(_WHITESPACE.sub("", text).encode("ascii"), validate=True)
        encoding = "base64"
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = text.encode("latin-1", "replace")
        encoding = "latin-1"
    raw = raw[:MAX_CODE_BYTES]
    found: list[str] = []
    for value in marshal_strings(raw) or [r.decode("ascii") for r in NAME_RUN.findall(raw)]:
        if value not in found:
            found.append(value)
        if len(found) >= limit:
            break
    return encoding, tuple(found), len(raw)


def marshal_strings(raw: bytes, minimum: int = 2) -> list[str]:
    """Printable strings held in marshal string records, in order, by a byte scan (a record is
    accepted when its whole content is printable ASCII); nothing is decoded as code."""
    out: list[str] = []
    position, end = 0, len(raw)
    while position < end - 1:
        kind = raw[position] & 0x7F
        if kind in _SHORT_STRINGS:
            length, start = raw[position + 1], position + 2
        elif kind in _LONG_STRINGS and position + 5 <= end:
            length, start = int.from_bytes(raw[position + 1:position + 5], "little"), position + 5
        else:
            position += 1
            continue
        body = raw[start:start + length]
        if length >= minimum and len(body) == length and NAME_RUN.fullmatch(body):
            out.append(body.decode("ascii"))
            position = start + length
        else:
            position += 1
    return out


def is_keras_module(module: str) -> bool:
    return module.split(".")[0] in KERAS_ROOTS


def _qualname(node: dict[str, Any]) -> tuple[str | None, str]:
    module = node.get("module")
    class_name = str(node.get("class_name", ""))
    if class_name == "function" and isinstance(node.get("config"), str):
        class_name = node["config"]  # Keras 3 serialises plain functions this way
    return (module if isinstance(module, str) else None), class_name


def _custom_reason(node: dict[str, Any]) -> str | None:
    module, class_name = _qualname(node)
    registered = node.get("registered_name")
    if module is not None and module and not is_keras_module(module):
        return f"module {module!r} is not part of Keras/TensorFlow"
    if isinstance(registered, str) and ">" in registered and \
            not is_keras_module(registered.split(">")[0]):
        return f"registered custom object {registered!r}"
    if ">" in class_name and not is_keras_module(class_name.split(">")[0]):
        return f"class name {class_name!r} names a registered custom package"
    return None


def _lambda(walk: _Walk, node: dict[str, Any], path: str) -> None:
    config = node.get("config")
    if not isinstance(config, dict):
        return
    function = config.get("function")
    function_type = config.get("function_type")
    code: str | None = None
    if isinstance(function, dict) and function.get("class_name") == "__lambda__":
        inner = function.get("config")
        code = inner.get("code") if isinstance(inner, dict) else None
    elif isinstance(function, dict) and function_reference(function) is not None:
        walk.add("keras.function_ref", path, qualname=function_reference(function),
                 role="Lambda function", safe_mode=safe_mode_argument(config))
        return
    elif function_type == "lambda" and isinstance(function, (list, tuple)) and function and \
            isinstance(function[0], str):
        code = function[0]
    elif function_type == "lambda" and isinstance(function, str):
        code = function
    elif function_type == "function" and isinstance(function, str):
        module = str(config.get("module") or "")
        if module and is_keras_module(module):
            walk.add("keras.function_ref", path, qualname=f"{module}.{function}",
                     role="Lambda function", safe_mode=safe_mode_argument(config))
        if not is_keras_module(module):
            walk.add("keras.custom_object", path, class_name=function, module=module,
                     qualname=f"{module}.{function}" if module else function,
                     registered_name=None, reason="Lambda layer calls a named function",
                     role="Lambda function")
        return
    if code is None:
        return
    encoding, names, size = bytecode_names(str(code))
    walk.add("keras.lambda", path, layer=str(config.get("name", "")), encoding=encoding,
             code_size=size, names=names, module=str(config.get("module") or ""))


def _walk(walk: _Walk, node: Any, path: str, depth: int, in_lambda: bool = False) -> None:
    walk.nodes += 1
    if walk.nodes > MAX_NODES:
        walk.limited.add("nodes")
        return
    if depth > MAX_DEPTH:
        walk.limited.add("depth")
        return
    if isinstance(node, list):
        for index, item in enumerate(node):
            _walk(walk, item, f"{path}[{index}]", depth + 1, in_lambda)
        return
    if not isinstance(node, dict):
        return
    class_name = node.get("class_name")
    if isinstance(class_name, str):
        here = f"{path}/{_label(node)}" if path else _label(node)
        if class_name == "Lambda" or class_name.endswith(">Lambda"):
            _lambda(walk, node, here)
            in_lambda = True  # its __lambda__ function was reported with the layer
        elif is_torch_wrapper(class_name):
            torch_wrapper(walk.add, walk.output, walk.artifact, walk.where, walk.limits, node,
                          here)
        elif class_name == "function" and not in_lambda and function_reference(node) and \
                is_keras_module(str(node.get("module"))):
            walk.add("keras.function_ref", here, qualname=function_reference(node),
                     role=path.rsplit("/", 1)[-1] or "model", safe_mode="unset")
        elif class_name == "__lambda__" and not in_lambda:
            inner = node.get("config")
            code = inner.get("code") if isinstance(inner, dict) else None
            if isinstance(code, str):
                encoding, names, size = bytecode_names(code)
                walk.add("keras.lambda", here, layer="", encoding=encoding, code_size=size,
                         names=names, module="")
        reason = _custom_reason(node)
        if reason is not None:
            module, name = _qualname(node)
            walk.add("keras.custom_object", here, class_name=name, module=module or "",
                     qualname=f"{module}.{name}" if module else name,
                     registered_name=node.get("registered_name"), reason=reason,
                     role=path.rsplit("/", 1)[-1] or "model")
        path = here
    for key, value in node.items():
        if isinstance(value, (dict, list)):
            _walk(walk, value, f"{path}.{key}" if path else str(key), depth + 1, in_lambda)


def _label(node: dict[str, Any]) -> str:
    config = node.get("config")
    name = config.get("name") if isinstance(config, dict) else None
    return f"{node.get('class_name')}({name})" if isinstance(name, str) else \
        str(node.get("class_name"))


def _layers(config: Any) -> Iterator[Any]:
    inner = config.get("config") if isinstance(config, dict) else None
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if isinstance(layers, list):
        yield from layers


def analyse_config(data: Any, output: ParseOutput, where: Location, origin: str, *,
                   artifact: Artifact | None = None, limits: Limits = DEFAULT_LIMITS) -> None:
    """Facts for one decoded model config (``origin`` says where it came from).  Embedded
    archives become children of ``artifact`` (when given)."""
    walk = _Walk(output, where, artifact, limits)
    if isinstance(data, dict):
        output.add("keras.model", where, class_name=str(data.get("class_name", "")),
                   module=str(data.get("module") or ""), layers=sum(1 for _ in _layers(data)),
                   origin=origin)
    _walk(walk, data, "", 0)
    for which in sorted(walk.limited):
        output.add("limit.hit", where, limit=f"keras config {which}", value=walk.nodes,
                   detail=f"{origin}: the config is larger or deeper than the limits "
                          f"({MAX_NODES} nodes, depth {MAX_DEPTH}, {MAX_FACTS} findings); "
                          "the rest was not examined")


def decode_json(text: bytes, output: ParseOutput, where: Location, fmt: str) -> Any:
    """The decoded JSON object; anything else (invalid JSON, a list, null) is a parse.error
    fact and None."""
    try:
        data = json.loads(text.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        output.add("parse.error", where, format=fmt, error=f"invalid JSON: {exc}"[:300],
                   offset=None, read=len(text))
        return None
    if not isinstance(data, dict):
        output.add("parse.error", where, format=fmt,
                   error=f"the Keras config is a JSON {type(data).__name__}, not an object",
                   offset=None, read=len(text))
        return None
    return data


def _read_json(artifact: Artifact, output: ParseOutput, limit: int, limit_name: str,
               what: str) -> dict[str, Any] | None:
    """The artifact's JSON object, read whole when it is within ``limit`` bytes; otherwise a
    ``limit.hit`` fact (malformed JSON is a ``parse.error`` fact, see ``decode_json``)."""
    where, size = artifact.location, artifact.source.size
    if size > limit:
        output.add("limit.hit", where, limit=limit_name, value=size,
                   detail=f"{what} of {size} bytes was not examined")
        return None
    data: dict[str, Any] | None = decode_json(artifact.source.read(0, size), output, where,
                                              "keras-config")
    return data


def parse(artifact: Artifact, context: ParseContext) -> ParseOutput:
    """``config.json`` of a ``.keras`` archive."""
    output = ParseOutput(format="keras-config")
    data = _read_json(artifact, output, context.limits.max_header_bytes, "max_header_bytes",
                      "Keras config")
    if data is not None:
        analyse_config(data, output, artifact.location, "config.json", artifact=artifact,
                       limits=context.limits)
    return output


def parse_metadata(artifact: Artifact, context: ParseContext) -> ParseOutput:
    """``metadata.json`` of a ``.keras`` archive (format ``keras-metadata``): the Keras version
    and date that saved it, as a ``keras.version`` fact."""
    output = ParseOutput(format="keras-metadata")
    data = _read_json(artifact, output, context.limits.max_text_file_bytes,
                      "max_text_file_bytes", "Keras metadata")
    if data is not None:
        output.add("keras.version", artifact.location,
                   keras_version=str(data.get("keras_version", "")),
                   backend=str(data.get("backend", "")),
                   date_saved=str(data.get("date_saved", "")), source="metadata.json")
    return output
