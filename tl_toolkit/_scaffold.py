"""``tl new-plugin``: a ready-to-install plugin package, from a template."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from ._errors import UserError
from ._plugin_api import PLUGIN_API_VERSION
from ._registry import GROUPS, registry
from ._scaffold_task import TASK, TASK_TEST

__all__ = ["new_plugin"]

_PYPROJECT = '''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "tl-{name}"
version = "0.1.0"
description = "{summary}"
requires-python = ">=3.10"
dependencies = ["tl-toolkit"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This line is the whole registration: tl_toolkit finds the plugin through it.
[project.entry-points."{group}"]
{name} = "{module}:{cls}"

[tool.setuptools]
packages = ["{module}"]
'''

_STRATEGY = '''"""``{name}``: a tl_toolkit fine-tuning strategy.

Installed, it is found through the ``tl_toolkit.strategies`` entry point in
``pyproject.toml``; a recipe uses it with ``strategy.plugin: {name}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, Strategy

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["{cls}", "{cls}Options"]


class {cls}Options(BaseModel):
    """``strategy.options`` of ``{name}``: validated by ``tl validate``, listed by ``tl list --verbose {name}``."""

    model_config = ConfigDict(extra="forbid")

    l2: float = Field(0.0, ge=0, description="penalty on the squared norm of the trainable weights")


class {cls}(Strategy):
    """Full fine-tuning with an optional L2 penalty on the weights (edit me)."""

    options_model = {cls}Options
    plugin_api = {api}  # the tl_toolkit plugin API version(s) this plugin supports

    def apply(self, model: nn.Module, backbone: Backbone) -> nn.Module:
        self.opts = {cls}Options.model_validate(self.options)
        model.requires_grad_(True)
        return model

    def extra_loss(
        self, model: nn.Module, batch: dict[str, torch.Tensor], logits: torch.Tensor
    ) -> torch.Tensor | None:
        if not self.opts.l2:
            return None
        weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
        return self.opts.l2 * sum(w.pow(2).sum() for w in weights)
'''

_STRATEGY_TEST = '''"""Tests of the ``{name}`` strategy: it is registered, validates its options, and trains.

Only public tl_toolkit API: ``tl_toolkit`` and ``tl_toolkit.testing``.
"""

from __future__ import annotations

import torch
from torch import nn

from tl_toolkit import finetune
from tl_toolkit.testing import StubBackbone, check_plugin, load_plugin, registered, tiny_recipe
from {module} import {cls}


def test_registered_through_its_entry_point() -> None:
    check_plugin("strategy", {cls})
    assert load_plugin("strategy", "{name}") is {cls}


def test_options_are_validated() -> None:
    assert {cls}.option_problems({{"l2": 0.1}}) == []
    [problem] = {cls}.option_problems({{"l3": 0.1}})
    assert problem.startswith("strategy.options.l3")


def test_l2_penalty() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 2)).requires_grad_(False)
    strategy = {cls}({{"l2": 0.5}})
    model = strategy.apply(model, StubBackbone(head=["1"]))
    assert all(p.requires_grad for p in model.parameters())
    logits = model(torch.randn(3, 4))
    expected = 0.5 * sum(m.weight.pow(2).sum() for m in model)
    torch.testing.assert_close(strategy.extra_loss(model, {{}}, logits), expected)
    assert {cls}({{}}).apply(model, StubBackbone()) is model


def test_trains_end_to_end(tmp_path) -> None:
    with registered("strategy", "{name}-under-test", {cls}):
        result = finetune(tiny_recipe(tmp_path / "run", strategy="{name}-under-test"), quiet=True)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
