"""``tl export``: a finished run's model in a format other tools load without tl_toolkit.

The formats are the backbone plugin's to write (:meth:`Backbone.export`): the
core loads the run, merges LoRA adapters when asked (peft's
``merge_and_unload``), hands the plain model to the plugin, and writes
``export.json`` beside the result. :func:`export_onnx` is the shared ONNX
path plugins call: ``torch.onnx.export``, then a check of the graph against
PyTorch with onnxruntime when it is installed (``onnx.checker`` otherwise).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError
from ._plugin_api import Task

if TYPE_CHECKING:
    import torch
    from torch import nn

    from ._plugin_api import Backbone

__all__ = ["export_onnx", "export_run"]

#: Outputs of the ONNX graph and of PyTorch may differ by float rounding, no more.
ONNX_TOLERANCE = 1e-4


def export_run(run_dir: str | Path, fmt: str, output: str | Path | None = None, merge_lora: bool = False) -> Path:
    """Export a finished run's model to ``fmt``; returns the directory written.

    Args:
        run_dir: the run's output_dir (or its ``model/`` directory).
        fmt: a format the run's backbone lists in ``export_formats`` (``hf``, ``timm``, ``onnx``, ...).
        output: the directory to write; default ``<run_dir>/export/<fmt>``. It must not hold files yet.
        merge_lora: merge LoRA adapters into the weights, giving a plain model with its trained head.

    Raises:
        UserError: not a finished run, a format the backbone cannot write, an adapter
            model without ``merge_lora``, or an output directory that already holds files.
    """
    from ._pipeline import load_model_dir, resolve_run_dir

    model_dir = resolve_run_dir(run_dir)
    loaded = load_model_dir(model_dir, merge=merge_lora)
    backbone = loaded.backbone
    if fmt not in backbone.export_formats:
        can = f"it exports to: {', '.join(backbone.export_formats)}" if backbone.export_formats else "it exports nothing"
        raise UserError(f"--format: backbone {backbone.plugin_name!r} cannot export to {fmt!r}; {can}")
    if (model_dir / "adapter_config.json").is_file() and not merge_lora:
        raise UserError(
            f"{model_dir}: this run's model is a LoRA adapter (peft format, loadable as it is); pass --merge-lora "
            f"to export a plain model with the adapters merged into its weights"
        )
    target = Path(output) if output else model_dir.parent / "export" / fmt
    if target.exists() and target.is_dir() and any(target.iterdir()):
        raise UserError(f"--output: {target} already exists and is not empty; remove it or choose another --output")
    from ._paths import output_dir_problems, staged_folder

    problems = output_dir_problems("--output", target)
    if problems:
        raise UserError(problems)
    with staged_folder(target.with_name(f".{target.name}.tmp")) as tmp:
        model = loaded.model.eval()
        head = loaded.task.head if loaded.task is not None else "classification"
        report = backbone.export(model, tmp, fmt, Task(loaded.label_names, head)) or {}
        merged = merge_lora and (model_dir / "adapter_config.json").is_file()  # without adapters: nothing merged
        meta = {"format": fmt, "run": str(model_dir.parent), "backbone": loaded.meta["backbone"],
                "strategy": loaded.meta["strategy"]["plugin"], "merged_lora": merged,
                "label_names": loaded.label_names, **report}
        (tmp / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
        _write_readme(tmp, target, backbone, fmt, loaded.label_names, loaded.backbone.data.task, meta)
        if target.exists():
            target.rmdir()  # empty, checked above
        tmp.rename(target)
    return target


def _write_readme(tmp: Path, target: Path, backbone: Backbone, fmt: str, label_names: list[str], problem_type: str,
                  meta: dict[str, Any]) -> None:
    """``README.md`` of an export: what it is, and the backbone's tested snippet that loads it (at ``target``)."""
    from ._usage import usage_markdown

    usage = backbone.usage(tmp, Task(label_names, problem_type), fmt)
    lines = [f"# {Path(meta['run']).name}: {fmt} export", "",
             f"Exported by `tl export` from the run `{meta['run']}` (strategy {meta['strategy']}"
             f"{', LoRA merged' if meta['merged_lora'] else ''}); labels: {', '.join(label_names[:20])}"
             f"{', ...' if len(label_names) > 20 else ''}. `export.json` records the details.", "",
             *usage_markdown(usage, target, problem_type)]
    (tmp / "README.md").write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")


def export_onnx(
    backbone: Backbone,
    model: nn.Module,
    example: dict[str, torch.Tensor],
    path: Path,
    dynamic_axes: dict[str, dict[int, str]],
) -> dict[str, Any]:
    """Write ``model`` as an ONNX graph taking the ``example`` inputs by name and returning ``logits``.

    ``backbone.forward`` defines the computation, so the graph is what training
    and prediction run. The graph is then checked: with onnxruntime, its logits
    on ``example`` must match PyTorch's within :data:`ONNX_TOLERANCE`;
    without it, ``onnx.checker`` validates the file.

    Returns:
        ``{"onnx_check": ..., "onnx_max_abs_diff": ...}`` for ``export.json``.

    Raises:
        UserError: the ``onnx`` package is missing (``pip install tl-toolkit[onnx]``).
        RuntimeError: onnxruntime's outputs differ from PyTorch's (an exporter bug).
    """
    import importlib.util

    import torch

    if importlib.util.find_spec("onnx") is None:
        raise UserError("--format onnx: needs the 'onnx' package; `pip install onnx onnxruntime` "
                        "(or tl-toolkit[onnx])")
    names = list(example)

    class _Logits(torch.nn.Module):
        """Positional tensors in, logits out: the calling convention ONNX graphs have."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return backbone.forward(self.model, dict(zip(names, tensors, strict=True)))

    wrapper = _Logits().eval()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's tracer warnings are about shapes the axes below free
        # The TorchScript exporter: fast, and dynamic axes by name work for every backbone's forward.
        torch.onnx.export(wrapper, tuple(example.values()), str(path), input_names=names, output_names=["logits"],
                          dynamic_axes={"logits": {0: "batch"}, **dynamic_axes}, dynamo=False)
        expected = wrapper(*example.values()).float()
    return _check_onnx(path, example, expected)


def _check_onnx(path: Path, example: dict[str, torch.Tensor], expected: torch.Tensor) -> dict[str, Any]:
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None:
        import onnx

        onnx.checker.check_model(str(path))
        return {"onnx_check": "onnx.checker (onnxruntime not installed: outputs not compared)"}
    import numpy as np
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {k: v.cpu().numpy() for k, v in example.items()})
    diff = float(np.abs(got - expected.cpu().numpy()).max())
    if not diff <= ONNX_TOLERANCE * max(1.0, float(expected.abs().max())):
        raise RuntimeError(f"ONNX export of {path}: onnxruntime's logits differ from PyTorch's by {diff:.3g}")
    return {"onnx_check": f"onnxruntime {onnxruntime.__version__} matches PyTorch", "onnx_max_abs_diff": diff}
