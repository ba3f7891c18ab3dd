"""The model card (``model/README.md``) and the reproducibility manifest (``model/manifest.json``).

The card follows the Hugging Face model-card format (YAML metadata header
written by ``huggingface_hub``, then Markdown), so the model directory can be
shared on the hub as it is. The manifest pins what the run depended on: the
recipe and its hash, the data's ``datasets`` fingerprints, a hash of the
starting weights, library versions and the seed; ``tl run --from-manifest
model/`` re-runs the recipe it holds.
"""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._errors import UserError
from ._usage import usage_markdown

if TYPE_CHECKING:
    from torch import nn

    from ._data import TaskData
    from ._plugin_api import Backbone
    from ._recipe import Recipe
    from ._task_api import TaskPlugin

__all__ = ["MANIFEST", "build_manifest", "plugin_versions", "read_manifest", "usage_section", "weights_sha256",
           "write_model_card"]

MANIFEST = "manifest.json"
_LIBRARIES = ("tl-toolkit", "torch", "transformers", "timm", "peft", "accelerate", "datasets", "safetensors")
_PIPELINE_TAGS = {"text": "text-classification", "image": "image-classification"}


def weights_sha256(model: nn.Module) -> str:
    """SHA-256 over the model's state dict (names, dtypes, shapes and bytes), in name order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in _LIBRARIES:
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def build_manifest(recipe: Recipe, data: TaskData, start_weights_sha256: str) -> dict[str, Any]:
    """What a run depended on, to re-run it and to tell whether a re-run saw the same inputs."""
    return {
        "format_version": 1,
        "recipe": recipe.model_dump(mode="json"),
        "recipe_sha256": hashlib.sha256(recipe.to_yaml().encode()).hexdigest(),
        "seed": recipe.seed,
        "data": {
            # datasets' own fingerprints: they change when the files, the caps or the split change.
            "train_fingerprint": data.train._fingerprint,
            "eval_fingerprint": data.eval._fingerprint,
            "num_train_examples": len(data.train),
            "num_eval_examples": len(data.eval),
            "label_names": data.label_names,
        },
        "backbone": {
            "plugin": recipe.backbone.plugin,
            "model": recipe.backbone.model,
            "pretrained": recipe.backbone.pretrained,
            "init_from": recipe.backbone.init_from,
            "weights": recipe.backbone.weights,
            "start_weights_sha256": start_weights_sha256,  # the model with its fresh head, before training
        },
        "libraries": _versions(),
        "plugins": plugin_versions(recipe),
    }


def plugin_versions(recipe: Recipe) -> dict[str, dict[str, str]]:
    """The distribution and version of every plugin the recipe uses, by kind (``backbone``, ``strategy``)."""
    from ._registry import registry

    used = {"backbone": recipe.backbone.plugin, "strategy": recipe.strategy.plugin}
    found = {}
    for info in registry.all(load=False):
        if used.get(info.kind) == info.name:
            found[info.kind] = {"name": info.name, "dist": info.dist, "version": info.version}
    return found


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The manifest of a finished run, given its output_dir or its ``model/`` directory.

    Raises:
        UserError: no manifest there, or it is not valid JSON.
    """
    path = Path(path)
    candidates = [path / MANIFEST, path / "model" / MANIFEST] if path.is_dir() else [path]
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise UserError(f"--from-manifest: {path} holds no {MANIFEST}; give the model/ directory of a finished run "
                        f"(runs made before manifests existed have none: run their recipe.yaml instead)")
    try:
        manifest = json.loads(found.read_text(encoding="utf-8"))
        return dict(manifest) | {"recipe": dict(manifest["recipe"])}
    except (ValueError, KeyError, TypeError):
        raise UserError(f"--from-manifest: {found} is not a tl_toolkit manifest (invalid JSON or no recipe)") from None


def _dataset_name(recipe: Recipe) -> str:
    data = recipe.data
    if data.format == "hf" and data.name:
        return data.name
    if data.format == "digits":
        return "sklearn-digits"
    path = Path(data.train or "data")
    # ".../sst2/train.tsv" and ".../cifar10/train/" are both the data set of their parent folder.
    return path.parent.name if path.suffix or path.name.lower() in ("train", "training") else path.name


def _card_data(recipe: Recipe, summary: dict[str, Any], library: str, tag: str) -> Any:
    from huggingface_hub import EvalResult, ModelCardData

    task = tag
    dataset = _dataset_name(recipe)
    model = recipe.backbone.model
    hub_id = recipe.backbone.pretrained and not Path(model).exists() and model.count("/") <= 1
    return ModelCardData(
        library_name=library or None,
        pipeline_tag=task,
        tags=["tl-toolkit", task, recipe.backbone.plugin, f"strategy-{recipe.strategy.plugin}"]
        + (["transfer-learning"] if recipe.backbone.init_from else []),
        datasets=[dataset],
        metrics=sorted({_CARD_METRICS.get(k, (k, k))[0] for k in summary["eval"] if k != "loss"}),
        base_model=model if hub_id else None,
        model_name=recipe.name,
        eval_results=[
            EvalResult(task_type=task, dataset_type=recipe.data.format, dataset_name=dataset,
                       dataset_split="eval" if recipe.data.eval else "held-out", metric_type=metric, metric_name=name,
                       metric_value=round(value, 6))
            for key, value in summary["eval"].items() if key != "loss"
            for metric, name in [_CARD_METRICS.get(key, (key, key))]
        ],
    )


