"""One process of the FSDP test (``tests/test_fsdp.py`` starts two with torchrun, gloo on CPU).

accelerate applies FSDP only on GPUs, so this drives the closest path that runs
on a CPU: the run's own model (loaded with ``load_model_dir`` from a finished
one-process run), sharded with FSDP2's ``fully_shard`` over two processes, one
optimizer step, the full state dict gathered the way accelerate's
``get_state_dict`` gathers it under FSDP2, and the pipeline's own unsharded
copy and save. Rank 0 writes the sharded model's logits for the test to
compare with the plain library's reload.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist


def main(run_dir: str, out: str) -> None:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.fsdp import fully_shard

    from tl_toolkit import load_model_dir, load_recipe
    from tl_toolkit._fsdp import unsharded_copy
    from tl_toolkit._pipeline import _save_model

    dist.init_process_group("gloo")
    torch.manual_seed(0)
    loaded = load_model_dir(run_dir)
    recipe = load_recipe(Path(run_dir) / "recipe.yaml")

    def build() -> torch.nn.Module:
        """The model as ``tl run`` builds it for training (the strategy's parameters trainable)."""
        from tl_toolkit import Task

        fresh = loaded.backbone.build(Task(loaded.label_names, "classification"), None)
        return loaded.strategy.apply(fresh, loaded.backbone)

    model = build()
    model.load_state_dict(loaded.model.state_dict())  # the finished run's weights
    model.train()
    for stack in [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]:
        for layer in stack:  # each transformer layer its own shard unit, as accelerate's auto-wrap does
            fully_shard(layer)
    fully_shard(model)
    texts = ["a gripping , funny film", "dull and far too long", "the cast is superb", "nothing works"]
    rows = loaded.backbone.preprocess(_dataset(texts, recipe.data.text_column), train=False).to_list()
    keys = ("input_ids", "attention_mask", "token_type_ids")
    batch = loaded.backbone.collate([{k: row[k] for k in keys if k in row} for row in rows])
    batch["labels"] = torch.tensor([0, 1, 0, 1])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    logits = loaded.backbone.forward(model, batch)
    torch.nn.functional.cross_entropy(logits, batch["labels"]).backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        after = loaded.backbone.forward(model, batch)
    full = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    copy = unsharded_copy(full, build)
    if dist.get_rank() == 0:
        from tl_toolkit import Task

        assert copy is not None
        _save_model(copy, loaded.backbone, loaded.strategy, recipe, Task(loaded.label_names, recipe.data.task),
                    Path(out))
        Path(out, "sharded_logits.json").write_text(json.dumps({"texts": texts, "logits": after.tolist()}))
    else:
        assert copy is None  # only the main process holds the gathered weights
    dist.barrier()
    dist.destroy_process_group()
    # Skip the interpreter's teardown: a gloo thread still joinable there ends in std::terminate (SIGABRT),
    # seen once in a fresh-clone CI run after both ranks had finished their work.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _dataset(texts: list[str], column: str):
    import datasets

    return datasets.Dataset.from_dict({column: texts})


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
