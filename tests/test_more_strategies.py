"""lp-ft, l2-sp, gradual-unfreeze, distill and layer-wise lr decay do what they claim, end to end on a tiny BERT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import SST2, text_overrides
from safetensors.torch import load_file

from tl_toolkit import RecipeError, finetune, load_model_dir
from tl_toolkit._registry import registry
from tl_toolkit._validate import validate

NEW = ["lp-ft", "l2-sp", "gradual-unfreeze", "distill"]


def _run(tiny_bert_dir: Path, out: Path, strategy: str, options: dict[str, Any] | None = None,
         *extra: str, epochs: int = 2) -> Any:
    recipe = {"name": strategy, "backbone": {"plugin": "bert", "model": "-"}, "data": {"format": "csv"},
              "strategy": {"plugin": strategy, "options": options or {}},
              "train": {"epochs": epochs, "batch_size": 16, "lr": 3e-3, "keep_checkpoints": epochs,
                        "weight_decay": 0.0}}
    return finetune(recipe, [*text_overrides(tiny_bert_dir, out, n_train=64, n_eval=32), *extra], quiet=True)


def _epoch_weights(out: Path, epochs: int) -> list[dict[str, torch.Tensor]]:
    return [load_file(str(out / "checkpoints" / f"epoch-{e}" / "model.safetensors")) for e in range(1, epochs + 1)]


def _moved(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], prefix: str) -> bool:
    keys = [k for k in before if k.startswith(prefix)]
    assert keys, prefix
    return any(not torch.equal(before[k], after[k]) for k in keys)


def _pretrained(tiny_bert_dir: Path) -> dict[str, torch.Tensor]:
    return {f"bert.{k}": v for k, v in load_file(str(tiny_bert_dir / "model.safetensors")).items()}


def test_new_strategies_options_are_validated(tiny_bert_dir: Path, tmp_path: Path) -> None:
    # Listed by tl list: test_cli.test_list_shows_every_declared_plugin_with_its_distribution_as_text_and_json.
    bad = {"lp-ft": {"probe_epochs": 0}, "l2-sp": {"alpha": -1}, "gradual-unfreeze": {"blocks_per_epochs": 1},
           "distill": {"teacher": str(tmp_path)}, "full": {"layer_decay": 1.5}, "lora": {"layer_decay": 0}}
    for strategy, options in bad.items():
        recipe = {"name": "v", "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
                  "data": {"format": "csv", "train": str(SST2 / "train.tsv")},
                  "strategy": {"plugin": strategy, "options": options}}
        with pytest.raises(RecipeError) as e:
            validate(recipe)
        key = next(iter(options))
        assert f"strategy.options.{key}" in str(e.value), strategy
        if strategy == "distill":
            assert "is not a finished run (no saved model in it); train the teacher first" in str(e.value)


def test_gradual_unfreeze_adds_one_block_per_epoch_from_the_top(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gu"
    _run(tiny_bert_dir, out, "gradual-unfreeze", epochs=3)
    start, *epochs = [_pretrained(tiny_bert_dir), *_epoch_weights(out, 3)]
    # blocks of the tiny BERT, input side first: embeddings, layer.0, layer.1, pooler
    order = ["bert.pooler.", "bert.encoder.layer.1.", "bert.encoder.layer.0.", "bert.embeddings."]
    previous = start
    for epoch, weights in enumerate(epochs):  # epoch 0: head only; epoch e: head + the top e blocks
        moved = [p for p in order if _moved(previous, weights, p)]
        assert moved == order[:epoch], f"epoch {epoch + 1}"
        assert _moved(epochs[epoch - 1], weights, "classifier.") or epoch == 0
        previous = weights


def test_lp_ft_trains_the_head_before_the_body_moves(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "lpft"
    _run(tiny_bert_dir, out, "lp-ft", {"probe_epochs": 1})
    probed, tuned = _epoch_weights(out, 2)
    start = _pretrained(tiny_bert_dir)
    assert not _moved(start, probed, "bert.")  # the probe: the body as pretrained
    optimizer = torch.load(out / "checkpoints" / "epoch-1" / "optimizer.bin", weights_only=True)
    assert len(optimizer["state"]) == 2  # only the head's weight and bias took optimizer steps
    assert _moved(probed, tuned, "bert.encoder.") and _moved(probed, tuned, "classifier.")


def _drift(tiny_bert_dir: Path, model: torch.nn.Module) -> float:
    start = _pretrained(tiny_bert_dir)
    state = model.state_dict()
    return sum(float(((state[k].cpu() - v) ** 2).sum()) for k, v in start.items() if k in state)


def test_l2_sp_penalty_starts_at_zero_and_pulls_toward_the_start(tiny_bert_dir: Path, tmp_path: Path) -> None:
    from tl_toolkit import BackboneConfig, DataConfig, Task

    backbone = registry.get("backbone", "bert")(BackboneConfig(plugin="bert", model=str(tiny_bert_dir)),
                                                DataConfig(format="csv", train="-"))
    strategy = registry.get("strategy", "l2-sp")({"alpha": 1.0, "beta": 0.0})
    model = strategy.apply(backbone.build(Task(["0", "1"])), backbone)
    assert float(strategy.penalty().detach()) == 0.0
    with torch.no_grad():
        model.bert.pooler.dense.weight.add_(0.1)
    expected = 0.5 * 0.1**2 * model.bert.pooler.dense.weight.numel()
    assert float(strategy.penalty().detach()) == pytest.approx(expected, rel=1e-4)

    pulled = _run(tiny_bert_dir, tmp_path / "l2sp", "l2-sp", {"alpha": 5.0})
    free = _run(tiny_bert_dir, tmp_path / "full", "full")
    assert _drift(tiny_bert_dir, pulled.model) < 0.5 * _drift(tiny_bert_dir, free.model)


def test_layer_decay_scales_each_block_learning_rate(tiny_bert_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "llrd"
    _run(tiny_bert_dir, out, "full", {"layer_decay": 0.5}, "train.scheduler=constant", epochs=1)
    groups = torch.load(out / "checkpoints" / "epoch-1" / "optimizer.bin", weights_only=True)["param_groups"]
    # head at lr; pooler, layer.1, layer.0, embeddings at lr * 0.5, 0.25, 0.125, 0.0625
    assert sorted({round(g["lr"] / 3e-3, 6) for g in groups}) == [0.0625, 0.125, 0.25, 0.5, 1.0]


def _kl_to(teacher: Any, student: torch.nn.Module) -> float:
    lines = [ln.split("\t")[0] for ln in (SST2 / "dev.tsv").read_text().splitlines()[1:65]]
    batch = teacher.backbone.tokenizer(lines, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        t = teacher.model(**batch).logits.log_softmax(-1)
        s = student.cpu().eval()(**batch).logits.log_softmax(-1)
    return float(torch.nn.functional.kl_div(s, t, log_target=True, reduction="batchmean"))


def test_distill_student_moves_toward_the_teacher(tiny_bert_dir: Path, tmp_path: Path) -> None:
    teacher_run = _run(tiny_bert_dir, tmp_path / "teacher", "full")
    teacher = load_model_dir(teacher_run.output_dir)
    scratch = ["backbone.pretrained=false", "seed=1"]
    taught = _run(tiny_bert_dir, tmp_path / "student", "distill",
                  {"teacher": str(teacher_run.output_dir), "alpha": 5.0, "temperature": 2.0}, *scratch)
    alone = _run(tiny_bert_dir, tmp_path / "alone", "full", None, *scratch)
    assert _kl_to(teacher, taught.model) < 0.5 * _kl_to(teacher, alone.model)
