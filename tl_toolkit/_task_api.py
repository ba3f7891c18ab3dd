"""The task contract: what differs between tasks (``data.task``), as a plugin.

A **task** plugin (entry-point group ``tl_toolkit.tasks``) is a subclass of
:class:`TaskPlugin`. The core reads and checks the data, trains and evaluates;
the task decides everything that depends on what a label *is*:

- the labels: :meth:`~TaskPlugin.encode` turns the raw label column into a
  ``labels`` column and the label names saved with the model, and says how eval
  data is held out (:meth:`~TaskPlugin.hold_out`) and capped (:meth:`~TaskPlugin.limit`);
- the head: :attr:`~TaskPlugin.head` names the kind of head the backbone builds
  (a backbone lists the kinds it can build in ``Backbone.tasks``);
- the loss, the metrics and which way each improves (``train.best_metric``);
- its sections of ``summary.json`` and ``report.md``, and the model card's tag;
- the answers of ``tl predict``.

What the core calls, in order::

    task = TaskPlugin(recipe.data, recipe.train)
    train, evals, label_names = task.encode(train_raw, eval_raw_or_None)
    train, evals = task.hold_out(train, fraction, seed)      # when there is no eval file
    train = task.limit(train)                                # after the seeded shuffle
    task.setup(label_names, train["labels"])                 # also on loading a finished run
    model = backbone.build(Task(label_names, task.head))
    train = task.prepare(backbone, train, train=True)        # tokenise / align
    loss = task.loss(logits, batch["labels"])
    metrics = task.metrics(logits_batches, label_batches)    # + "loss" from the core
    summary |= task.summary(details); report += task.report_lines(details, out_dir, title)
    rows = task.prediction_inputs(ds, backbone); ... task.answer(logits[i], labels[i], row)

Nothing here imports torch: ``tl list`` stays cheap.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import datasets
    import torch

    from ._plugin_api import Backbone
    from ._recipe import DataConfig, TrainConfig

__all__ = ["HEAD_KINDS", "TaskPlugin"]

#: The kinds of head a backbone may build (``Task.problem_type``): a vector of ``num_labels`` scores per
#: example read as one class, as independent labels or as real values; or one such vector per token.
HEAD_KINDS = ("classification", "multi_label", "regression", "token_classification")


class TaskPlugin(ABC):
    """Base class of task plugins; an instance serves one run (or one loaded model).

    Constructed with the recipe's ``data`` section and, when training, its
    ``train`` section (None when a finished run is loaded for ``tl predict``).
    ``data.task_options`` are the task's own options, checked against
    :attr:`options_model`.
    """

    #: The kind of head the backbone builds for this task, one of :data:`HEAD_KINDS`.
    head: ClassVar[str] = "classification"
    #: A pydantic model of ``data.task_options``; None accepts any options.
    options_model: ClassVar[Any] = None
    #: Each metric :meth:`metrics` reports -> ``"max"`` or ``"min"``: which way it improves
    #: (``train.best_metric`` may name any of them, or ``loss``).
    metric_goals: ClassVar[dict[str, str]] = {}
    #: Length-grouped training batches (``train.group_by_length``) are drawn from groups of this many
    #: batches sorted by length; ``train.length_group_batches`` overrides it. Smaller groups pad more
    #: but mix more kinds of example into a batch.
    length_group_batches: ClassVar[int] = 50
    #: Train on padding-free batches where the backbone offers them (``Backbone.padding_free_collate``):
    #: plainly shuffled batches at the cost of length-grouped ones. ``train.padding_free`` overrides it.
    padding_free: ClassVar[bool] = False
    #: The Hugging Face pipeline tag of the model card, by backbone modality.
    pipeline_tags: ClassVar[dict[str, str]] = {"text": "text-classification", "image": "image-classification"}
    plugin_name: ClassVar[str] = ""  # set by the registry to the entry-point name

    def __init__(self, data: DataConfig, train: TrainConfig | None = None) -> None:
        self.data = data
        self.train = train
        self.options: Any = (self.options_model.model_validate(data.task_options) if self.options_model
                             else dict(data.task_options))
        self.label_names: list[str] = []
        #: Set by the engine: True while the training batches are padding-free rows (every example of a
        #: batch in one row of ``labels``), so :meth:`loss` cannot count examples by rows.
        self.packed = False

    @classmethod
    def option_problems(cls, options: dict[str, Any]) -> list[str]:
        """Problems of ``data.task_options`` against :attr:`options_model`."""
        from ._options import option_problems

        return option_problems(cls.options_model, options, "data.task_options")

    # -- labels ----------------------------------------------------------------------------------------------------

    @abstractmethod
    def encode(self, train: datasets.Dataset, evals: datasets.Dataset | None) -> tuple[
        datasets.Dataset, datasets.Dataset | None, list[str]
    ]:
        """Add the ``labels`` column the model trains on to both splits; return them and the label names.

        The label column is ``data.label_column``. Columns whose names start with ``_`` may be added for
        :meth:`hold_out` and :meth:`limit`; the core drops them.

        Raises:
            UserError: a missing or unreadable label, naming the file, column and row.
        """

    def hold_out(self, train: datasets.Dataset, fraction: float, seed: int) -> tuple[
        datasets.Dataset, datasets.Dataset
    ]:
        """Split ``fraction`` of the training examples off as eval data (no ``data.eval``): a seeded random split."""
        split = train.train_test_split(test_size=fraction, seed=seed)
        return split["train"], split["test"]

    def limit(self, train: datasets.Dataset) -> datasets.Dataset:
        """Cap the (shuffled) training examples beyond ``data.max_train_samples``; none by default."""
        return train

    def setup(self, label_names: list[str], train_labels: list[Any] | None = None) -> None:
        """Fix the label names (and anything drawn from the training labels, such as class weights).

        Called after :meth:`encode` when training, and with the saved names when a finished run is loaded.

        Raises:
            UserError: a training option that does not fit the labels.
        """
        self.label_names = list(label_names)

    def prepare(self, backbone: Backbone, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        """Model inputs for ``dataset``: the backbone's preprocessing, then whatever the task adds."""
        return backbone.preprocess(dataset, train=train)

    # -- training and evaluation ------------------------------------------------------------------------------------

    @abstractmethod
    def loss(self, logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
        """The task loss of a batch; ``reduction="none"`` gives one value per example."""

    @abstractmethod
    def metrics(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, float]:
        """The metrics over all held-out batches (their logits and labels, on the CPU); ``loss`` is added by the
        core."""

    def details(self, logits: list[torch.Tensor], labels: list[torch.Tensor]) -> dict[str, Any]:
        """What the report and summary show beyond the metrics (per-class scores, predictions); none by default."""
        return {}

    def summary(self, details: dict[str, Any]) -> dict[str, Any]:
        """This task's keys of ``summary.json`` (e.g. ``per_class``), from :meth:`details`."""
        return {}

    def report_lines(self, details: dict[str, Any], out_dir: Path, title: str) -> list[str]:
        """This task's Markdown sections of ``report.md`` (figures may be written into ``out_dir``)."""
        return []

    # -- prediction -------------------------------------------------------------------------------------------------

    def prediction_inputs(self, dataset: datasets.Dataset, backbone: Backbone) -> datasets.Dataset:
        """``tl predict``'s raw inputs as examples :meth:`prepare` takes (with placeholder ``labels``).

        Columns whose names start with ``_`` reach :meth:`answer` in ``example`` but not the backbone."""
        placeholder: Any = self.placeholder_label()
        return dataset.add_column("labels", [placeholder] * len(dataset))

    def placeholder_label(self) -> Any:
        """The ``labels`` value of an example to predict: 0 by default."""
        return 0

    @abstractmethod
    def answer(self, logits: torch.Tensor, labels: torch.Tensor, example: dict[str, Any], top_k: int = 1) -> dict[
        str, Any
    ]:
        """``tl predict``'s answer for one example: its logits, its (placeholder) labels after :meth:`prepare`,
        and the raw example from :meth:`prediction_inputs`. The core adds ``input``."""

    def pipeline_tag(self, modality: str) -> str:
        """The model card's pipeline tag for a backbone of ``modality``."""
        return self.pipeline_tags.get(modality, "classification")
