"""``resnet``: timm ResNets (and any other timm classifier) for image classification.

``backbone.model`` is a timm model name (``resnet18`` ... ``resnet101``,
``resnet50d``, ``resnext50_32x4d``, ``wide_resnet50_2``, any ``timm.list_models()``
entry) or a directory saved by timm (``config.json`` + ``model.safetensors``).
Weights come from the hub (``pretrained: true``, online), a local file
(``backbone.weights``), a previous run (``init_from``), or nowhere (random
initialisation). The model's own data config (input size, mean/std, crop)
drives preprocessing through timm's transforms; ``data.image_size`` overrides
the size for small images. Models are saved as timm does for the hub
(``config.json`` + ``model.safetensors``) and load back with
``timm.create_model("local-dir:<model_dir>", pretrained=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tl_toolkit import (
    Backbone,
    SourceModel,
    Task,
    Usage,
    UserError,
    export_onnx,
    open_image,
    read_state_dict,
    suggest,
    undecoded,
)

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn

    from tl_toolkit import BackboneConfig, DataConfig

__all__ = ["ResNetBackbone", "ResNetOptions"]


class ResNetOptions(BaseModel):
    """Options of the ``resnet`` backbone (``backbone.options``)."""

    model_config = ConfigDict(extra="forbid")

    hflip: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip in training (0 for digits)")
    scale: tuple[float, float] = Field((0.5, 1.0), description="random-resized-crop area range in training")
    augment: bool = Field(True, description="false: training images get the eval transform")
    auto_augment: str | None = Field(
        None, description="timm auto-augment policy, e.g. 'rand-m9-mstd0.5' (RandAugment) or 'augmix-m5'"
    )
    mixup: float = Field(0.0, ge=0, description="mixup alpha for training batches; 0: off (timm Mixup)")
    cutmix: float = Field(0.0, ge=0, description="cutmix alpha for training batches; 0: off; with mixup, one of the two per batch")
    freeze_bn: bool = Field(
        False, description="keep BatchNorm running statistics fixed while fine-tuning (tiny data, small batches)"
    )
    lora_stages: list[str] = Field(
        ["layer3", "layer4"], description="stages whose 3x3 convolutions get LoRA adapters by default"
    )


class ResNetBackbone(Backbone):
    """timm ResNets for image classification (any timm classifier name works)."""

    modality = "image"
    options_model = ResNetOptions
    library = "timm"
    export_formats = ("timm", "onnx")

    @property
    def options(self) -> ResNetOptions:
        return ResNetOptions.model_validate(self.config.options)

    def build(self, task: Task, source: SourceModel | None = None) -> nn.Module:
        import torch

        if source is not None:
            model = source.model
            model.reset_classifier(task.num_labels)
            _forget_labels(model)  # the source's label facts describe its head, which is gone
        else:
            model = self._create(task.num_labels)
            if self.config.weights:
                self._load_weights(model, Path(self.config.weights))
        self._setup_transforms(model)
        if torch.cuda.is_available():
            # NHWC convolutions are faster on GPUs (tensor cores); forward() feeds NHWC batches.
            model = model.to(memory_format=torch.channels_last)
            # Every batch has the recipe's image size, so cuDNN's per-shape algorithm search pays off.
            torch.backends.cudnn.benchmark = True
        return model

    def _create(self, num_labels: int) -> nn.Module:
        """The architecture of ``backbone.model`` (a timm name or a timm-saved directory), with a fresh head."""
        import timm

        name = self.config.model
        if Path(name).is_dir():
            # A directory saved by timm (save_pretrained/push_to_hub format): its config names the architecture.
            if not (Path(name) / "config.json").is_file():
                raise UserError(f"backbone.model: {name!r} is a directory without config.json; give a "
                                f"directory saved by timm (config.json + model.safetensors) or a timm model name")
            name = f"local-dir:{name}"
        elif not timm.is_model(name):
            raise UserError(self.model_problems()[0])
        pretrained = self.config.pretrained and not self.config.weights
        try:
            model = timm.create_model(name, pretrained=pretrained)
        except Exception as e:  # hub download failures come in many types
            raise UserError(
                f"backbone.model: cannot load pretrained weights for {self.config.model!r} "
                f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); offline, give "
                f"backbone.weights: <file.safetensors>, init_from a previous run, or pretrained: false"
            ) from None
        model.reset_classifier(num_labels)  # a fresh head, whatever the weights' head was trained for
        _forget_labels(model)
        return model

    def _load_weights(self, model: nn.Module, path: Path) -> None:
        state = read_state_dict(path)
        head = model.pretrained_cfg.get("classifier", "fc")
        own = model.state_dict()
        # The file's head was trained for other labels: it is dropped, a fresh head is fitted.
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
        missing = _weights_first([k for k in own if k not in state and not k.startswith(f"{head}.")])
        unexpected = _weights_first([k for k in state if k not in own])
        shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in _weights_first([k for k in state if k in own and state[k].shape != own[k].shape])]
        if missing or unexpected or shapes:
            parts = [f"{len(keys)} {what}, e.g. {keys[:4]}" for what, keys in
                     (("missing", missing), ("unexpected", unexpected), ("with another shape", shapes)) if keys]
            raise UserError(
                f"backbone.weights: {path} does not fit {self.config.model!r}: {'; '.join(parts)}. "
                f"Is it a checkpoint of another architecture?"
            )
        model.load_state_dict(state, strict=False)

    def _setup_transforms(self, model: nn.Module) -> None:
        """timm's own eval and train transforms for the model's data config, and the batch mixer."""
        from timm.data import Mixup, create_transform, resolve_data_config

        cfg = resolve_data_config({}, model=model)
        if self.data.image_size:
            # Small images: resize the whole image, no centre crop that would cut the object.
            cfg.update(input_size=(3, self.data.image_size, self.data.image_size), crop_pct=1.0)
            # The model in memory says so too, as the saved one does: timm's resolve_data_config(model=...) agrees.
            model.pretrained_cfg = {**model.pretrained_cfg, "input_size": cfg["input_size"], "crop_pct": 1.0}
        self.data_config = cfg
        opts = self.options
        self.eval_transform = create_transform(**cfg, is_training=False)
        self.train_transform = self.eval_transform
        if opts.augment:
            try:
                self.train_transform = create_transform(**cfg, is_training=True, scale=opts.scale, hflip=opts.hflip,
                                                        color_jitter=0.0, auto_augment=opts.auto_augment)
            except (AssertionError, ValueError, KeyError) as e:  # timm asserts on a policy it does not know
                raise UserError(
                    f"backbone.options.auto_augment: timm cannot build policy {opts.auto_augment!r} ({e}); "
                    f"e.g. 'rand-m9-mstd0.5' (RandAugment), 'augmix-m5', 'original', or null"
                ) from None
        self.mixup = (
            # Label smoothing stays with the engine's loss (train.label_smoothing): the mixer makes plain soft targets.
            Mixup(mixup_alpha=opts.mixup, cutmix_alpha=opts.cutmix, label_smoothing=0.0,
                  num_classes=model.num_classes)
            if opts.mixup or opts.cutmix
            else None
        )

    def preprocess(self, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        transform = self.train_transform if train else self.eval_transform
        column = self.data.image_column

        def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            # Runs in DataLoader workers: images are decoded (and checked) there, grayscale becomes RGB.
            out: dict[str, list[Any]] = {"pixel_values": [transform(open_image(v)) for v in batch[column]]}
            if "labels" in batch:
                out["labels"] = batch["labels"]
            return out

        return undecoded(dataset, column).with_transform(apply)

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        return {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
        }

    def train_batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Mixup/cutmix a training batch (as timm's train.py does, after the batch reaches the device)."""
        if self.mixup is None or len(batch["labels"]) % 2:
            # timm's Mixup pairs each image with its mirror in the batch: an odd last batch goes unmixed.
            return batch
        pixels, targets = self.mixup(batch["pixel_values"], batch["labels"])
        return {**batch, "pixel_values": pixels, "labels": targets}

    def train_mode(self, model: nn.Module) -> None:
        if self.options.freeze_bn:
            # A few small batches give noisy statistics: keep the ones the weights were trained with.
            from torch.nn.modules.batchnorm import _BatchNorm

            for module in model.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        import torch

        pixels = batch["pixel_values"]
        if pixels.is_cuda:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return model(pixels)

    def model_problems(self) -> list[str]:
        import timm

        name = self.config.model
        if Path(name).is_dir() or timm.is_model(name):
            return []
        return [f"backbone.model: unknown timm model {name!r}.{suggest(name, timm.list_models('*res*'))} "
                f"See timm.list_models(), or give a directory saved by timm"]

    def offline_status(self) -> str | None:
        name = self.config.model
        if Path(name).is_dir():
            return "local directory saved by timm"
        if self.config.weights or not self.config.pretrained:
            return "architecture only, nothing to download"
        from timm.models import get_pretrained_cfg

        cfg = get_pretrained_cfg(name)
        return _hub_status(getattr(cfg, "hf_hub_id", None) if cfg else None, "model.safetensors")

    def head_names(self, model: nn.Module) -> list[str]:
        return [model.pretrained_cfg.get("classifier", "fc")]

    def lora_targets(self, model: nn.Module) -> list[str]:
        """The 3x3 convolutions of ``lora_stages``; for ResNeXt, whose 3x3 are grouped, the 1x1 ones.

        peft's conv LoRA cannot merge into a grouped convolution (nor take a rank
        that is not a multiple of the groups), so grouped ones are never targets.
        """
        from torch import nn

        stages = tuple(f"{s}." for s in self.options.lora_stages)
        convs = [(name, m) for name, m in model.named_modules()
                 if isinstance(m, nn.Conv2d) and m.groups == 1 and name.startswith(stages)]
        targets = [name for name, m in convs if m.kernel_size == (3, 3)] or [name for name, _ in convs]
        if not targets:
            raise UserError(
                f"backbone.options.lora_stages: {self.options.lora_stages} hold no convolutions in "
                f"{self.config.model!r}; name its stages (e.g. {_stage_names(model)}) or set "
                f"strategy.options.target_modules"
            )
        return targets

    def features(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # timm's split of every classifier: pooled pre-logits features, then the classifier.
        return model.forward_head(model.forward_features(batch["pixel_values"]), pre_logits=True)

    def head_forward(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
        return model.get_classifier()(features)

    def transfer_options(self, source: BackboneConfig, source_data: DataConfig) -> dict[str, Any]:
        """The source run's crops and flips; its crop range narrowed by the square of the size ratio.

        A random-resized crop of area ``s`` zooms an object by ``1/sqrt(s)``. Images
        ``k`` times larger than the source's already show objects ``k`` times larger
        than the transferred filters learned them, so the smallest crop area grows by
        ``k**2`` (at most the whole image): a CIFAR-10 source at 32 px with crops of
        60-100 % gives a 64 px target whole images, flipped. On the issue-23 proxy
        (``bench/vision_shift.py``, three seeds) that raised the transferred accuracy
        from 0.663 to 0.680 and the scratch baseline's, fed the same way, from 0.624 to 0.629.
        """
        try:  # a source saved by another version may hold options this one does not know
            theirs = ResNetOptions.model_validate({k: v for k, v in source.options.items()
                                                   if k in ResNetOptions.model_fields})
        except ValidationError:
            return {}
        mine, before = _input_size(self.config.model, self.data), _input_size(source.model, source_data)
        ratio = mine / before if mine and before else 1.0
        low = min(1.0, theirs.scale[0] * ratio**2)
        return {"scale": [round(low, 4), max(low, theirs.scale[1])], "hflip": theirs.hflip,
                "augment": theirs.augment, "auto_augment": theirs.auto_augment}

    def preprocessing_key(self) -> str:
        return f"{self.data.image_column}:{self.eval_transform}"

    def augmentation(self) -> str | None:
        opts = self.options
        if opts.augment:
            return (f"backbone.options.augment is on (random-resized crop {tuple(opts.scale)}, flip p={opts.hflip}); "
                    f"set it to false to cache features")
        if self.mixup is not None:
            return "backbone.options.mixup / cutmix mix the images of each batch; set them to 0 to cache features"
        return None

    def block_names(self, model: nn.Module) -> list[str]:
        # timm ResNets register their modules in forward order: stem (conv1, bn1), layer1..layer4, head.
        head = set(self.head_names(model))
        return [n for n, m in model.named_children() if n not in head and any(True for _ in m.parameters())]

    def save(self, model: nn.Module, directory: Path, task: Task) -> None:
        from timm.models import save_for_hf

        cfg = self.data_config
        save_for_hf(
            model,
            str(directory),
            model_config={"label_names": task.label_names},
            safe_serialization=True,
            data_config={"input_size": cfg["input_size"], "crop_pct": cfg["crop_pct"]},
        )

    def export(self, model: nn.Module, directory: Path, fmt: str, task: Task) -> dict[str, Any] | None:
        """``timm``: what :meth:`save` writes (plain timm loads it); ``onnx``: the graph and its preprocessing."""
        import json

        import torch

        if fmt == "timm":
            self.save(model, directory, task)
            return None
        cfg = self.data_config
        example = {"pixel_values": torch.randn(2, *cfg["input_size"])}
        report = export_onnx(self, model, example, directory / "model.onnx", {"pixel_values": {0: "batch"}})
        preprocessing = {k: cfg[k] for k in ("input_size", "interpolation", "mean", "std", "crop_pct") if k in cfg}
        (directory / "preprocessing.json").write_text(json.dumps(preprocessing, indent=2) + "\n")
        return report

    def usage(self, model_dir: Path, task: Task, fmt: str | None = None) -> Usage | None:
        """timm's local-dir loader, and its eval transform for the saved data config (what ``tl predict`` uses)."""
        if fmt not in (None, "timm"):  # the ONNX graph: preprocessing.json says how to feed it
            return None
        return Usage(
            library="timm",
            imports=("import timm", "from PIL import Image"),
            load=('model = timm.create_model(f"local-dir:{model_dir}", pretrained=True)',
                  "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))"),
            labels='model.pretrained_cfg["label_names"]',
            logits=('images = [transform(Image.open(path).convert("RGB")) for path in inputs]',
                    "logits = model(torch.stack(images))"),
            example='["cat.jpg", "dog.png"]',
            example_runs=False,
        )

    def load(self, directory: Path) -> nn.Module:
        import timm

        model = timm.create_model(f"local-dir:{directory}", pretrained=True)
        self._setup_transforms(model)
        return model


def _input_size(model: str, data: DataConfig) -> int | None:
    """The side of the images a run of ``model`` on ``data`` trains on (None when unknown)."""
    import timm

    if data.image_size:
        return data.image_size
    if not timm.is_model(model):  # a local directory: the size its config was saved with
        return None
    cfg = timm.get_pretrained_cfg(model)
    return int(cfg.input_size[-1]) if cfg is not None else None


def _forget_labels(model: nn.Module) -> None:
    """Drop a pretrained config's label facts: they describe a head that was replaced."""
    model.pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items()
                            if k not in ("label_names", "label_descriptions", "label_offset")}


def _stage_names(model: nn.Module) -> list[str]:
    """Top-level children that hold convolutions (a model's stages), for error messages."""
    from torch import nn

    return [name for name, child in model.named_children()
            if any(isinstance(m, nn.Conv2d) for m in child.modules())][:6]


def _weights_first(keys: list[str]) -> list[str]:
    """Sorted keys, weights before buffers such as running statistics."""
    return sorted(keys, key=lambda k: (k.endswith(("running_mean", "running_var", "num_batches_tracked")), k))


def _hub_status(repo: str | None, filename: str) -> str:
    """Whether the hub cache holds ``filename`` of ``repo``, and what a run does otherwise."""
    if not repo:
        return "weights from timm's own source (no hub copy known)"
    from huggingface_hub import try_to_load_from_cache

    if isinstance(try_to_load_from_cache(repo, filename), str):
        return f"in the hub cache ({repo})"
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return f"NOT in the hub cache ({repo}) and HF_HUB_OFFLINE=1: the run will fail; download it first"
    return f"not in the hub cache: the run downloads {repo}"
