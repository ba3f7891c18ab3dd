"""Speed and memory switches of the training loop that depend on the device.

Kept apart from the loop itself so the loop reads as the story of a run, and
so the benchmarks in ``bench/`` can build exactly the optimizer a run uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import UserError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ._plugin_api import Strategy

__all__ = ["apply_gradient_checkpointing", "enable_gradient_checkpointing", "make_optimizer", "native_cpu_bf16",
           "prepare_for_training", "step_autocast"]

#: CPU features with bf16 dot products (x86): oneDNN's bf16 matrix products run on them at about twice fp32's speed.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def native_cpu_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 natively (Linux: a flag of :data:`BF16_CPU_FLAGS` in /proc/cpuinfo)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                cpuinfo = f.read()
        except OSError:
            return False
    flags = set(cpuinfo.split())
    return any(flag in flags for flag in BF16_CPU_FLAGS)


def step_autocast(setting: str, device: torch.device, backbone_allows: bool) -> torch.dtype | None:
    """The dtype training steps autocast to under ``train.mixed_precision: auto``, or None.

    bf16 on a CPU that computes it natively, for a backbone measured to train as well that way
    (:attr:`Backbone.cpu_bf16`); the weights, optimizer and evaluation stay fp32, so the metrics a
    run reports are those ``tl eval`` and the plain library give. Explicit ``bf16`` / ``fp16`` go
    to accelerate instead (evaluation included).
    """
    import torch

    if setting != "auto" or device.type != "cpu" or not backbone_allows or not native_cpu_bf16():
        return None
    return torch.bfloat16


def make_optimizer(groups: Any, lr: float, device: torch.device, kind: str = "adamw") -> torch.optim.Optimizer:
    """AdamW (or SGD with momentum 0.9: ``kind="sgd"``) over ``groups``, with PyTorch's fused kernel where it has one.

    On CUDA it saves one launch per parameter tensor. On the CPU it matters
    more: PyTorch's default there is the per-tensor loop, which for
    all-MiniLM-L6-v2 (22.7M parameters, 2 threads) takes about 185 ms a step
    against 18 ms fused, more than the forward and backward pass of a batch
    of short sentences. SGD's weight decay is the classic L2 term (PyTorch's),
    AdamW's the decoupled one.
    """
    import torch

    if kind == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=0.9)
    fused = device.type in _FUSED_ADAMW_DEVICES
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


#: Device types with a fused AdamW kernel in the PyTorch versions tl_toolkit supports.
_FUSED_ADAMW_DEVICES = frozenset({"cuda", "cpu", "xpu"})


def enable_gradient_checkpointing(model: nn.Module, required: bool = True) -> bool:
    """Recompute activations in the backward pass instead of keeping them; True when switched on.

    Works on a Hugging Face model (``activation_checkpointing_enable``, or
    ``gradient_checkpointing_enable`` before transformers 5.23), a timm model
    (``set_grad_checkpointing``), or either wrapped by peft. The
    non-reentrant form is used: it needs no input that requires grad, so it
    also works when the embeddings are frozen (LoRA, head-only).

    Raises:
        UserError: the model offers neither switch and ``required`` is set.
    """
    base_of = getattr(model, "get_base_model", None)  # peft's wrapper
    inner: Any = base_of() if callable(base_of) else model
    try:
        if hasattr(inner, "activation_checkpointing_enable"):
            inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        elif hasattr(inner, "gradient_checkpointing_enable"):
            inner.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        elif hasattr(inner, "set_grad_checkpointing"):
            inner.set_grad_checkpointing(True)
        else:
            raise ValueError("it has no gradient checkpointing switch")
    except ValueError as e:  # also transformers' answer for a model class that does not support it
        if required:
            raise UserError(f"train.gradient_checkpointing: the {type(inner).__name__} model cannot recompute "
                            f"activations ({str(e).splitlines()[0]}); set train.gradient_checkpointing=false") from None
        return False
    return True


def apply_gradient_checkpointing(model: nn.Module, setting: bool | str, strategy: Strategy) -> bool:
    """Carry out ``train.gradient_checkpointing`` for ``strategy``; True when activations will be recomputed.

    ``auto`` follows :attr:`Strategy.recompute_activations` (LoRA's choice:
    its backbone is frozen, so the activations kept for the backward pass are
    most of its memory). It stays off for a model without the switch, and for
    one with BatchNorm layers, which would update their running statistics a
    second time in each recomputed block (ResNets; ``true`` still turns it on).
    """
    from torch.nn.modules.batchnorm import _BatchNorm

    if setting == "auto":
        return (strategy.recompute_activations and not any(isinstance(m, _BatchNorm) for m in model.modules())
                and enable_gradient_checkpointing(model, required=False))
    return bool(setting) and enable_gradient_checkpointing(model)


def prepare_for_training(model: nn.Module, gradient_checkpointing: bool | str, strategy: Strategy,
                         fast_dropout: bool = True) -> bool:
    """The model-side switches of a training run, after ``strategy.apply``; True when activations are recomputed.

    ``train.gradient_checkpointing`` (:func:`apply_gradient_checkpointing`) and
    the fast CPU dropout (:func:`tl_toolkit._dropout.use_fast_dropout`, unless
    ``train.cpu_dropout`` is false): the engine, ``tl plan`` and the benchmarks
    prepare a model through this one call.
    """
    from ._dropout import use_fast_dropout

    recomputes = apply_gradient_checkpointing(model, gradient_checkpointing, strategy)
    if fast_dropout:
        use_fast_dropout(model)
    return recomputes
