"""The contract between the core and its plugins.

A **backbone** plugin (entry-point group ``tl_toolkit.backbones``) is a
subclass of :class:`Backbone`: it builds a model with a fresh classification
head, turns raw examples into tensors, names its head and its default LoRA
targets, and saves/loads the model in its ecosystem's format.

A **task** plugin (group ``tl_toolkit.tasks``, ``_task_api.py``) owns the labels, the
loss, the metrics and the answers of ``tl predict``; the backbone builds the head
kind it names (``Task.problem_type``).

A **strategy** plugin (group ``tl_toolkit.strategies``) is a subclass of
:class:`Strategy`: it decides what trains (freezing, peft wrapping, parameter
groups), may add a loss term, and may change how the trained model is saved.

What the engine calls, in order::

    backbone = BackbonePlugin(recipe.backbone, recipe.data)
    task = TaskPluginClass(recipe.data, recipe.train)                     # labels, loss, metrics
    head = Task(label_names, task.head)
    model = backbone.build(head, source)          # fresh head; `source` for init_from
    model = strategy.apply(model, backbone)       # freeze / wrap
    train = task.prepare(backbone, train_ds, train=True)                # backbone.preprocess + the task's part
    groups = strategy.parameter_groups(model, weight_decay)   # a group's "lr_scale" multiplies train.lr
    each epoch: strategy.on_epoch_start(model, epoch, epochs); model.train(); strategy.train_mode(model)
        backbone.train_mode(model)
        batch = backbone.train_batch(batch)       # e.g. mixup: soft labels
        logits = backbone.forward(model, batch)
        loss = task.loss(logits, batch["labels"]) + strategy.extra_loss(model, batch, logits)
    strategy.save(model, backbone, directory, head)

Nothing here imports torch: ``import tl_toolkit`` and ``tl list`` stay cheap.
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ._options import option_problems as _option_problems
from ._task_api import HEAD_KINDS, TaskPlugin

if TYPE_CHECKING:
    from collections.abc import Callable

    import datasets
    import torch
    from torch import nn

    from ._pretrain import PretrainContext
    from ._recipe import BackboneConfig, DataConfig
    from ._usage import Usage

__all__ = ["HEAD_KINDS", "PLUGIN_API_VERSION", "TASK_KINDS", "Backbone", "SourceModel", "Strategy", "Task", "check_plugin"]

#: Bumped when the plugin contract changes incompatibly.
PLUGIN_API_VERSION = 1


#: The kinds of head the built-in sentence-level tasks ask for: one label per example, any number of labels per
#: example (one sigmoid output each), or one real number (``label_names`` is then the target's column name).
#: A task plugin names its head kind (``TaskPlugin.head``, one of ``HEAD_KINDS``); a backbone lists those it
#: builds in ``Backbone.tasks``.
TASK_KINDS = ("classification", "multi_label", "regression")


@dataclass
class Task:
    """The target task a head is built for."""

    label_names: list[str]  # index -> human-readable label; the model predicts these indices
    problem_type: str = "classification"  # one of HEAD_KINDS: what the head's outputs mean

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}


@dataclass
class SourceModel:
    """A finished run's model used as the starting point of a transfer (``backbone.init_from``)."""

    model: nn.Module  # the source model as a plain module (adapters merged), head still the source's
    directory: Path  # the source run's ``model/`` directory
    label_names: list[str] = field(default_factory=list)  # the source task's labels
    backbone: Backbone | None = None  # the source's backbone, loaded: its preprocessing (tokenizer) is set up