# A run's metric key -> (the hub's metric id, its display name); others appear under their own key.
_CARD_METRICS = {"accuracy": ("accuracy", "accuracy"), "f1": ("f1", "entity F1"), "precision": ("precision", "precision"),
                 "recall": ("recall", "recall"), "f1_macro": ("f1", "macro-F1"), "f1_micro": ("f1", "micro-F1"),
                 "mse": ("mse", "MSE"), "pearson": ("pearsonr", "Pearson"), "spearman": ("spearmanr", "Spearman")}


def usage_section(model_dir: Path, backbone: Backbone, label_names: list[str], head: str) -> tuple[str, list[str]]:
    """The library that loads ``model_dir`` plainly, and the Markdown of its tested usage snippet.

    A run whose strategy saved peft adapters holds the backbone's own save in
    ``base/``: the snippet loads that, then the adapters from ``model_dir``.
    """
    from ._plugin_api import Task

    adapters = (model_dir / "adapter_config.json").is_file()
    saved = model_dir / "base" if adapters else model_dir
    usage = backbone.usage(saved, Task(label_names, head))
    library = "peft" if adapters else (usage.library if usage else backbone.library)
    if usage is None and backbone.library == "transformers":  # no tested snippet of the backbone's own
        return library, _auto_snippet(saved, model_dir if adapters else None)
    return library, usage_markdown(usage, saved, head, model_dir if adapters else None)


def _auto_snippet(saved: Path, adapters: Path | None) -> list[str]:
    """The Auto class of the saved architecture; a token tagger's also gets the pipeline that equals tl predict.

    ``aggregation_strategy="first"`` reads each word's tag from its first sub-token, as training
    labels them, and groups B-/I- tags into entities with tl predict's types, offsets and scores.
    """
    auto = _auto_class(saved)
    token = auto == "AutoModelForTokenClassification"
    lines = ["```python", f"from transformers import {auto}, AutoTokenizer" + (", pipeline" if token else "")]
    if adapters is not None:
        lines.append("from peft import PeftModel")
    lines += ["", f'model = {auto}.from_pretrained("{saved}")']
    if adapters is not None:  # the adapters and the trained head, merged into the base model
        lines.append(f'model = PeftModel.from_pretrained(model, "{adapters}").merge_and_unload()')
    lines.append(f'tokenizer = AutoTokenizer.from_pretrained("{saved}")')
    if token:
        lines += ["", "# The entities tl predict prints for a line of text (types, character offsets, scores):",
                  'ner = pipeline("token-classification", model=model, tokenizer=tokenizer, '
                  'aggregation_strategy="first")',
                  'print(ner(["George Washington went to Washington .", "The EU rejects German call ."]))']
    return [*lines, "```", ""]


def _auto_class(model_dir: Path) -> str:
    """The transformers Auto class of the saved model's architecture (sequence or token classification)."""
    config = model_dir / "config.json"
    architectures = json.loads(config.read_text()).get("architectures") or [] if config.is_file() else []
    token = any(a.endswith("ForTokenClassification") for a in architectures)
    return "AutoModelForTokenClassification" if token else "AutoModelForSequenceClassification"


def write_model_card(
    model_dir: Path, recipe: Recipe, summary: dict[str, Any], manifest: dict[str, Any], backbone: Backbone,
    task: TaskPlugin | None = None,
) -> None:
    """Write ``README.md`` (the model card) and ``manifest.json`` into a run's ``model/`` directory.

    The card's ``library_name`` is the ecosystem whose plain loader reads
    ``model_dir``: the backbone's (``Backbone.library``), or ``peft`` when the
    strategy saved adapters.
    """
    from huggingface_hub import ModelCard

    head = task.head if task else recipe.data.task
    library, usage = usage_section(model_dir, backbone, summary["label_names"], head)
    tag = task.pipeline_tag(backbone.modality) if task else _PIPELINE_TAGS.get(backbone.modality, "classification")

    ev = summary["eval"]
    names = summary["label_names"]
    listed = f"{', '.join(names[:20])}{', ...' if len(names) > 20 else ''}"
    goal = (f"to predict {listed}" if head == "regression"
            else f"to {'tag' if head == 'token_classification' else 'classify'} {len(names)} "
                 f"label{'' if len(names) == 1 else 's'}: {listed}")
    body = [
        f"# {recipe.name}", "",
        f"{summary['backbone']} fine-tuned with tl_toolkit (strategy **{summary['strategy']}**) {goal}.", "",
        "## Results", "",
        f"On {summary['num_eval_examples']} held-out examples: "
        f"{', '.join(f'{k} **{v:.4f}**' for k, v in ev.items() if k != 'loss')}, loss {ev['loss']:.4f}. "
        f"Trained on {summary['num_train_examples']} "
        f"examples for {summary['epochs']} epochs ({summary['train_seconds']:.1f} s); "
        f"{summary['trainable_params']:,} of {summary['total_params']:,} parameters trained.", "",
    ]
    if summary.get("source"):
        body += [f"Transferred from the source run `{Path(summary['source']).parent}`.", ""]
    body += ["## Usage", "", f"```console\ntl predict {model_dir.parent} INPUT...\n```", ""]
    body += usage
    body += ["## Training recipe", "", "```yaml", recipe.to_yaml().rstrip(), "```", "",
             "## Reproducibility", "", f"`tl run --from-manifest {model_dir}` re-runs this recipe "
             "(add `output_dir=...` to keep this run). The manifest:", "",
             "```json", json.dumps(manifest, indent=2), "```", ""]
    card = ModelCard("---\n" + _card_data(recipe, summary, library, tag).to_yaml() + "\n---\n\n" + "\n".join(body))
    card.save(str(model_dir / "README.md"))
    (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
