"""``resnet``: timm ResNets (and any other timm classifier) for image classification.

Weights come from the hub (``pretrained: true``, online), a local file
(``backbone.weights``), a previous run (``init_from``), or nowhere (random
initialisation). The model's own data config (input size, mean/std, crop)
drives preprocessing; ``data.image_size`` overrides the size for small
images. Models are saved as timm does for the hub (``config.json`` +
``model.safetensors``) and load back with
``timm.create_model("local-dir:<model_dir>", pretrained=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, SourceModel, Task, UserError, export_onnx, read_state_dict

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn

__all__ = ["ResNetBackbone", "ResNetOptions"]


class ResNetOptions(BaseModel):
    """Options of the ``resnet`` backbone (``backbone.options``)."""

    model_config = ConfigDict(extra="forbid")

    hflip: float = Field(0.5, ge=0, le=1, description="probability of a horizontal flip in training (0 for digits)")
    scale: tuple[float, float] = Field((0.5, 1.0), description="random-resized-crop area range in training")
    augment: bool = Field(True, description="false: training images get the eval transform")
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
        import timm

        if source is not None:
            model = source.model
            model.reset_classifier(task.num_labels)
            # The source's label facts describe its head, which is gone.
            model.pretrained_cfg = {k: v for k, v in model.pretrained_cfg.items()
                                    if k not in ("label_names", "label_descriptions", "label_offset")}
        else:
            if not timm.is_model(self.config.model):
                from tl_toolkit._errors import suggest

                raise UserError(
                    f"backbone.model: unknown timm model {self.config.model!r}."
                    f"{suggest(self.config.model, timm.list_models('resnet*'))} See timm.list_models()"
                )
            pretrained = self.config.pretrained and not self.config.weights
            try:
                model = timm.create_model(self.config.model, pretrained=pretrained, num_classes=task.num_labels)
            except Exception as e:  # hub download failures come in many types
                raise UserError(
                    f"backbone.model: cannot fetch pretrained weights for {self.config.model!r} "
                    f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); offline, give "
                    f"backbone.weights: <file.safetensors>, init_from a previous run, or pretrained: false"
                ) from None
            if self.config.weights:
                self._load_weights(model, Path(self.config.weights))
        self._setup_transforms(model)
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
        from timm.data import create_transform, resolve_data_config

        cfg = resolve_data_config({}, model=model)
        if self.data.image_size:
            # Small images: resize the whole image, no centre crop that would cut the object.
            cfg.update(input_size=(3, self.data.image_size, self.data.image_size), crop_pct=1.0)
        self.data_config = cfg
        opts = self.options
        self.eval_transform = create_transform(**cfg, is_training=False)
        self.train_transform = (
            create_transform(**cfg, is_training=True, scale=opts.scale, hflip=opts.hflip, color_jitter=0.0)
            if opts.augment
            else self.eval_transform
        )

    def preprocess(self, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        transform = self.train_transform if train else self.eval_transform
        column = self.data.image_column

        def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            # Decoded in DataLoader workers; grayscale and palette images become RGB.
            out: dict[str, list[Any]] = {"pixel_values": [transform(img.convert("RGB")) for img in batch[column]]}
            if "labels" in batch:
                out["labels"] = batch["labels"]
            return out

        return dataset.with_transform(apply)

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        return {
            "pixel_values": torch.stack([e["pixel_values"] for e in examples]),
            "labels": torch.tensor([e["labels"] for e in examples], dtype=torch.long),
        }

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["pixel_values"])

    def head_names(self, model: nn.Module) -> list[str]:
        return [model.pretrained_cfg.get("classifier", "fc")]

    def lora_targets(self, model: nn.Module) -> list[str]:
        from torch import nn

        stages = tuple(f"{s}." for s in self.options.lora_stages)
        targets = [
            name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1 and name.startswith(stages)
        ]
        if not targets:
            raise UserError(
                f"backbone.options.lora_stages: {self.options.lora_stages} hold no 3x3 convolutions in "
                f"{self.config.model!r}; name its stages or set strategy.options.target_modules"
            )
        return targets

    def features(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        # timm's split of every classifier: pooled pre-logits features, then the classifier.
        return model.forward_head(model.forward_features(batch["pixel_values"]), pre_logits=True)

    def head_forward(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
        return model.get_classifier()(features)

    def preprocessing_key(self) -> str:
        return f"{self.data.image_column}:{self.eval_transform}"

    def augmentation(self) -> str | None:
        opts = self.options
        if not opts.augment:
            return None
        return (f"backbone.options.augment is on (random-resized crop {tuple(opts.scale)}, flip p={opts.hflip}); "
                f"set it to false to cache features")

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

    def load(self, directory: Path) -> nn.Module:
        import timm

        model = timm.create_model(f"local-dir:{directory}", pretrained=True)
        self._setup_transforms(model)
        return model


def _weights_first(keys: list[str]) -> list[str]:
    """Sorted keys, weights before buffers such as running statistics."""
    return sorted(keys, key=lambda k: (k.endswith(("running_mean", "running_var", "num_batches_tracked")), k))
