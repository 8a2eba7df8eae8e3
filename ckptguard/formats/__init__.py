"""Parsers: one module per format, each ``parse(artifact, context) -> ParseOutput``.

Parsers never import, load, unpickle, render or execute anything from the file.  They are looked
up lazily by format name so that the payload path never imports onnx, h5py or torch.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ckptguard.facts import Artifact, ParseOutput
from ckptguard.limits import DEFAULT_LIMITS, Limits


@dataclass(frozen=True)
class ParseContext:
    limits: Limits = DEFAULT_LIMITS
    want_tensors: bool = False  # collect TensorRefs for weight statistics
    options: dict[str, Any] = field(default_factory=dict)


Parser = Callable[[Artifact, ParseContext], ParseOutput]

# format name -> "module:function".  The format names are those ``sniff`` returns.
PARSERS: dict[str, str] = {
    "pickle": "ckptguard.formats.pickle.parser:parse",
    "zip": "ckptguard.formats.zipfmt.parser:parse",
    "tar": "ckptguard.formats.tarfmt:parse",
    "gzip": "ckptguard.formats.compressed:parse_gzip",
    "bz2": "ckptguard.formats.compressed:parse_bz2",
    "xz": "ckptguard.formats.compressed:parse_xz",
    "zlib": "ckptguard.formats.compressed:parse_zlib",
    "lzma": "ckptguard.formats.compressed:parse_lzma",
    "numpy": "ckptguard.formats.numpy_npy:parse",
    "safetensors": "ckptguard.formats.safetensors_fmt:parse",
    "gguf": "ckptguard.formats.gguf:parse",
    "tflite": "ckptguard.formats.tflite:parse",
    "savedmodel": "ckptguard.formats.savedmodel:parse",
    "jinja": "ckptguard.templates.parser:parse",
    "onnx": "ckptguard.formats.onnx_fmt:parse",
    "hf-repo": "ckptguard.formats.hfrepo:parse",
    "keras-config": "ckptguard.formats.keras_fmt:parse",
    "keras-metadata": "ckptguard.formats.keras_fmt:parse_metadata",
    "hdf5": "ckptguard.formats.keras_h5:parse",
    "filesystem": "ckptguard.fsguard:parse",
}


def parser_for(fmt: str) -> Parser | None:
    target = PARSERS.get(fmt)
    if target is None:
        return None
    module_name, _, function = target.partition(":")
    parser: Parser = getattr(importlib.import_module(module_name), function)
    return parser
