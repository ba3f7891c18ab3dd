"""Cached frozen features: a frozen backbone runs once per example, not once per epoch.

When the strategy keeps the backbone frozen (``Strategy.frozen_backbone``) and
the backbone's preprocessing is deterministic, the backbone's features (the
head's input, from ``Backbone.features``) are computed once and stored on
disk; every epoch then trains the head on them through
``Backbone.head_forward``. The head is trained in place, so the saved model is
still the whole model and predict/eval/export see no difference.

A cache file is keyed by everything its contents depend on: the backbone's
identity, a hash of its frozen weights, its preprocessing, and the data
split's fingerprint; a change to any of them is a different file. Files live
under ``$TL_TOOLKIT_CACHE`` (default ``~/.cache/tl_toolkit/features``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from ._plugin_api import Backbone

if TYPE_CHECKING:
    import datasets
    import torch
    from accelerate import Accelerator
    from torch import nn

    from ._plugin_api import Strategy
    from ._recipe import Recipe

__all__ = ["CacheOutcome", "cache_blocker", "cache_dir", "use_cached_features"]

_FORMAT = 1  # bumped when what a cache file holds changes


def cache_dir() -> Path:
    """Where feature files live: ``$TL_TOOLKIT_CACHE`` or ``~/.cache/tl_toolkit/features``."""
    env = os.environ.get("TL_TOOLKIT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "tl_toolkit" / "features"


def cache_blocker(recipe: Recipe, backbone: Backbone, strategy: Strategy, model: nn.Module | None = None,
                  processes: int = 1) -> str | None:
    """Why the feature cache cannot serve this run, or None when it can.

    ``model`` (after ``strategy.apply``) lets the check confirm that only the
    head trains; without it the strategy's word is taken.
    """
    if recipe.train.feature_cache == "off":
        return "train.feature_cache is off"
    if not strategy.frozen_backbone:
        return f"strategy {recipe.strategy.plugin!r} trains the backbone"
    if type(backbone).features is Backbone.features or type(backbone).head_forward is Backbone.head_forward:
        return f"backbone {backbone.plugin_name!r} does not implement features() and head_forward()"
    reason = backbone.augmentation()
    if reason:
        return f"training-time augmentation makes features vary: {reason}"
    if processes > 1:
        return "several processes: each would need the whole cache, and the head's gradients bypass DDP"
    if model is not None:
        heads = tuple(backbone.head_names(model))
        trained = [n for n, p in model.named_parameters() if p.requires_grad and not n.startswith(heads)]
        if trained:
            return f"backbone parameters train ({trained[0]}, ...)"
    return None


@dataclass
class CacheOutcome:
    """What the pipeline trains on, and what the summary records about the cache."""

    backbone: Backbone
    train: Any
    eval: Any
    summary: dict[str, Any] = field(default_factory=dict)


def use_cached_features(
    recipe: Recipe, backbone: Backbone, strategy: Strategy, model: nn.Module,
    train_ds: datasets.Dataset, eval_ds: datasets.Dataset, accelerator: Accelerator, quiet: bool,
) -> CacheOutcome:
    """Swap the datasets for cached features and the backbone for one that runs the head only, when possible."""
    say = (lambda msg: None) if quiet else (lambda msg: accelerator.print(f"{recipe.name}: {msg}"))
    blocker = cache_blocker(recipe, backbone, strategy, model, accelerator.num_processes)
    if blocker:
        if strategy.frozen_backbone and recipe.train.feature_cache != "off":
            say(f"feature cache off: {blocker}")
        return CacheOutcome(backbone, train_ds, eval_ds, {"used": False, "reason": blocker})
    started = time.perf_counter()
    weights = weights_hash(model, backbone)
    try:
        splits = [_features_of(ds, split, weights, recipe, backbone, model, accelerator) for split, ds in
                  (("train", train_ds), ("eval", eval_ds))]
    except NotImplementedError as e:  # e.g. a head of several modules: no single point to cut the model at
        say(f"feature cache off: {backbone.plugin_name!r} cannot split off its head here ({e})")
        return CacheOutcome(backbone, train_ds, eval_ds, {"used": False, "reason": str(e)})
    seconds = time.perf_counter() - started
    hits = [hit for _, hit in splits]
    say(f"feature cache: {'loaded' if all(hits) else 'computed'} frozen features in {seconds:.1f}s ({cache_dir()})")
    head_only = cast(Backbone, _HeadOnFeatures(backbone))  # fit() needs only collate() and forward()
    return CacheOutcome(head_only, splits[0][0], splits[1][0],
                        {"used": True, "seconds": round(seconds, 3), "hits": hits})


def weights_hash(model: nn.Module, backbone: Backbone) -> str:
    """SHA-256 of the backbone's weights and buffers (the head excluded: it is what trains)."""
    import torch

    heads = tuple(f"{h}." for h in backbone.head_names(model))
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        if name.startswith(heads):
            continue
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _key(split: str, weights: str, ds: datasets.Dataset, backbone: Backbone) -> str:
    parts = {"format": _FORMAT, "backbone": backbone.describe(), "weights": weights,
             "preprocessing": backbone.preprocessing_key(), "data": ds._fingerprint, "split": split}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def _features_of(
    ds: datasets.Dataset, split: str, weights: str, recipe: Recipe, backbone: Backbone, model: nn.Module,
    accelerator: Accelerator,
) -> tuple[FeatureRows, bool]:
    """The split's features from the cache, computed and stored first on a miss; and whether it was a hit."""
    from safetensors.torch import load_file, save_file

    path = cache_dir() / f"{_key(split, weights, ds, backbone)}.safetensors"
    if path.is_file():
        stored = load_file(str(path))
        return FeatureRows(stored["features"], stored["labels"]), True
    features, labels = _compute(ds, recipe, backbone, model, accelerator)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({"features": features, "labels": labels}, str(tmp))
    tmp.replace(path)  # a concurrent writer of the same key writes the same bytes
    return FeatureRows(features, labels), False


