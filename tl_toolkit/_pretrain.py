"""A strategy's own training stage before the engine's loop (``Strategy.pretrain``).

Some strategies train in two stages: first the encoder on a signal of their
own (contrastive pairs of examples), then the head. The first stage gets a
:class:`PretrainContext` with everything a loop needs; the pipeline times it,
records its facts in ``summary.json`` and runs the engine for the epochs the
strategy leaves to it (``Strategy.loop_epochs``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets
    from accelerate import Accelerator
    from torch import nn

    from ._plugin_api import Backbone, Strategy, Task
    from ._recipe import Recipe

__all__ = ["PretrainContext", "run_pretrain"]


@dataclass
class PretrainContext:
    """What :meth:`Strategy.pretrain` receives."""

    recipe: Recipe  # the run's resolved recipe (seed, train.batch_size, train.checkpoint_every_steps, ...)
    backbone: Backbone  # set up by build(): collate() and embed() work
    model: nn.Module  # after Strategy.apply, unwrapped, on the CPU; the stage trains it in place
    train: datasets.Dataset  # the preprocessed training examples, with ``labels``
    task: Task  # the labels and the task kind (refuse kinds the stage cannot train)
    accelerator: Accelerator  # device, processes (average gradients with accelerator.reduce), autocast
    checkpoint_dir: Path  # the stage's own checkpoints; removed by --overwrite with the run's
    resume: bool  # continue from checkpoint_dir when it holds a checkpoint
    say: Callable[[str], None]  # progress for the user (silent under --quiet; main process only)


def run_pretrain(
    recipe: Recipe, backbone: Backbone, strategy: Strategy, model: nn.Module, train_ds: datasets.Dataset,
    task: Task, out: Path, accelerator: Accelerator, resume: bool, quiet: bool,
) -> tuple[dict[str, Any] | None, Recipe]:
    """Run the strategy's stage; return its facts and the recipe the engine's loop runs (its epochs)."""

    def say(message: str) -> None:
        if not quiet:
            accelerator.print(f"{recipe.name}: {message}")

    context = PretrainContext(recipe, backbone, model, train_ds, task, accelerator, out / "checkpoints" / "pretrain",
                              resume, say)
    facts = strategy.pretrain(context)
    epochs = strategy.loop_epochs(recipe.train.epochs)
    if epochs == recipe.train.epochs:
        return facts, recipe
    # A copy for the loop alone: recipe.yaml and summary.json keep the recipe as written.
    return facts, recipe.model_copy(update={"train": recipe.train.model_copy(update={"epochs": epochs})})
