"""What a tensor is for, judged from its name and shape (never from its values).

Only ``linear`` and ``conv`` weights carry the per-neuron structure the statistics look at.
Embeddings (token and position), normalisation scales, biases, 1-D and tiny tensors have
legitimately unusual values (LLM outlier feature dimensions live in norms and embeddings), so
they are measured for non-finite values only.
"""

from __future__ import annotations

import re
from enum import Enum

from ckptguard.weights.thresholds import MIN_ELEMENTS, MIN_ROWS

_EMBEDDING = re.compile(r"(^|[._])(embed|embeddings?|embed_tokens|wte|wpe|tok_embeddings|"
                        r"word_embeddings|position_embeddings?|pos_embed|token_type_embeddings|"
                        r"shared|lm_head|unembed|cls_token|mask_token|"
                        r"relative_attention_bias)([._]|$)", re.IGNORECASE)
_NORM = re.compile(r"(^|[._])(ln|ln_\w+|layer_?norm\w*|\w*norm|bn\d*|batch_?norm\w*|"
                   r"rms_?norm\w*|norm\d*|gamma|beta|scale)([._]|$)", re.IGNORECASE)
_BIAS = re.compile(r"(^|[._])bias$", re.IGNORECASE)
_STATE = re.compile(r"(running_mean|running_var|num_batches_tracked|inv_freq|"
                    r"position_ids|attn\.masked_bias|attn\.bias|cos_cached|sin_cached)$",
                    re.IGNORECASE)
# A torch optimizer's per-parameter state (``optimizer.state_dict()["state"][i]``, saved in
# training checkpoints beside the model): statistics of gradients, not layers.  A few steps of
# SGD momentum are nearly rank one, which BKD003 read as an edited layer.
_OPTIMIZER_STATE = re.compile(
    r"(^|\.)state\.\d+\.(exp_avg|exp_avg_sq|max_exp_avg_sq|exp_avg_sq_row|exp_avg_sq_col|"
    r"momentum_buffer|square_avg|acc_delta|grad_avg|sum|ax|eta|mu|prev|step_size|step)$")


# Layers that write into a transformer's residual stream: their rows (output units) are the
# stream's dimensions, where trained transformers carry a few massive "outlier dimensions"
# (shared with the norms, embeddings and the columns that read the stream).  A row outlier there
# is expected when its index is such a dimension (``ckptguard.weights.outlier_dims``).
_RESIDUAL_WRITER = re.compile(
    r"((^|\.)(attention\.output\.dense|output\.dense|o_proj|out_proj|down_proj|c_proj|"
    r"dense_4h_to_h|wo|w2|attn\.proj|attention\.dense|self_attention\.dense|mlp\.fc2|"
    r"fc_out|SelfAttention\.o|EncDecAttention\.o|ffn\.lin2|attention\.out_lin)"
    r"\.weight$)", re.IGNORECASE)


def residual_writer(name: str) -> bool:
    """Whether ``name`` is a weight whose outputs are added to a transformer's residual stream."""
    return bool(_RESIDUAL_WRITER.search(name))


def norm_vector(name: str, shape: tuple[int, ...]) -> bool:
    """A normalisation layer's scale or shift (biases included)."""
    return len(shape) == 1 and bool(_NORM.search(name.rsplit(".", 1)[0]))


class Role(str, Enum):
    LINEAR = "linear"
    CONV = "conv"
    EMBEDDING = "embedding"
    NORM = "norm"
    BIAS = "bias"
    STATE = "state"  # buffers: running statistics, rotary tables, masks
    VECTOR = "vector"  # any other 1-D tensor
    TINY = "tiny"

    @property
    def has_neurons(self) -> bool:
        return self in (Role.LINEAR, Role.CONV)


def role_of(name: str, shape: tuple[int, ...]) -> Role:
    """The role of tensor ``name`` with ``shape``; the name decides first, then the shape."""
    if _STATE.search(name) or _OPTIMIZER_STATE.search(name):
        return Role.STATE
    if _BIAS.search(name):
        return Role.BIAS
    if _EMBEDDING.search(name):
        return Role.EMBEDDING
    if len(shape) <= 1:
        return Role.NORM if _NORM.search(name) else Role.VECTOR
    if _NORM.search(name):
        return Role.NORM
    count = 1
    for dim in shape:
        count *= dim
    if shape[0] < MIN_ROWS or count < MIN_ELEMENTS:
        return Role.TINY
    return Role.CONV if len(shape) >= 3 else Role.LINEAR