'''


_BACKBONE = '''"""``{name}``: a tl_toolkit backbone for image classification with any timm model.

Installed, it is found through the ``tl_toolkit.backbones`` entry point in
``pyproject.toml``; a recipe uses it with ``backbone.plugin: {name}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from tl_toolkit import Backbone, SourceModel, Task, export_onnx, open_image, undecoded

if TYPE_CHECKING:
    import datasets
    import torch
    from torch import nn

__all__ = ["{cls}", "{cls}Options"]


class {cls}Options(BaseModel):
    """``backbone.options`` of ``{name}``."""

    model_config = ConfigDict(extra="forbid")

    drop_rate: float = Field(0.0, ge=0, lt=1, description="dropout before the classifier")


class {cls}(Backbone):
    """Image classification with a timm model (edit me)."""

    modality = "image"
    options_model = {cls}Options
    plugin_api = {api}

    def build(self, task: Task, source: SourceModel | None = None) -> nn.Module:
        import timm

        if source is not None:
            model = source.model
            model.reset_classifier(task.num_labels)
        else:
            opts = {cls}Options.model_validate(self.config.options)
            model = timm.create_model(self.config.model, pretrained=self.config.pretrained,
                                      num_classes=task.num_labels, drop_rate=opts.drop_rate)
        self._transforms(model)
        return model

    def _transforms(self, model: nn.Module) -> None:
        from timm.data import create_transform, resolve_data_config

        cfg = resolve_data_config({{}}, model=model)
        if self.data.image_size:
            cfg.update(input_size=(3, self.data.image_size, self.data.image_size), crop_pct=1.0)
        self.data_config = cfg
        self.transform = create_transform(**cfg)

    def preprocess(self, dataset: datasets.Dataset, train: bool) -> datasets.Dataset:
        column = self.data.image_column

        def apply(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
            # open_image: paths, PIL images or undecoded bytes to RGB, with a DataError naming a bad file
            return {{"pixel_values": [self.transform(open_image(i)) for i in batch[column]],
                    "labels": batch["labels"]}}

        return undecoded(dataset, column).with_transform(apply)

    def collate(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        import torch

        return {{"pixel_values": torch.stack([e["pixel_values"] for e in examples]),
                "labels": torch.tensor([e["labels"] for e in examples])}}

    def forward(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(batch["pixel_values"])

    # features + head_forward: a frozen backbone runs once per example (train.feature_cache)
    def features(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.forward_head(model.forward_features(batch["pixel_values"]), pre_logits=True)

    def head_forward(self, model: nn.Module, features: torch.Tensor) -> torch.Tensor:
        return model.get_classifier()(features)

    def head_names(self, model: nn.Module) -> list[str]:
        return [model.pretrained_cfg.get("classifier", "fc")]

    def lora_targets(self, model: nn.Module) -> list[str]:
        from torch import nn

        # 3x3 convolutions that are not grouped: peft cannot merge conv LoRA into a grouped one
        return [n for n, m in model.named_modules()
                if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3) and m.groups == 1]

    export_formats = ("timm", "onnx")

    def export(self, model: nn.Module, directory: Path, fmt: str, task: Task) -> dict[str, Any] | None:
        if fmt == "onnx":
            import torch

            size = self.data_config["input_size"]
            return export_onnx(self, model, {{"pixel_values": torch.randn(2, *size)}}, directory / "model.onnx",
                               {{"pixel_values": {{0: "batch"}}}})
        self.save(model, directory, task)
        return None

    def save(self, model: nn.Module, directory: Path, task: Task) -> None:
        from timm.models import save_for_hf

        save_for_hf(model, str(directory), model_config={{"label_names": task.label_names}},
                    safe_serialization=True, data_config={{"input_size": self.data_config["input_size"],
                                                          "crop_pct": self.data_config["crop_pct"]}})

    def load(self, directory: Path) -> nn.Module:
        import timm

        model = timm.create_model(f"local-dir:{{directory}}", pretrained=True)
        self._transforms(model)
        return model
'''

_BACKBONE_TEST = '''"""Tests of the ``{name}`` backbone: it is registered, builds a model with a fresh head, saves and loads.

