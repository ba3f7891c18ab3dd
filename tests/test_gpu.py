"""The CUDA-only branches, marked ``gpu``: they run only where a CUDA device is present.

Also marked ``gpu`` elsewhere: fused AdamW on CUDA (``test_performance.py``) and the CUDA memory probe
(``test_compare_plan.py``). On a machine without a device they are deselected
(``conftest.pytest_collection_modifyitems``) and pytest's summary line counts them ("N deselected");
``python -m pytest -m gpu`` runs them on a GPU machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tl_toolkit import finetune, predict
from tl_toolkit.testing import run_card, tiny_recipe

pytestmark = pytest.mark.gpu


def _digits(out: Path, **train: Any) -> dict[str, Any]:
    recipe = tiny_recipe(out, model="test_resnet", **train)
    recipe["train"]["log_every_steps"] = 1
    return recipe


def test_resnet_on_cuda_is_channels_last_and_predicts_like_the_card_on_cpu(tmp_path: Path) -> None:
    """The run trains on the GPU (NHWC, cuDNN autotuning); ``predict`` on the GPU agrees with the card on the CPU."""
    from tl_toolkit.testing import tiny_backbone

    seen: list[torch.Tensor] = []
    backbone = tiny_backbone("resnet", "test_resnet")
    from tl_toolkit import Task

    model = backbone.build(Task(["a", "b"]))
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.backends.cudnn.benchmark
    hook = conv.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    backbone.forward(model.cuda(), {"pixel_values": torch.randn(2, 3, 32, 32, device="cuda")})
    hook.remove()
    assert seen[0].is_cuda and seen[0].is_contiguous(memory_format=torch.channels_last)

    result = finetune(_digits(tmp_path / "run"), quiet=True)
    from PIL import Image
    from sklearn.datasets import load_digits

    images = []
    for i, pixels in enumerate(load_digits().images[:8]):
        images.append(str(tmp_path / f"digit{i}.png"))
        Image.fromarray((pixels * 16).clip(0, 255).astype("uint8")).save(images[-1])
    ours = predict(result.output_dir, images, top_k=10)
    labels, scores = run_card(result.model_dir / "README.md", images)  # the card pins nothing: CPU here
    assert [row["label"] for row in ours] == labels
    names = result.summary["label_names"]
    for row, plain in zip(ours, scores.tolist(), strict=True):
        by_name = {entry["label"]: entry["score"] for entry in row["top_k"]}
        assert max(abs(by_name[names[i]] - p) for i, p in enumerate(plain)) < 1e-3


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_cuda_computes_in_half_and_learns(precision: str, tmp_path: Path,
                                                             conv_dtypes: list[Any]) -> None:
    recipe = _digits(tmp_path / precision, mixed_precision=precision, epochs=2)
    result = finetune(recipe, quiet=True)
    assert {torch.bfloat16 if precision == "bf16" else torch.float16} <= set(conv_dtypes)
    import json

    rows = [json.loads(line) for line in (result.output_dir / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in rows if r["kind"] == "eval"]
    assert len(losses) == 2 and losses[1] < losses[0]
