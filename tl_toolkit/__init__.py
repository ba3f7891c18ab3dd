"""tl_toolkit: transfer learning for text and image models: classifiers, regressors and taggers.

``import tl_toolkit`` is cheap: torch and the model libraries are imported by
the code that needs them, on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._callbacks import EpochCallback, EpochEnd
from ._errors import DataError, PluginError, RecipeError, UserError, suggest
from ._images import open_image, undecoded
from ._layers import block_index, blocks_of, layerwise_groups, train_only
from ._peft_base import PeftOptions, PeftStrategy
from ._plugin_api import PLUGIN_API_VERSION, Backbone, SourceModel, Strategy, Task
from ._pretrain import PretrainContext
from ._recipe import BackboneConfig, DataConfig, Recipe, StrategyConfig, TrainConfig, load_recipe
from ._run_files import resolve_run_dir
from ._sweep_config import SweepConfig
from ._task_api import HEAD_KINDS, TaskPlugin
from ._usage import Usage
from ._weights import read_state_dict

if TYPE_CHECKING:
    from ._dropout import FastDropout, cpu_dropout
    from ._export import export_onnx, export_run
    from ._performance import make_optimizer
    from ._pipeline import FinetuneResult, finetune, load_model_dir
    from ._predict import predict
    from ._report import plot_confusion_matrix
    from ._sweep import SweepResult, sweep
    from ._validate import validate_recipe

__all__ = [
    "HEAD_KINDS",
    "PLUGIN_API_VERSION",
    "Backbone",
    "BackboneConfig",
    "DataConfig",
    "DataError",
    "EpochCallback",
    "EpochEnd",
    "FastDropout",
    "FinetuneResult",
    "PeftOptions",
    "PeftStrategy",
    "PluginError",
    "PretrainContext",
    "Recipe",
    "RecipeError",
    "SourceModel",
    "Strategy",
    "StrategyConfig",
    "SweepConfig",
    "SweepResult",
    "Task",
    "TaskPlugin",
    "TrainConfig",
    "Usage",
    "UserError",
    "__version__",
    "block_index",
    "blocks_of",
    "cpu_dropout",
    "export_onnx",
    "export_run",
    "finetune",
    "layerwise_groups",
    "load_model_dir",
    "load_recipe",
    "make_optimizer",
    "open_image",
    "plot_confusion_matrix",
    "predict",
    "read_state_dict",
    "resolve_run_dir",
    "suggest",
    "sweep",
    "train_only",
    "undecoded",
    "validate_recipe",
]

_LAZY = {
    "cpu_dropout": "._dropout",
    "FastDropout": "._dropout",
    "export_onnx": "._export",
    "export_run": "._export",
    "finetune": "._pipeline",
    "FinetuneResult": "._pipeline",
    "load_model_dir": "._pipeline",
    "make_optimizer": "._performance",
    "plot_confusion_matrix": "._report",
    "predict": "._predict",
    "sweep": "._sweep",
    "SweepResult": "._sweep",
    "validate_recipe": "._validate",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("tl-toolkit")
        except PackageNotFoundError:
            return "0+unknown"
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'tl_toolkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))  # the lazy names too, for tab completion