Only public tl_toolkit API: ``tl_toolkit`` and ``tl_toolkit.testing``.
"""

from __future__ import annotations

import pytest
import torch

from tl_toolkit import BackboneConfig, DataConfig, Task, finetune
from tl_toolkit.testing import check_plugin, load_plugin, registered, tiny_recipe
from {module} import {cls}


def test_registered_through_its_entry_point() -> None:
    check_plugin("backbone", {cls})
    assert load_plugin("backbone", "{name}") is {cls}


def test_build_forward_features_save_load(tmp_path) -> None:
    backbone = {cls}(BackboneConfig(plugin="{name}", model="resnet18", pretrained=False),
                     DataConfig(format="digits", image_size=32))
    model = backbone.build(Task(["a", "b", "c"])).eval()
    batch = {{"pixel_values": torch.randn(2, 3, 32, 32)}}
    logits = backbone.forward(model, batch)
    assert logits.shape == (2, 3)
    torch.testing.assert_close(backbone.head_forward(model, backbone.features(model, batch)), logits)
    backbone.save(model, tmp_path, Task(["a", "b", "c"]))
    loaded = backbone.load(tmp_path).eval()
    torch.testing.assert_close(backbone.forward(loaded, batch), logits)


@pytest.mark.parametrize("strategy", ["head-only", "lora"])
def test_trains_end_to_end(strategy: str, tmp_path) -> None:
    with registered("backbone", "{name}-under-test", {cls}):
        result = finetune(tiny_recipe(tmp_path / "run", strategy=strategy, backbone="{name}-under-test"),
                          quiet=True)
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
'''


#: The module and test template of each kind, and the word a recipe uses it with.
TEMPLATES = {"strategy": (_STRATEGY, _STRATEGY_TEST, "strategy.plugin"),
             "backbone": (_BACKBONE, _BACKBONE_TEST, "backbone.plugin"),
             "task": (TASK, TASK_TEST, "data.task")}


def _class_name(name: str, kind: str) -> str:
    words = re.split(r"[^0-9a-zA-Z]+", name)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + kind.capitalize()


def new_plugin(name: str, kind: str, parent: Path) -> Path:
    """Write a plugin package ``<parent>/<name>/`` and return its path.

    Raises:
        UserError: the name is not usable or the folder exists.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise UserError(f"name {name!r} must start with a letter and use a-z, 0-9, '-' or '_'")
    if kind not in TEMPLATES:
        raise UserError(f"--kind {kind!r} is not one of {', '.join(TEMPLATES)}")
    module = "tl_" + name.replace("-", "_")
    if keyword.iskeyword(module):
        raise UserError(f"{name!r} gives the module name {module!r}, a Python keyword")
    if name in registry.names(kind):
        provider = next((i.dist for i in registry.all(kind, load=False) if i.name == name), "another package")
        raise UserError(f"{name!r} is already a {kind} plugin (from {provider}); a second package registering it "
                        f"would turn both off (`tl list` reports the clash): choose another name")
    root = parent / name
    if root.exists():
        raise UserError(f"{root} already exists; choose another name or remove it")
    cls = _class_name(name, kind)
    fields = {"name": name, "module": module, "cls": cls, "group": GROUPS[kind], "api": PLUGIN_API_VERSION,
              "summary": f"The {name} {kind} plugin for tl_toolkit."}
    code, test, key = TEMPLATES[kind]
    (root / module).mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "pyproject.toml").write_text(_PYPROJECT.format(**fields))
    (root / module / "__init__.py").write_text(code.format(**fields))
    (root / "tests" / f"test_{module}.py").write_text(test.format(**fields))
    (root / "README.md").write_text(
        f"# tl-{name}\n\nA tl_toolkit {kind} plugin: `{key}: {name}` in a recipe.\n\n"
        f"```bash\npip install -e {name}\ntl list              # shows {name}\n"
        f"pytest {name}/tests\n```\n"
    )
    return root
