"""Source -> target transfer from adapter runs: the merged adapters are the target's starting point."""

from __future__ import annotations

from pathlib import Path

import torch
from conftest import SST2

from tl_toolkit import finetune, load_model_dir


def test_transfer_from_a_lora_text_run(tmp_path: Path, tiny_bert_dir: Path) -> None:
    data = {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
            "text_column": "sentence", "max_train_samples": 48, "max_eval_samples": 16, "max_length": 48}
    source = finetune(
        {"name": "src", "output_dir": str(tmp_path / "src"), "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
         "data": data, "strategy": {"plugin": "lora", "options": {"r": 4}},
         "train": {"epochs": 1, "batch_size": 16, "lr": 5e-2}},
        quiet=True,
    )
    target = finetune(
        {"name": "tgt", "output_dir": str(tmp_path / "tgt"),
         "backbone": {"plugin": "bert", "model": str(tiny_bert_dir), "init_from": str(source.output_dir)},
         "data": data, "strategy": {"plugin": "head-only"}, "train": {"epochs": 1, "batch_size": 16}},
        quiet=True,
    )
    merged = load_model_dir(source.output_dir, merge=True).model.state_dict()
    body = {k: v for k, v in target.model.state_dict().items() if not k.startswith("classifier.")}
    query = "bert.encoder.layer.0.attention.self.query.weight"
    for key, value in body.items():
        torch.testing.assert_close(value.cpu(), merged[key].cpu(), msg=f"{key} is not the merged source's")
    # The adapters moved the query projection away from the pretrained encoder's.
    from transformers import AutoModel

    pretrained = AutoModel.from_pretrained(tiny_bert_dir).state_dict()
    assert not torch.allclose(body[query].cpu(), pretrained[query.removeprefix("bert.")])