def _compute(
    ds: datasets.Dataset, recipe: Recipe, backbone: Backbone, model: nn.Module, accelerator: Accelerator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the frozen backbone once over ``ds``, in eval mode, without gradients."""
    import torch
    from torch.utils.data import DataLoader

    order = _by_length(ds)
    loader = DataLoader(ds.select(order) if order is not None else ds, batch_size=max(128, recipe.train.batch_size),
                        collate_fn=backbone.collate, num_workers=recipe.train.num_workers)
    was_training = model.training
    model.eval().to(accelerator.device)
    chunks, labels = [], []
    with torch.inference_mode(), accelerator.autocast():
        for batch in loader:
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            chunks.append(backbone.features(model, batch).float().cpu())
            labels.append(batch["labels"].cpu())
    model.train(was_training)
    features, label_tensor = torch.cat(chunks), torch.cat(labels)
    if order is not None:  # back to the dataset's own order
        restore = torch.empty(len(order), dtype=torch.long)
        restore[torch.tensor(order)] = torch.arange(len(order))
        features, label_tensor = features[restore], label_tensor[restore]
    return features.contiguous(), label_tensor.contiguous()


def _by_length(ds: datasets.Dataset) -> list[int] | None:
    """Token sequences sorted by length, so a batch pads little (text only; None for other inputs)."""
    if "input_ids" not in ds.column_names:
        return None
    lengths = [len(ids) for ids in ds["input_ids"]]
    return sorted(range(len(lengths)), key=lengths.__getitem__)


class FeatureRows:
    """A map-style dataset of cached features and labels, as a DataLoader reads it."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor) -> None:
        self.features, self.labels = features, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"features": self.features[index], "labels": self.labels[index]}

    def __getitems__(self, indices: list[int]) -> list[dict[str, torch.Tensor]]:
        # One gather per batch instead of one per example; collate() receives the batch whole.
        import torch

        idx = torch.tensor(indices)
        return [{"features": self.features[idx], "labels": self.labels[idx]}]


class _HeadOnFeatures:
    """Stands in for the backbone in the training loop: batches of features go through the head alone."""

    cpu_bf16 = False  # the head alone: nothing for bf16 steps to speed up, and its runs stay exactly as measured

    def __init__(self, backbone: Backbone) -> None:
        self.inner = backbone

    def padding_free_collate(self) -> None:
        return None  # cached feature vectors carry no padding

    def collate(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        import torch

        if len(examples) == 1 and examples[0]["labels"].ndim == 1:  # a whole batch from __getitems__
            return examples[0]
        return {"features": torch.stack([e["features"] for e in examples]),
                "labels": torch.stack([e["labels"] for e in examples])}

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.inner.head_forward(model, batch["features"])

    def train_mode(self, model: nn.Module) -> None:
        self.inner.train_mode(model)

    def train_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return batch  # batch-level augmentation turns the cache off (Backbone.augmentation), so there is none here

    def lengths(self, dataset: Any) -> None:
        """Features have one size: nothing to group by length."""
        return None
