"""Speed and memory switches (gradient checkpointing, compile, fused AdamW) and the benchmark suite's GPU path on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, text_overrides

from tl_toolkit import finetune
from tl_toolkit._recipe import parse_overrides

DIGITS: dict[str, Any] = {
    "name": "perf",
    "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False, "options": {"hflip": 0.0}},
    "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
             "max_train_samples": 48, "max_eval_samples": 32},
    "train": {"epochs": 1, "batch_size": 16, "lr": 1.0e-3},
}


def _text_recipe(model: Path, out: Path, strategy: str) -> dict[str, Any]:
    recipe = parse_overrides(text_overrides(model, out, n_train=48, n_eval=32))
    return {"name": "perf-text", **recipe, "backbone": {**recipe["backbone"], "plugin": "bert"},
            "strategy": {"plugin": strategy}, "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3}}


@pytest.mark.parametrize("strategy", ["full", "lora"])
def test_gradient_checkpointing_changes_memory_not_results_text(
    strategy: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    # Recomputing activations must give the very same training run (dropout included) for every strategy,
    # including LoRA, whose frozen embeddings give the checkpointed blocks no input that requires grad.
    plain = finetune(_text_recipe(tiny_bert_dir, tmp_path / "a", strategy), train={"gradient_checkpointing": False},
                     quiet=True)
    ckpt = finetune(_text_recipe(tiny_bert_dir, tmp_path / "b", strategy), train={"gradient_checkpointing": True},
                    quiet=True)
    assert ckpt.metrics["loss"] == pytest.approx(plain.metrics["loss"], rel=1e-4)
    assert plain.metrics["loss"] != pytest.approx(
        finetune(_text_recipe(tiny_bert_dir, tmp_path / "c", strategy), train={"lr": 1e-2, "gradient_checkpointing": False},
                 quiet=True).metrics["loss"],
        rel=1e-4,
    )  # the comparison above can fail: a different run gives a different loss


def _saved_activation_bytes(tiny_bert_dir: Path, strategy: str, setting: bool | str) -> tuple[bool, int]:
    """Whether ``setting`` recomputes activations for ``strategy``, and the bytes one forward pass keeps for backward."""
    import torch

    from tl_toolkit import BackboneConfig, DataConfig, Task
    from tl_toolkit._performance import apply_gradient_checkpointing
    from tl_toolkit._registry import registry

    backbone = registry.get("backbone", "bert")(BackboneConfig(plugin="bert", model=str(tiny_bert_dir)),
                                                DataConfig(format="csv", train="-"))
    strat = registry.get("strategy", strategy)({})
    model = strat.apply(backbone.build(Task(["a", "b"])), backbone).train()
    recomputes = apply_gradient_checkpointing(model, setting, strat)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if t.untyped_storage().data_ptr() not in params:
            kept[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    batch = {"input_ids": torch.randint(5, 90, (8, 32)), "attention_mask": torch.ones(8, 32, dtype=torch.long)}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        backbone.forward(model, batch).sum().backward()
    return recomputes, sum(kept.values())


def test_gradient_checkpointing_auto_follows_the_strategy(tiny_bert_dir: Path) -> None:
    # auto (the default) recomputes for LoRA, whose frozen backbone leaves activations as most of its memory,
    # and keeps them for full fine-tuning; an explicit setting overrides the strategy either way.
    from tl_toolkit import Recipe

    assert Recipe.model_validate({**DIGITS}).train.gradient_checkpointing == "auto"
    lora_auto, lora_auto_bytes = _saved_activation_bytes(tiny_bert_dir, "lora", "auto")
    lora_off, lora_off_bytes = _saved_activation_bytes(tiny_bert_dir, "lora", False)
    full_auto, full_auto_bytes = _saved_activation_bytes(tiny_bert_dir, "full", "auto")
    full_on, full_on_bytes = _saved_activation_bytes(tiny_bert_dir, "full", True)
    assert (lora_auto, lora_off, full_auto, full_on) == (True, False, False, True)
    assert lora_auto_bytes < lora_off_bytes / 2
    assert full_on_bytes < full_auto_bytes / 2


def test_gradient_checkpointing_auto_without_a_switch_or_with_batchnorm() -> None:
    # A third-party model without a checkpointing switch trains under auto with its activations kept; so does a
    # ResNet, whose BatchNorm layers would count each recomputed batch twice in their running statistics.
    import timm
    import torch

    from tl_toolkit import UserError
    from tl_toolkit._performance import apply_gradient_checkpointing
    from tl_toolkit._registry import registry

    class Unsupported(torch.nn.Linear):  # as transformers answers for a model class without support
        def activation_checkpointing_enable(self, **kwargs: object) -> None:
            raise ValueError("Unsupported does not support activation checkpointing.")

    lora = registry.get("strategy", "lora")({})
    assert apply_gradient_checkpointing(torch.nn.Linear(2, 2), "auto", lora) is False
    assert apply_gradient_checkpointing(Unsupported(2, 2), "auto", lora) is False
    with pytest.raises(UserError, match=r"train\.gradient_checkpointing: the Unsupported model cannot .* does not"):
        apply_gradient_checkpointing(Unsupported(2, 2), True, lora)
    assert apply_gradient_checkpointing(timm.create_model("resnet18", num_classes=3), "auto", lora) is False
    assert apply_gradient_checkpointing(timm.create_model("resnet18", num_classes=3), True, lora) is True


def test_gradient_checkpointing_timm_same_gradients() -> None:
    # BatchNorm updates its running statistics again when a block is recomputed, so a whole run differs
    # slightly; one step's gradients must not.
    import timm
    import torch
    import torch.nn.functional as F

    from tl_toolkit._performance import enable_gradient_checkpointing

    def grads(checkpointing: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = timm.create_model("resnet18", num_classes=3)
        if checkpointing:
            enable_gradient_checkpointing(model)
        x, y = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 1, 2, 0])
        F.cross_entropy(model(x), y).backward()
        return [p.grad for p in model.parameters()]

    plain, ckpt = grads(False), grads(True)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(plain, ckpt, strict=True))
    assert any(float(g.abs().sum()) > 0 for g in ckpt[:3])  # the stem, checkpointed away from the loss, learns


def test_gradient_checkpointing_needs_a_switch() -> None:
    import torch

    from tl_toolkit import UserError
    from tl_toolkit._performance import enable_gradient_checkpointing

    with pytest.raises(UserError, match=r"train\.gradient_checkpointing"):
        enable_gradient_checkpointing(torch.nn.Linear(2, 2))


def test_compile_is_handed_to_accelerate() -> None:
    from tl_toolkit import Recipe
    from tl_toolkit._engine import make_accelerator

    recipe = Recipe.model_validate({**DIGITS, "train": {**DIGITS["train"], "compile": True}})
    assert make_accelerator(recipe).state.dynamo_plugin.backend.value.lower() == "inductor"
    recipe = Recipe.model_validate(DIGITS)
    assert make_accelerator(recipe).state.dynamo_plugin.backend.value.lower() == "no"


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_optimizer_is_fused_and_steps_like_the_reference(device: str) -> None:
    import torch

    from tl_toolkit._performance import make_optimizer

    torch.manual_seed(0)
    weights = [torch.randn(64, 32), torch.randn(32)]
    ours = [torch.nn.Parameter(w.to(device)) for w in weights]
    reference = [torch.nn.Parameter(w.clone()) for w in weights]
    optimizer = make_optimizer(ours, 1e-2, torch.device(device))
    assert optimizer.defaults["fused"]
    plain = torch.optim.AdamW(reference, lr=1e-2, foreach=False)
    for _ in range(5):
        grads = [torch.randn_like(w) for w in weights]
        for params, opt in ((ours, optimizer), (reference, plain)):
            for p, g in zip(params, grads, strict=True):
                p.grad = g.to(p.device)
            opt.step()
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a.cpu(), b, atol=1e-5, rtol=1e-5)


def test_benchmark_suite_runs_the_gpu_path_on_cpu(tmp_path: Path) -> None:
    # `bench/gpu.py --tiny`: tl_toolkit's engine vs transformers.Trainer (BERT) and a timm + accelerate loop
    # (ResNet) with MFU, through the suite runner that writes the results file, keeping the day's earlier figures.
    from bench._common import write_results

    write_results({"overhead": {"rows": [{"model": "minilm", "ratio": 1.0}]}}, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--only", "gpu", "--results-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "=== summary ===" in proc.stdout and "MFU" in proc.stdout
    (path,) = tmp_path.glob("*.json")
    results = json.loads(path.read_text())["results"]
    assert results["overhead"]["rows"] == [{"model": "minilm", "ratio": 1.0}]
    rows = results["gpu"]["rows"]
    assert [r["side"] for r in rows] == ["tl_toolkit", "transformers.Trainer", "tl_toolkit", "timm + accelerate loop"]
    for row in rows:
        assert row["step_ms"] > 0 and 0 < row["mfu"] < 1
    assert rows[0]["vs_peer"] == pytest.approx(rows[1]["step_ms"] / rows[0]["step_ms"])


def test_cpu_bf16_is_read_from_the_cpu_flags() -> None:
    from tl_toolkit._performance import native_cpu_bf16

    assert native_cpu_bf16("flags : fpu sse avx2 avx512f avx512_bf16 amx_tile")
    assert native_cpu_bf16("flags : fpu amx_bf16 amx_tile")
    assert not native_cpu_bf16("flags : fpu sse avx2 avx512f avx512bw")  # emulated bf16 is slower than fp32


def test_auto_precision_trains_text_steps_in_bf16_and_evaluates_in_fp32(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """train.mixed_precision: auto on a CPU with native bf16: the training forward autocasts, evaluation does not."""
    import torch
    from tl_toolkit_plugins.bert import BertBackbone

    import tl_toolkit._performance

    seen: dict[bool, set[torch.dtype]] = {True: set(), False: set()}
    forward = BertBackbone.forward

    def spy(self: BertBackbone, model: Any, batch: dict[str, Any]) -> Any:
        logits = forward(self, model, batch)
        seen[model.training].add(logits.dtype)
        return logits

    monkeypatch.setattr(BertBackbone, "forward", spy)
    for native, train_dtype in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(tl_toolkit._performance, "native_cpu_bf16", lambda native=native: native)
        seen[True].clear()
        seen[False].clear()
        finetune(_text_recipe(tiny_bert_dir, tmp_path / f"auto-{native}", "full"), quiet=True)
        assert seen == {True: {train_dtype}, False: {torch.float32}}
    seen[True].clear()
    seen[False].clear()
    monkeypatch.setattr(tl_toolkit._performance, "native_cpu_bf16", lambda: True)
    finetune(_text_recipe(tiny_bert_dir, tmp_path / "no", "full"), train={"mixed_precision": "no"}, quiet=True)
    assert seen[True] == {torch.float32}  # an explicit "no" stays full precision