class Backbone(ABC):
    """Base class of backbone plugins.

    An instance serves one run. The engine constructs it with the recipe's
    ``backbone`` and ``data`` sections, then calls :meth:`build` (training) or
    :meth:`load` (prediction) before anything else; those two set up the
    preprocessing state (tokenizer, image transforms) the other methods use.
    """

    #: "text" or "image": which data column the backbone reads.
    modality: ClassVar[str] = "text"
    #: A pydantic model of ``backbone.options``; None accepts any options.
    options_model: ClassVar[Any] = None
    #: The library whose plain loader reads what :meth:`save` writes (the model card's ``library_name``).
    library: ClassVar[str] = ""
    #: Formats :meth:`export` writes (``tl export --format``), e.g. ("hf", "onnx").
    export_formats: ClassVar[tuple[str, ...]] = ()
    #: The head kinds :meth:`build` can make (``Task.problem_type``, one of ``HEAD_KINDS``); a recipe whose
    #: task needs another is a ``tl validate`` error. A backbone listing ``token_classification`` reads a
    #: words column (a list of strings per example): its :meth:`preprocess` keeps the per-word ``labels``
    #: list and adds ``word_ids`` (the word index of each token, -1 for special tokens), and its
    #: :meth:`collate` pads list ``labels`` with -100.
    tasks: ClassVar[tuple[str, ...]] = TASK_KINDS
    #: Whether training steps may run under bf16 autocast on a CPU that computes bf16 natively
    #: (``train.mixed_precision: auto``); set it once accuracy has been measured equal that way.
    cpu_bf16: ClassVar[bool] = False

    def __init__(self, config: BackboneConfig, data: DataConfig) -> None:
        self.config = config
        self.data = data

    @classmethod
    def option_problems(cls, options: dict[str, Any]) -> list[str]:
        """Problems of ``backbone.options`` against :attr:`options_model`."""
        return _option_problems(cls.options_model, options, "backbone.options")

    @abstractmethod
    def build(self, task: Task, source: SourceModel | None = None) -> nn.Module:
        """Return a model with a freshly initialised head of ``task.num_labels`` outputs.

        Without ``source``: the architecture named by ``config.model``, with
        pretrained weights when ``config.pretrained`` is true. With ``source``:
        ``source.model`` with its head replaced.

        Raises:
            UserError: the model cannot be found or its weights do not fit.
        """

    @abstractmethod
    def preprocess(self, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        """Turn raw examples (text or image column, ``labels``) into model inputs.

        ``train`` selects training-time preprocessing (augmentation). The
        result yields dicts that :meth:`collate` batches; ``labels`` is kept.
        """

    @abstractmethod
    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Batch preprocessed examples (dynamic padding for text)."""

    @abstractmethod
    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Return the logits of ``model`` on ``batch`` (shape ``[batch, num_labels]``)."""

    def lengths(self, dataset: datasets.Dataset) -> list[int] | None:
        """Size of each preprocessed example (e.g. tokens), or None.

        With lengths, the engine batches training examples of similar size
        together (less padding), still in a random order; None keeps plain
        shuffled batches.
        """
        return None

    def padding_free_collate(self) -> Callable[[list[dict[str, Any]]], dict[str, Any]] | None:
        """A collate function for padding-free training batches, or None (the default) for none.

        Such a batch holds every example in one row, as transformers'
        ``DataCollatorWithFlattening`` writes it (``position_ids`` restarting at
        each example, the boundaries in ``cu_seq_lens_q``), and :meth:`forward`
        must score it. The engine then trains on plainly shuffled batches
        without padding (``train.padding_free``); evaluation keeps :meth:`collate`.
        Asked after :meth:`build`.
        """
        return None

    @abstractmethod
    def head_names(self, model: nn.Module) -> list[str]:
        """Qualified module names of the classification head (trained by every strategy)."""

    @abstractmethod
    def lora_targets(self, model: nn.Module) -> list[str]:
        """Default LoRA target modules (names or name suffixes peft understands)."""

    @abstractmethod
    def save(self, model: nn.Module, directory: Path, task: Task) -> None:
        """Save the full model and its preprocessing in the ecosystem's own format."""

    @abstractmethod
    def load(self, directory: Path) -> nn.Module:
        """Load a model written by :meth:`save` and set up preprocessing from it."""

    def export(self, model: nn.Module, directory: Path, fmt: str, task: Task) -> dict[str, Any] | None:
        """Write ``model`` (a plain module: LoRA adapters already merged) to ``directory`` in format ``fmt``.

        Optional: ``tl export`` calls it for the formats listed in
        :attr:`export_formats`. ONNX exports can call :func:`tl_toolkit.export_onnx`.

        Returns:
            Facts to record in the export's ``export.json`` (e.g. the ONNX check), or None.

        Raises:
            UserError: this backbone cannot export to ``fmt``.
        """
        from ._errors import UserError

        raise UserError(f"--format: backbone {self.plugin_name!r} cannot export to {fmt!r}")

    def usage(self, model_dir: Path, task: Task, fmt: str | None = None) -> Usage | None:
        """How a plain library loads ``model_dir``, for the model card and the export README.

        ``fmt`` None: ``model_dir`` is what :meth:`save` wrote (a run's model);
        otherwise what :meth:`export` wrote in format ``fmt``. The returned
        :class:`tl_toolkit.Usage` becomes the code block shown to users (the
        core adds peft adapters and the task's activation); the project's
        tests execute that block and compare it with ``tl predict``. None
        (the default) shows no code.
        """
        return None

    def adapters_load_plainly(self, model: nn.Module) -> bool:
        """Whether plain peft loads adapters onto the model :meth:`save` writes (default: True).

        When False (e.g. the plain library builds the model itself from a
        layout peft cannot wrap), adapter strategies save ``model`` merged.
        """
        return True

    def train_mode(self, model: nn.Module) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called after the strategy's ``train_mode`` at each epoch: e.g. keep BatchNorm statistics frozen."""

    def train_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Change a training batch before the forward pass: batch-level augmentation such as mixup.

        ``labels`` may become soft targets (probabilities, shape ``[batch, num_labels]``);
        the engine's cross-entropy takes either. Evaluation batches never come here.
        """
        return batch

    def split_words(self, text: str) -> list[tuple[str, tuple[int, int]]]:
        """Words of a raw text line with their character offsets, as the tokenizer would see them
        (``tl predict`` on a token-classification model). Default: runs of word characters, and each other
        non-space character alone."""
        import re

        return [(m.group(), m.span()) for m in re.finditer(r"\w+|[^\w\s]", text)]

    def model_problems(self) -> list[str]:
        """Problems of ``backbone.model`` found without loading it, one message each (``tl validate``).

        Optional: e.g. a model name the backbone's library does not know, with
        the nearest one, so a misspelling fails before data loading. Each
        message names the key: ``"backbone.model: ..."``. Default: none.
        """
        return []

    def offline_status(self) -> str | None:
        """Where ``backbone.model`` would come from now, for ``tl plan``'s files list (e.g. "in the hub cache").

        Optional: None lets ``tl plan`` say only whether it is a local directory.
        """
        return None

    def describe(self) -> str:
        """A short human-readable identity of the backbone (for reports)."""
        return f"{self.plugin_name}:{self.config.model}"

    # -- optional: what the feature cache, gradual unfreezing and layer-wise lr decay need --

    def features(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The input of the classification head on ``batch`` (the frozen backbone's features).

        With :meth:`head_forward`, this lets a frozen backbone run once per
        example (``train.feature_cache``). The default raises
        ``NotImplementedError``, which turns the cache off.
        """
        raise NotImplementedError

    def head_forward(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
        """The logits the head of ``model`` computes from :meth:`features`."""
        raise NotImplementedError

    def embed(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The pooled sentence (or image) embedding of each example in ``batch``, with gradients.

        The checkpoint's own pooling, shape ``[batch, dim]``: what contrastive
        strategies pull together and push apart. The default raises
        ``NotImplementedError``; so does a backbone whose model has no such
        embedding, with the reason and the fix as its message.
        """
        raise NotImplementedError(f"backbone {self.plugin_name!r} does not implement embed()")

    def normalize_head_input(self, model: nn.Module) -> bool:
        """Make ``model``'s head read :meth:`embed`'s vectors scaled to unit length, if the checkpoint's are.

        A sentence-transformers checkpoint that ends in ``Normalize``
        (all-MiniLM-L6-v2) compares sentences by direction alone; a head fitted
        on its sentence embeddings (the ``contrastive`` strategy's) should read
        them as the checkpoint gives them, and the saved model keeps the step.
        Returns whether the head now reads unit vectors; the default changes
        nothing and returns False.
        """
        return False

    def transfer_options(self, source: BackboneConfig, source_data: DataConfig) -> dict[str, Any]:
        """The ``backbone.options`` a target run of ``backbone.init_from`` takes from its source run.

        ``source`` and ``source_data`` are the source run's ``backbone`` and ``data``
        recipe sections, as it saved them. Return the preprocessing the transferred
        weights should see here, e.g. the source's crops and flips, adjusted for this
        run's data (``self.data``); the run takes each returned option its recipe
        leaves unset (and not already at that value), records it in ``recipe.yaml``
        and ``summary.json`` and gives the scratch baseline the same. The default
        returns nothing (every option keeps the recipe's value or its default).
        """
        return {}

    def preprocessing_key(self) -> str:
        """A string that changes whenever the eval-time preprocessing changes (part of the feature-cache key)."""
        return ""

    def augmentation(self) -> str | None:
        """Why training-time preprocessing is random (so features cannot be cached), or None when it is not."""
        return None

    def block_names(self, model: nn.Module) -> list[str]:
        """Qualified module names of the backbone's blocks, input side first, head excluded.

        Used by ``gradual-unfreeze`` and layer-wise learning-rate decay. The
        default raises ``NotImplementedError`` (those options are then refused).
        """
        raise NotImplementedError

    plugin_name: ClassVar[str] = ""  # set by the registry to the entry-point name


class Strategy(ABC):
    """Base class of fine-tuning strategy plugins.

    An instance serves one run and receives the recipe's ``strategy.options``.
    Only :meth:`apply` is required; the other hooks have sensible defaults.
    """

    #: A pydantic model of ``strategy.options``; None accepts any options.
    options_model: ClassVar[Any] = None

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    @classmethod
    def option_problems(cls, options: dict[str, Any]) -> list[str]:
        """Problems of ``strategy.options`` against :attr:`options_model`."""
        return _option_problems(cls.options_model, options, "strategy.options")

    @abstractmethod
    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        """Decide what trains: freeze parameters, wrap the model (peft), ...; return the model to train."""

    #: True when the strategy never trains a backbone parameter and keeps the backbone in eval mode:
    #: its features are then fixed and can be computed once (``train.feature_cache``).
    frozen_backbone: ClassVar[bool] = False

    #: True when the strategy would rather recompute the backbone's activations in the backward pass than keep
    #: them (``train.gradient_checkpointing: auto``, the default), as LoRA does: with the backbone's weights
    #: frozen, the kept activations are most of its memory, and a backward pass without weight gradients
    #: leaves room for the recomputation.
    recompute_activations: ClassVar[bool] = False

    def on_epoch_start(self, model: nn.Module, epoch: int, epochs: int) -> None:  # noqa: B027 - optional hook
        """Called before each epoch (0-based ``epoch`` of ``epochs``), with the unwrapped model.

        Phased strategies change ``requires_grad`` here (gradual unfreezing,
        probe then fine-tune). The optimizer holds whatever
        :meth:`parameter_groups` returned, so such a strategy returns every
        parameter it may ever train there; AdamW skips those without gradients.
        It must depend on ``epoch`` alone: a resumed run calls it afresh.
        """

    def train_mode(self, model: nn.Module) -> None:  # noqa: B027 - an optional hook, empty by default
        """Called after ``model.train()`` at each epoch: e.g. keep frozen BatchNorm in eval mode."""

    def pretrain(self, context: PretrainContext) -> dict[str, Any] | None:
        """A training stage of the strategy's own before the engine's loop (e.g. contrastive pairs), or None.

        Called after :meth:`apply`, with the model still unwrapped, and before the
        feature cache, which therefore sees the weights this stage leaves. The
        stage checkpoints into ``context.checkpoint_dir`` and, when
        ``context.resume``, continues from what it finds there.

        Returns:
            Facts for ``summary.json``'s ``pretrain`` (``seconds`` is added to ``train_seconds``), or None.

        Raises:
            UserError: the stage does not apply to this task or backbone.
        """
        return None

    def pretrain_plan(self, num_examples: int, task: Task) -> str | None:
        """What :meth:`pretrain` will do for ``num_examples`` training examples, in a line for ``tl plan``; None: nothing."""
        return None

    def loop_epochs(self, epochs: int) -> int:
        """How many of ``train.epochs`` the engine's loop runs (0: the strategy's stage did all the training)."""
        return epochs

    def parameter_groups(self, model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer parameter groups over the trainable parameters.

        The default applies weight decay to weight matrices and kernels, not
        to the parameters :meth:`no_decay` names (biases, normalisation). A group may carry
        ``"lr_scale"``: its learning rate is ``train.lr`` times that.
        """
        decay: list[Any] = []
        no_decay: list[Any] = []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if self.no_decay(name, param) else decay).append(param)
        groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
        return [g for g in groups if g["params"]]

    def no_decay(self, name: str, param: Any) -> bool:
        """Whether trainable parameter ``name`` is a scale or offset that weight decay must not shrink.

        The default: every parameter of fewer than two dimensions (biases,
        normalisation weights). Override it (calling ``super()``) to add scales
        stored with more dimensions, e.g. a (1, C, 1, 1) magnitude of a
        convolution; :meth:`parameter_groups` and
        :func:`tl_toolkit.layerwise_groups` consult it.
        """
        return param.ndim < 2

    def extra_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], logits: torch.Tensor
    ) -> torch.Tensor | None:
        """An extra loss term added to the task loss (regularisation, distillation), or None."""
        return None

    def save(self, model: nn.Module, backbone: Backbone, directory: Path, task: Task) -> None:
        """Save the trained model; the default saves the full model in the backbone's format."""
        backbone.save(model, directory, task)

    def load(self, backbone: Backbone, directory: Path, merge: bool = False) -> nn.Module:
        """Load a model written by :meth:`save`; ``merge`` asks for a plain module (adapters merged)."""
        return backbone.load(directory)

    plugin_name: ClassVar[str] = ""


_BASES: dict[str, type] = {"backbone": Backbone, "strategy": Strategy, "task": TaskPlugin}


def check_plugin(kind: str, obj: Any) -> str | None:
    """Return why ``obj`` is not a valid ``kind`` plugin, or None when it is."""
    base = _BASES[kind]
    if not (inspect.isclass(obj) and issubclass(obj, base)):
        return f"expected a subclass of tl_toolkit.{base.__name__}, got {obj!r}"
    missing = sorted(getattr(obj, "__abstractmethods__", ()))
    if missing:
        return f"{obj.__qualname__} does not implement {', '.join(missing)}"
    for name, member in inspect.getmembers(base, inspect.isfunction):
        if name.startswith("_"):
            continue
        impl = getattr(obj, name)
        want = list(inspect.signature(member).parameters)
        try:
            have = inspect.signature(impl).parameters
        except (TypeError, ValueError):
            continue
        takes_var = any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in have.values())
        extra_required = [
            n for n, p in have.items()
            if n not in want and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if extra_required or (not takes_var and not set(want) <= set(have)):
            return (
                f"{obj.__qualname__}.{name}{inspect.signature(impl)} does not match the contract "
                f"{base.__name__}.{name}{inspect.signature(member)}"
            )
    required = getattr(obj, "plugin_api", None)
    if required is not None and PLUGIN_API_VERSION not in _as_range(required):
        return f"it supports plugin API {required}, this tl_toolkit provides {PLUGIN_API_VERSION}"
    return None


def _as_range(spec: Any) -> range:
    if isinstance(spec, int):
        return range(spec, spec + 1)
    lo, hi = spec
    return range(lo, hi + 1)
