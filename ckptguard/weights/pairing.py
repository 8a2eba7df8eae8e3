"""Pair a checkpoint's tensors with its claimed base's, across the renamings real checkpoints go
through.

Saving a ``BertModel`` gives ``encoder.layer.0...``; the same weights inside
``BertForSequenceClassification`` are ``bert.encoder.layer.0...``.  Pairing goes from the most
to the least certain: exact names; names equal once a known wrapper prefix is removed from
either side (``bert.``, ``model.``, ``transformer.``, ``roberta.``, ``module.``, PEFT's
``base_model.model.``, ...); then, for what is left, tensors of one shape that appear the same
number of times on both sides, in name order.  The result says how each pair was made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ckptguard.facts import TensorRef
from ckptguard.weights.diff import Mismatch

# Wrapper prefixes of transformers' task heads, DDP/compile wrappers and PEFT (longest first).
WRAPPER_PREFIXES = (
    "base_model.model.", "_orig_mod.", "module.", "model.", "transformer.", "bert.", "roberta.",
    "xlm_roberta.", "xlm-roberta.", "deberta.", "distilbert.", "electra.", "albert.",
    "camembert.", "mpnet.", "gpt_neox.", "backbone.", "encoder_model.", "vit.", "swin.",
    "resnet.", "convnext.", "wav2vec2.", "hubert.", "whisper.", "t5.", "llama.", "mistral.",
)


def strip_wrappers(name: str) -> str:
    """``name`` without the wrapper prefixes it starts with (repeatedly)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPER_PREFIXES:
            if name.startswith(prefix) and len(name) > len(prefix):
                name = name[len(prefix):]
                changed = True
    return name


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[tuple[TensorRef, TensorRef], ...]
    mismatches: tuple[Mismatch, ...]  # extra here / shape / dtype (names after mapping)
    by_name: int  # pairs made by identical names
    by_prefix: int  # pairs made once wrapper prefixes were removed
    by_shape: int  # pairs made by shape and order alone
    ours: int  # tensors in this artifact
    unpaired_ours: tuple[str, ...]
    unpaired_base: tuple[str, ...]

    @property
    def paired(self) -> int:
        return len(self.pairs)


def _same_dtype_family(ours: TensorRef, base: TensorRef) -> bool:
    return ours.dtype == base.dtype or {ours.dtype, base.dtype} <= {"bfloat16", "float16",
                                                                     "float32"}


def pair_tables(ours: Sequence[TensorRef], base: Mapping[str, TensorRef]) -> Pairing:
    pairs: list[tuple[TensorRef, TensorRef]] = []
    mismatches: list[Mismatch] = []
    left: list[TensorRef] = []
    used: set[str] = set()
    for ref in ours:
        other = base.get(ref.name)
        if other is None:
            left.append(ref)
        else:
            used.add(other.name)
            _pair(ref, other, pairs, mismatches)
    by_name = len(pairs)
    canonical: dict[str, list[TensorRef]] = {}
    for name, ref in base.items():
        if name not in used:
            canonical.setdefault(strip_wrappers(name), []).append(ref)
    still: list[TensorRef] = []
    for ref in left:
        options = [o for o in canonical.get(strip_wrappers(ref.name), []) if o.name not in used]
        if len(options) == 1:
            used.add(options[0].name)
            _pair(ref, options[0], pairs, mismatches)
        else:
            still.append(ref)
    by_prefix = len(pairs) - by_name
    by_shape = _pair_by_shape(still, [ref for name, ref in base.items() if name not in used],
                              pairs, used)
    for mine, theirs in pairs[len(pairs) - by_shape:]:
        mismatches.append(Mismatch(mine.name, "renamed", f"paired by shape with the base's "
                                   f"{theirs.name!r}"))
    paired_names = {ours_ref.name for ours_ref, _ in pairs}
    unpaired = tuple(ref.name for ref in ours if ref.name not in paired_names)
    for name in unpaired:
        mismatches.append(Mismatch(name, "extra", "not present in the base checkpoint"))
    return Pairing(tuple(pairs), tuple(mismatches), by_name, by_prefix, by_shape, len(ours),
                   unpaired, tuple(sorted(name for name in base if name not in used)))


def _pair(ref: TensorRef, other: TensorRef, pairs: list[tuple[TensorRef, TensorRef]],
          mismatches: list[Mismatch]) -> None:
    if tuple(other.shape) != tuple(ref.shape):
        mismatches.append(Mismatch(ref.name, "shape",
                                   f"shape {list(ref.shape)}, base {list(other.shape)}"))
        return
    pairs.append((ref, other))
    if other.dtype != ref.dtype and (ref.dtype, other.dtype) != ("bfloat16", "float32"):
        mismatches.append(Mismatch(ref.name, "dtype", f"{ref.dtype}, base {other.dtype}"))


def _pair_by_shape(ours: list[TensorRef], base: list[TensorRef],
                   pairs: list[tuple[TensorRef, TensorRef]], used: set[str]) -> int:
    """Pair leftover tensors of a shape that occurs equally often on both sides, in name order
    (renamed layers keep their relative order)."""
    def groups(refs: list[TensorRef]) -> dict[tuple[int, ...], list[TensorRef]]:
        found: dict[tuple[int, ...], list[TensorRef]] = {}
        for ref in sorted(refs, key=lambda r: _natural(strip_wrappers(r.name))):
            found.setdefault(tuple(ref.shape), []).append(ref)
        return found

    mine, theirs = groups(ours), groups(base)
    made = 0
    for shape, refs in mine.items():
        others = theirs.get(shape, [])
        if len(refs) != len(others):
            continue
        for ref, other in zip(refs, others, strict=True):
            if _same_dtype_family(ref, other):
                pairs.append((ref, other))
                used.add(other.name)
                made += 1
    return made


def _natural(name: str) -> tuple[object, ...]:
    """Sort key that orders ``layer.10`` after ``layer.9``."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in name.split("."))
