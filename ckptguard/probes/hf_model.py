"""Hugging Face sequence classifiers as probe networks (the ``hf`` extra: transformers).

A model folder (``config.json`` + ``model.safetensors``) is built from its configuration with
transformers' own classes only: ``trust_remote_code`` is never set, nothing is downloaded
(``HF_HUB_OFFLINE``, ``local_files_only``), and a configuration that needs code from the
repository (``auto_map``, an architecture transformers does not ship) is refused before
transformers is imported.  Weights come from ``model.safetensors`` decoded by ckptguard's own
parser; pickle weights (``pytorch_model.bin``) are refused.  transformers is imported here,
lazily, in the probe stage only.

The probes see the classifier through :class:`TokenClassifier`: a float input is a batch of
input embeddings ``(batch, tokens, hidden)`` (the data-free probes optimise and stimulate in
that space); an integer input ``(batch, 2, tokens)`` stacks ``input_ids`` and
``attention_mask`` (clean text from ``--data``, padding masked).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ckptguard.probes.network import ProbeError, ProbeNetwork

if TYPE_CHECKING:
    import torch
    from torch import nn

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"
# Weight files whose loaders unpickle (or run code): never read by the probe.
UNSAFE_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "model.ckpt",
                  "training_args.bin", "tf_model.h5", "flax_model.msgpack")
MAX_CONFIG_BYTES = 1 << 20
MAX_DATA_BYTES = 16 << 20
MAX_DATA_LINES = 256
MAX_TOKENS = 64  # tokens per --data example (longer lines are cut, keeping the final token)
EMBEDDING_TOKENS = 16  # sequence length of the data-free probes' input embeddings


def is_model_folder(path: Path) -> bool:
    return path.is_dir() and (path / CONFIG).is_file()


def read_config(folder: Path) -> dict[str, Any]:
    """``config.json`` as plain JSON (bounded), refused when building it would need code from
    the repository."""
    path = folder / CONFIG
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ProbeError(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProbeError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ProbeError(f"{path} does not hold a JSON object")
    if "auto_map" in config:
        raise ProbeError(f"{path} has an auto_map: the model needs code from its repository "
                         "(trust_remote_code), which ckptguard never runs")
    if not isinstance(config.get("model_type"), str):
        raise ProbeError(f"{path} names no model_type; transformers cannot build it from the "
                         "configuration alone")
    return config


def weights_file(folder: Path) -> Path:
    """``model.safetensors``; pickle weights are refused, never read."""
    weights = folder / WEIGHTS
    if weights.is_file():
        return weights
    unsafe = [name for name in UNSAFE_WEIGHTS if (folder / name).exists()]
    if unsafe:
        raise ProbeError(f"{folder} holds {', '.join(unsafe)} but no {WEIGHTS}: pickle weights "
                         "are never loaded; convert the model to safetensors first")
    if (folder / f"{WEIGHTS}.index.json").exists():
        raise ProbeError(f"{folder} is sharded ({WEIGHTS}.index.json); the probe reads a single "
                         f"{WEIGHTS} only")
    raise ProbeError(f"{folder} has no {WEIGHTS}")


def _offline_transformers() -> Any:
    """transformers, imported with every hub access switched off."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError:
        raise ProbeError("probing a Hugging Face model folder needs transformers: "
                         "pip install 'ckptguard[hf]'") from None
    return transformers


def build_classifier(folder: Path) -> tuple[nn.Module, Any]:
    """The sequence classifier of ``folder`` with its weights, and its configuration."""
    from ckptguard.limits import DEFAULT_LIMITS
    from ckptguard.probes.network import load_weights, state_dict
    from ckptguard.weights.base import read_base

    raw = read_config(folder)
    weights = weights_file(folder)
    transformers = _offline_transformers()
    for name in raw.get("architectures") or ():
        if not isinstance(name, str) or not hasattr(transformers, name):
            raise ProbeError(f"config.json names the architecture {name!r}, which transformers "
                             "does not ship: it would need code from the repository")
    try:
        config = transformers.AutoConfig.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False)
        model = transformers.AutoModelForSequenceClassification.from_config(
            config, trust_remote_code=False)
    except (ValueError, KeyError, OSError, TypeError) as exc:
        raise ProbeError(f"transformers cannot build a sequence classifier from {folder / CONFIG}"
                         f": {str(exc)[:300]}") from None
    checkpoint = read_base(str(weights), DEFAULT_LIMITS)
    if not checkpoint.usable:
        raise ProbeError(f"no tensors could be read from {weights}: "
                         f"{'; '.join(checkpoint.problems)}")
    tensors = state_dict(list(checkpoint.tensors.values()))
    model = model.float()
    expected = set(model.state_dict())
    if not any(key in expected for key in tensors):
        prefix = f"{getattr(model, 'base_model_prefix', '')}."
        if any(f"{prefix}{key}" in expected for key in tensors):
            raise ProbeError(f"{weights} holds a base model without a classification head "
                             f"(its tensors lack {type(model).__name__}'s {prefix!r} prefix and "
                             "head); the probes need a classifier")
        raise ProbeError(f"{weights} does not hold weights of {type(model).__name__} (no tensor "
                         "name matches)")
    load_weights(model, tensors)
    return model, config


