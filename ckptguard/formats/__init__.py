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
from ckptguard.spill import SpillFile


@dataclass
class DecompressionBudget:
    """What one scan (a top-level artifact and everything nested in it) may still decompress,
    and keep in memory: shared by every archive level, so a 42.zip-style nest runs out."""

    remaining: int
    memory: int
    # Outputs already produced in this scan, by digest of their compressed input: the copies of
    # a 42.zip level are the same bytes, inflated once (and still charged to ``remaining``).
    seen: dict[tuple[object, ...], Any] = field(default_factory=dict)
    spill: SpillFile = field(default_factory=SpillFile)  # where output past ``memory`` goes


@dataclass(frozen=True)
class ParseContext:
    limits: Limits = DEFAULT_LIMITS
    want_tensors: bool = False  # collect TensorRefs for weight statistics
    options: dict[str, Any] = field(default_factory=dict)
    # The scan's shared budget (set by the Scanner per top-level artifact); None: each caller
    # gets a fresh one from the limits.
    budget: DecompressionBudget | None = None

    def scan_budget(self) -> DecompressionBudget:
        if self.budget is not None:
            return self.budget
        return DecompressionBudget(self.limits.max_total_decompressed,
                                   self.limits.max_decompressed_in_memory)

    def for_scan(self) -> ParseContext:
        """This context with a fresh budget for one top-level artifact and its members."""
        from dataclasses import replace

        return replace(self, budget=DecompressionBudget(self.limits.max_total_decompressed,
                                                        self.limits.max_decompressed_in_memory))


Parser = Callable[[Artifact, ParseContext], ParseOutput]

# format name -> "module:function".  The format names are those ``sniff`` returns.
PARSERS: dict[str, str] = {
    **{kind: "ckptguard.formats.known_data:parse" for kind in (
        "idl-save", "fasttext", "word2vec", "coreml-weights", "sentencepiece", "tiktoken",
        "ggml-legacy")},
    "pickle": "ckptguard.formats.pickle.parser:parse",
    "zip": "ckptguard.formats.zipfmt.parser:parse",
    "tar": "ckptguard.formats.tarfmt:parse",
    "gzip": "ckptguard.formats.compressed:parse_gzip",
    "bz2": "ckptguard.formats.compressed:parse_bz2",
    "xz": "ckptguard.formats.compressed:parse_xz",
    "zlib": "ckptguard.formats.compressed:parse_zlib",
    "lzma": "ckptguard.formats.compressed:parse_lzma",
    "lz4": "ckptguard.formats.compressed_lz4zstd:parse_lz4",
    "zstd": "ckptguard.formats.compressed_lz4zstd:parse_zstd",
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
    "yaml": "ckptguard.formats.hydra_targets:parse_yaml",
    "json": "ckptguard.formats.hydra_targets:parse_json",
    "filesystem": "ckptguard.fsguard:parse",
}


def parser_for(fmt: str) -> Parser | None:
    target = PARSERS.get(fmt)
    if target is None:
        return None
    module_name, _, function = target.partition(":")
    parser: Parser = getattr(importlib.import_module(module_name), function)
    return parser
