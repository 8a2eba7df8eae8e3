"""How a checkpoint lays out its matrices, read from ``config.json`` beside it (plain JSON, never
code) and from tensor names.

GPT-2 style ``Conv1D`` layers store weights as (in, out): their output neurons are the *columns*.
Everything else in ckptguard's weight statistics treats rows as output neurons, so a transposed
tensor is judged through its columns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ckptguard.facts import Artifact

# model_type values whose transformers implementation uses Conv1D (weights stored (in, out)).
CONV1D_MODEL_TYPES = frozenset(("gpt2", "openai-gpt", "imagegpt", "decision_transformer",
                                "gpt_bigcode"))
_CONV1D_NAMES = re.compile(r"(^|\.)(c_attn|c_fc|c_proj|q_attn)\.weight$")
CONFIG_MAX_BYTES = 1 << 20


@dataclass(frozen=True)
class Layout:
    model_type: str | None = None  # from config.json, when one sits beside the weights
    conv1d: bool = False  # GPT-2 style (in, out) storage for the Conv1D-named tensors

    def transposed(self, name: str, shape: tuple[int, ...]) -> bool:
        """Whether ``name``'s output neurons are its columns."""
        return self.conv1d and len(shape) == 2 and bool(_CONV1D_NAMES.search(name))


def read_model_type(folder: Path) -> str | None:
    """``model_type`` from ``folder/config.json`` (bounded read; None when absent or odd)."""
    path = folder / "config.json"
    try:
        if not path.is_file() or path.stat().st_size > CONFIG_MAX_BYTES:
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    value = data.get("model_type") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def layout_for(artifact: Artifact | None, names: list[str]) -> Layout:
    """The layout of a checkpoint file: its config's ``model_type`` when known; otherwise
    GPT-2's Conv1D names (``c_attn``, ``c_fc``) are evidence enough."""
    model_type = None
    if artifact is not None and len(artifact.chain) == 1:
        model_type = read_model_type(Path(artifact.chain[0]).parent)
    if model_type is not None:
        return Layout(model_type, model_type in CONV1D_MODEL_TYPES)
    gpt2_names = any(re.search(r"(^|\.)(c_attn|c_fc)\.weight$", name) for name in names)
    return Layout(None, gpt2_names)
