"""Self-attention for training BERT-family encoders on the CPU, with tl_toolkit's fast dropout.

With dropout on the attention probabilities, PyTorch's fused CPU attention
does not apply and ``scaled_dot_product_attention`` falls back to its
reference path, whose dropout draws a float per probability and keeps a float
mask (for all-MiniLM-L6-v2 at batch 32 and 128 tokens: 6.3M elements a
layer, about 100 ms on two cores). This function computes the same attention
with :func:`tl_toolkit.cpu_dropout` instead, when the engine made the model's
dropout layers :class:`tl_toolkit.FastDropout` (``train.cpu_dropout``, on by
default). Everywhere else (no dropout, PyTorch's dropout asked for, a
GPU, ``torch.compile``, a causal or cached decoder, extra arguments) it hands
the call to transformers' own SDPA function unchanged.

Padding-free batches (every sentence of a batch in one row, positions
restarting at each, as ``transformers.DataCollatorWithFlattening`` makes
them) arrive with the sentence boundaries (``cu_seq_lens_q``). The dense
block-diagonal mask transformers builds for them costs the square of the row
(about 800 tokens for 32 CoNLL sentences); this function instead lays the
sentences side by side, padded to the longest, attends within each, and puts
the rows back: the attention of a padded batch, the linear layers of none.

It is registered with transformers under the name ``tl_sdpa`` (masks as for
``sdpa``) and chosen by :func:`install` for models that use ``sdpa``; the name
is not written into saved configs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tl_toolkit import FastDropout, cpu_dropout

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["NAME", "attention", "install"]

NAME = "tl_sdpa"


def attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: (module, q, k, v, mask, ...) -> (output (b, s, h, d), None)."""
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    fast = isinstance(getattr(module, "dropout", None), FastDropout)  # train.cpu_dropout: false leaves nn.Dropout
    bounds = kwargs.pop("cu_seq_lens_q", None)
    if bounds is not None and query.shape[0] == 1 and query.device.type == "cpu":
        for key_name in ("cu_seq_lens_k", "max_length_q", "max_length_k", "position_ids"):
            kwargs.pop(key_name, None)
        if not any(v is not None and v is not False for v in kwargs.values()):
            return _varlen(query, key, value, bounds, dropout, scaling, fast)
    plain = (not fast or dropout == 0.0 or query.device.type != "cpu" or torch.compiler.is_compiling() or bool(is_causal)
             or getattr(module, "is_causal", False) or getattr(module, "num_key_value_groups", 1) != 1
             or any(v is not None and v is not False for v in kwargs.values()))
    if plain:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)  # type: ignore[no-any-return]
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query * scale, key.transpose(-1, -2))
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # True: attend
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:  # additive
            scores = scores + attention_mask
    probs = cpu_dropout(torch.softmax(scores, dim=-1, dtype=torch.float32), dropout)
    return torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous(), None


def _varlen(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, bounds: torch.Tensor, dropout: float,
            scaling: float | None, fast: bool) -> tuple[torch.Tensor, None]:
    """Attention within each sentence of a packed row (q, k, v: ``(1, heads, tokens, dim)``).

    ``index_copy`` / ``index_select`` move the tokens to padded slots and back: their backward passes
    are a select and an add, where advanced indexing would accumulate through a slow scatter.
    """
    import torch

    lengths = (bounds[1:] - bounds[:-1]).long()
    count, width = len(lengths), int(lengths.max())
    valid = torch.arange(width, device=query.device) < lengths[:, None]  # (sentences, width)
    slots = valid.flatten().nonzero().squeeze(1)  # the padded slot of each token, in row order
    heads, dim = query.shape[1], query.shape[-1]

    def padded(t: torch.Tensor) -> torch.Tensor:
        return t.new_zeros(heads, count * width, dim).index_copy(1, slots, t[0]).view(heads, count, width, dim)

    q, k, v = padded(query), padded(key), padded(value)
    scale = dim ** -0.5 if scaling is None else scaling
    scores = torch.matmul(q * scale, k.transpose(-1, -2))
    scores = scores.masked_fill(~valid[None, :, None, :], torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
    if dropout:
        probs = cpu_dropout(probs, dropout) if fast else torch.nn.functional.dropout(probs, dropout)
    out = torch.matmul(probs.to(v.dtype), v).view(heads, count * width, dim).index_select(1, slots)
    return out.transpose(0, 1).unsqueeze(0).contiguous(), None  # (1, tokens, heads, dim)


def install(model: nn.Module) -> bool:
    """Use :func:`attention` in ``model`` if it attends through ``sdpa``; True when it does now.

    Needs transformers' attention registries (4.53 and later); with older
    versions the model keeps its attention.
    """
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    config: Any = getattr(model, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    setter = getattr(model, "set_attn_implementation", None)
    if callable(setter):
        setter(NAME)
    else:
        config._attn_implementation = NAME
    return True