def classifier_module(model: nn.Module) -> nn.Module:
    """``model`` behind the probes' input convention (see the module docstring)."""
    import torch
    from torch import nn

    class TokenClassifier(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.model = inner

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.dtype in (torch.long, torch.int32, torch.int64):
                out = self.model(input_ids=x[:, 0], attention_mask=x[:, 1])
            else:
                mask = torch.ones(x.shape[:2], dtype=torch.long, device=x.device)
                out = self.model(inputs_embeds=x, attention_mask=mask)
            return out.logits  # type: ignore[no-any-return]

    return TokenClassifier(model)


@dataclass(frozen=True)
class Vocabulary:
    """What the token trigger search needs from the tokenizer."""

    pad_id: int
    tokens: tuple[str, ...]  # by id ('' for ids the tokenizer does not name)
    excluded: frozenset[int]  # special tokens: never candidates for a trigger


class TextNetwork(ProbeNetwork):
    """A transformers sequence classifier: data-free probes on input embeddings, clean text as
    token ids with an attention mask, and access to the embedding matrix for trigger search."""

    def __init__(self, model: nn.Module, config: Any, device: str) -> None:
        import torch

        embeddings = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
        low = float(torch.quantile(embeddings.flatten()[:1 << 20], 0.001))
        high = float(torch.quantile(embeddings.flatten()[:1 << 20], 0.999))
        limit = int(getattr(config, "max_position_embeddings", 512) or 512)
        tokens = max(2, min(EMBEDDING_TOKENS, limit - 2))
        self.config = config
        super().__init__(classifier_module(model), (tokens, int(embeddings.shape[1])),
                         (low, high), device)
        self.notes.append("Hugging Face classifier built from config.json by transformers "
                          f"({type(model).__name__}); data-free probes run on input embeddings "
                          f"of {tokens} tokens, clean text as token ids with attention masks")

    @property
    def inner(self) -> nn.Module:
        return self.module.model  # type: ignore[return-value]

    def embedding_matrix(self) -> torch.Tensor:
        return self.inner.get_input_embeddings().weight  # type: ignore[operator,no-any-return]

    def logits_from_embeddings(self, embeds: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        out = self.inner(inputs_embeds=embeds, attention_mask=mask)
        return out.logits  # type: ignore[no-any-return]


def build_text_network(folder: Path, device: str) -> TextNetwork:
    model, config = build_classifier(folder)
    return TextNetwork(model, config, device)


def read_vocabulary(folder: Path, config: Any) -> tuple[Any, Vocabulary]:
    """The folder's ``tokenizer.json`` (parsed by the ``tokenizers`` package; no download, no
    code) and the facts about its vocabulary the trigger search needs."""
    path = folder / TOKENIZER
    if not path.is_file():
        raise ProbeError(f"--data with a Hugging Face model needs {path} to tokenize the text")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ProbeError("tokenizing --data needs the tokenizers package: "
                         "pip install 'ckptguard[hf]'") from None
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # noqa: BLE001 - the tokenizers library's own errors
        raise ProbeError(f"{path} cannot be read by tokenizers: {str(exc)[:300]}") from None
    tokenizer.no_padding()
    tokenizer.no_truncation()
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    size = int(config.vocab_size)
    names = [""] * size
    for token, index in vocab.items():
        if 0 <= index < size:
            names[index] = token
    special = {index for index, added in tokenizer.get_added_tokens_decoder().items()
               if getattr(added, "special", False)}
    pad = getattr(config, "pad_token_id", None)
    if pad is None:
        pad = next((vocab[t] for t in ("[PAD]", "<pad>", "<|endoftext|>") if t in vocab), 0)
    excluded = frozenset(special | {int(pad)} | {i for i, n in enumerate(names) if not n})
    return tokenizer, Vocabulary(int(pad), tuple(names), excluded)


def read_text(path: str, tokenizer: Any, vocabulary: Vocabulary) -> torch.Tensor:
    """Clean examples (one per line of a UTF-8 text file) as ``(n, 2, tokens)`` token ids and
    attention masks, padded with the model's pad token."""
    import torch

    source = Path(path)
    if source.stat().st_size > MAX_DATA_BYTES:
        raise ProbeError(f"--data {path} is larger than {MAX_DATA_BYTES} bytes")
    try:
        lines = [line.strip() for line in source.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError as exc:
        raise ProbeError(f"--data {path} is not UTF-8 text: {exc}") from None
    lines = [line for line in lines if line][:MAX_DATA_LINES]
    if len(lines) < 2:
        raise ProbeError(f"--data {path} needs at least 2 non-empty lines (one example each)")
    encoded = [list(e.ids) for e in tokenizer.encode_batch(lines)]
    limit = len(vocabulary.tokens)
    if any(i < 0 or i >= limit for ids in encoded for i in ids):
        raise ProbeError(f"{TOKENIZER} produces token ids outside the model's vocabulary "
                         f"({limit})")
    encoded = [ids if len(ids) <= MAX_TOKENS else [*ids[:MAX_TOKENS - 1], ids[-1]]
               for ids in encoded]
    width = max(len(ids) for ids in encoded)
    out = torch.full((len(encoded), 2, width), vocabulary.pad_id, dtype=torch.long)
    out[:, 1] = 0
    for row, ids in enumerate(encoded):
        out[row, 0, :len(ids)] = torch.tensor(ids, dtype=torch.long)
        out[row, 1, :len(ids)] = 1
    return out
