"""The pipeline behind ``tl run`` and ``finetune()``.

data -> model -> strategy -> train -> evaluate -> save -> report, plus the
source -> target transfer of ``backbone.init_from`` and the baselines a recipe
asks for.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._callbacks import EpochCallback
from ._checkpoint import write_atomic
from ._errors import UserError
from ._fsdp import is_sharded, unsharded_copy
from ._inherit import inherit_options, taken_line
from ._modelcard import build_manifest, weights_sha256, write_model_card
from ._output_dir import (
    PREVIOUS_RUN,
    PreviousRun,
    check_output_dir,
    check_resumable,
    claim_output_dir,
    finished,
    started,
)
from ._plugin_api import Backbone, SourceModel, Strategy, Task
from ._recipe import BackboneConfig, DataConfig, Recipe, load_recipe, nested
from ._registry import registry
from ._run_files import MODEL_META, resolve_run_dir
from ._transfer_check import DriftWatch, check_transfer, findings_lines, gain_text
from ._transfer_lr import transfer_rates
from ._validate import validate

if TYPE_CHECKING:
    from torch import nn

    from ._task_api import TaskPlugin

__all__ = ["FinetuneResult", "LoadedModel", "finetune", "load_model_dir", "resolve_run_dir"]

@dataclass
class FinetuneResult:
    """What :func:`finetune` returns.

    Attributes:
        output_dir: the run's folder (``recipe.yaml``, ``summary.json``, ``model/``, ``report.md`` ...).
        metrics: the final model's held-out metrics (``summary.json``'s ``eval``), e.g. accuracy, f1_macro, loss.
        summary: all of ``summary.json``.
        model: the trained model, in eval mode (peft-wrapped for LoRA-family strategies).
        label_names: the label of each output, in order.
    """

    output_dir: Path  # where recipe.yaml, summary.json, model/ ... were written
    metrics: dict[str, float]  # held-out metrics of the final model: accuracy, f1_macro, loss
    summary: dict[str, Any]  # the contents of summary.json
    model: nn.Module | None = None  # the trained model (peft-wrapped for LoRA)
    label_names: list[str] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        return self.output_dir / "model"


@dataclass
class LoadedModel:
    """A finished run's model with the plugins that know how to feed it."""

    model: nn.Module
    backbone: Backbone
    strategy: Strategy
    label_names: list[str]
    meta: dict[str, Any]
    task: TaskPlugin | None = None  # the run's task plugin, its labels set up


def finetune(
    recipe: str | Path | dict[str, Any] | Recipe,
    overrides: list[str] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    quiet: bool = False,
    callbacks: Sequence[EpochCallback] = (),
    **kwargs: Any,
) -> FinetuneResult:
    """Run a recipe end to end, as ``tl run`` does.

    Args:
        recipe: a recipe file, a dict with the recipe's sections, or a :class:`Recipe`.
        overrides: ``["train.epochs=1", ...]`` as on the command line.
        resume: continue from the newest checkpoint in the output directory.
        overwrite: replace a finished run in the output directory.
        quiet: no progress output.
        callbacks: called with an :class:`EpochEnd` after each epoch's evaluation; one may raise to stop.
        **kwargs: more overrides: ``train={"epochs": 1}``, ``train__epochs=1`` or ``**{"train.epochs": 1}``.

    Returns:
        The metrics, the output directory, the summary and the trained model.

    Raises:
        RecipeError: the recipe does not validate (every problem listed).
        UserError: a data, model or output-directory problem.
    """
    from ._quiet import libraries_quieted

    if resume and overwrite:
        raise UserError("--resume and --overwrite: choose one; --resume continues the run in output_dir, "
                        "--overwrite replaces it")
    if kwargs:
        base = load_recipe(recipe, overrides)
        recipe, overrides = load_recipe(base, nested({k.replace('__', '.'): v for k, v in kwargs.items()})), None
    recipe = validate(recipe, overrides)  # every recipe problem before anything heavy loads
    with libraries_quieted(quiet):  # the caller's logging settings come back afterwards
        out = recipe.output_path
        if finished(out) and resume and not overwrite:  # nothing to continue: the finished run, its model loaded
            if not quiet:
                print(f"{recipe.name}: the run in {out} is already finished; nothing was trained (overwrite it to "
                      f"train again)")
            return _finished_result(out, with_model=True)
        return _run(recipe, resume=resume, overwrite=overwrite, quiet=quiet, callbacks=callbacks)


def _finished_result(out: Path, with_model: bool) -> FinetuneResult:
    """What a finished run in ``out`` returns again, read from its ``summary.json`` (and ``model/``)."""
    done = json.loads((out / "summary.json").read_text())
    model = load_model_dir(out / "model").model if with_model else None
    return FinetuneResult(out, done["eval"], done, model, done.get("label_names", []))


def _run(recipe: Recipe, *, resume: bool, overwrite: bool, quiet: bool,
         callbacks: Sequence[EpochCallback] = ()) -> FinetuneResult:
    """One run; under --overwrite the previous run is put back unless the new one finishes (``_output_dir``).

    A new run that stops before its first checkpoint leaves nothing behind: there is nothing to resume.
    """
    from ._checkpoint import latest_checkpoint

    out = recipe.output_path
    previous = PreviousRun(out, replace=overwrite) if overwrite or not resume else None
    try:
        result = _train_run(recipe, resume=resume, overwrite=overwrite, previous=previous, quiet=quiet,
                            callbacks=callbacks)
    except BaseException as e:
        keep = not overwrite and latest_checkpoint(out / "checkpoints") is not None  # what --resume continues
        if previous is not None and not keep and previous.restore():
            e.add_note(f"the previous run in {out} is back as it was")  # the CLI's Ctrl-C line says it
        raise
    if previous is not None:
        previous.discard()
    elif (out / PREVIOUS_RUN).is_dir():  # a resumed replacement that was killed outright has now finished
        shutil.rmtree(out / PREVIOUS_RUN, ignore_errors=True)
    return result


def _train_run(recipe: Recipe, *, resume: bool, overwrite: bool, previous: PreviousRun | None, quiet: bool,
               callbacks: Sequence[EpochCallback]) -> FinetuneResult:
    from accelerate.utils import set_seed

    from ._engine import fit, make_accelerator

    out = recipe.output_path
    if finished(out) and resume and not overwrite:  # a baseline finished before an interruption
        return _finished_result(out, with_model=False)

    source_dir = _resolve_source(recipe, quiet) if recipe.backbone.init_from else None
    taken: dict[str, Any] = {}
    if source_dir:  # the transferred filters see inputs prepared as suits them, unless the recipe says otherwise
        recipe, taken = inherit_options(recipe, source_dir)
    accelerator = make_accelerator(recipe, log_with=recipe.train.trackers)
    check_output_dir(out, resume, overwrite)  # nothing is written or removed before data and model pass
    if resume and not overwrite and started(out) and (out / "recipe.yaml").is_file():
        check_resumable(out, recipe)
    set_seed(recipe.seed)

    backbone: Backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    strategy: Strategy = registry.get("strategy", recipe.strategy.plugin)(recipe.strategy.options)

    from ._data import load_task_data
    from ._tasks import make_task

    task_plugin = make_task(recipe.data, recipe.train)
    with accelerator.main_process_first():  # the main process fills the datasets cache, the others read it
        data = load_task_data(recipe.data, backbone.modality, recipe.seed, task_plugin)
    task_plugin.setup(data.label_names, data.train["labels"])
    task = Task(data.label_names, task_plugin.head)
    source = _load_source(source_dir, recipe) if source_dir else None
    model = backbone.build(task, source)
    rates = transfer_rates(recipe, backbone, model, _transferred(recipe, source))
    watch = DriftWatch(model, rates, backbone) if rates.params and "scratch" in recipe.baselines else None
    manifest = build_manifest(recipe, data, weights_sha256(model))
    total_params = sum(p.numel() for p in model.parameters())
    model = strategy.apply(model, backbone)
    trainable_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    with accelerator.main_process_first():
        train_ds = task_plugin.prepare(backbone, data.train, train=True)
        eval_ds = task_plugin.prepare(backbone, data.eval, train=False)

    if not quiet:
        processes = f", {accelerator.num_processes} processes" if accelerator.num_processes > 1 else ""
        accelerator.print(
            f"{recipe.name}: {backbone.describe()} + {recipe.strategy.plugin}, {len(data.train)} train / "
            f"{len(data.eval)} eval examples, {task.num_labels} label{'s' if task.num_labels != 1 else ''}, "
            f"{trainable_params:,} of {total_params:,} parameters train{processes}"
        )
        if taken:
            accelerator.print(f"{recipe.name}: {taken_line(taken)}")
    if accelerator.is_main_process:  # once data, model and strategy are known good: a bad input changes nothing
        claim_output_dir(out, previous)
        write_atomic(out / "recipe.yaml", recipe.to_yaml())
    accelerator.wait_for_everyone()
    from ._feature_cache import use_cached_features
    from ._pretrain import run_pretrain

    pretrained, fit_recipe = run_pretrain(recipe, backbone, strategy, model, train_ds, task, out, accelerator, resume,
                                          quiet)
    cached = use_cached_features(recipe, backbone, strategy, model, train_ds, eval_ds, accelerator, quiet)
    # Seed again: imports above may have drawn from the global RNGs (rich draws a random colour seed on import),
    # and augmentation must not depend on whether the source run was trained in this process.
    set_seed(recipe.seed)
    result = fit(fit_recipe, cached.backbone, strategy, model, cached.train, cached.eval, out, accelerator, resume, quiet,
                 task_plugin, callbacks, rates)

    summary: dict[str, Any] = {
        "name": recipe.name,
        "eval": result.eval,
        "trainable_params": trainable_params,
        "total_params": total_params,
        "train_seconds": round(result.train_seconds + (pretrained or {}).get("seconds", 0.0), 3),
        "epochs": recipe.train.epochs,
        "num_train_examples": len(data.train),
        "num_eval_examples": len(data.eval),
        "label_names": task.label_names,
        "backbone": backbone.describe(),
        "strategy": recipe.strategy.plugin,
        "source": str(source_dir) if source_dir else None,
        "feature_cache": cached.summary,
    }
    if rates.params:
        summary["backbone_lr_ratio"] = rates.ratio
    if taken:
        summary["inherited_options"] = taken
    if pretrained:
        summary["pretrain"] = pretrained
    if result.best_checkpoint:
        summary["best_checkpoint"] = result.best_checkpoint
    if result.soup:
        summary["soup"] = result.soup
    trained: nn.Module | None = result.model
    if is_sharded(accelerator):  # every process takes part in the gather; the main one saves an unsharded copy
        full_state = accelerator.get_state_dict(result.model)
        trained = unsharded_copy(full_state, lambda: strategy.apply(backbone.build(task, source), backbone))
    if accelerator.is_main_process:
        assert trained is not None
        _save_model(trained, backbone, strategy, recipe, task, out)
    accelerator.wait_for_everyone()

    for name in recipe.baselines:
        baseline = _run_baseline(recipe, name, out, resume=resume, overwrite=overwrite, quiet=quiet)
        summary.setdefault("baselines", {})[name] = {
            k: baseline.summary[k] for k in ("eval", "trainable_params", "total_params", "train_seconds")
        }
        summary.setdefault("transfer_gain", {})[name] = {
            k: round(result.eval[k] - baseline.metrics[k], 6) for k in result.eval if k != "loss"
        }
    findings = check_transfer(recipe, summary, result.history, out, backbone, source, watch, rates,
                              task_plugin.metric_goals)
    if findings:
        summary["transfer_check"] = findings
    if accelerator.is_main_process:
        from ._report import write_report

        summary.update(task_plugin.summary(result.eval_outputs))
        write_model_card(out / "model", recipe, summary, manifest, backbone, task_plugin)
        write_report(out, recipe, summary, result.history, result.eval_outputs, task_plugin)
        write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        if not quiet:
            scores = ", ".join(f"{k} {v:.4f}" for k, v in result.eval.items() if k != "loss")
            print(f"{recipe.name}: {scores} -> {out}")
            if findings:  # the last lines: what the run found, what to try (also in report.md)
                print("\n".join(findings_lines(findings, markdown=False)))
            else:
                for name, gain in summary.get("transfer_gain", {}).items():
                    print(f"{recipe.name}: transfer gain over {name}: {gain_text(gain, task_plugin.metric_goals)}")
    accelerator.wait_for_everyone()
    return FinetuneResult(out, result.eval, summary, result.model, task.label_names)


def _transferred(recipe: Recipe, source: SourceModel | None) -> bool:
    """Whether the backbone starts from trained weights: a source run, a weights file or a checkpoint."""
    return source is not None or bool(recipe.backbone.weights) or recipe.backbone.pretrained


def _run_baseline(recipe: Recipe, name: str, out: Path, **flags: Any) -> FinetuneResult:
    """The same recipe with the backbone trained from random initialisation ("scratch")."""
    return _run(scratch_recipe(recipe, f"{recipe.name}-{name}", out / "baselines" / name), **flags)


def scratch_recipe(recipe: Recipe, name: str, output_dir: Path) -> Recipe:
    """``recipe`` with the same architecture from random weights, all of it training: the scratch baseline."""
    data = recipe.model_dump(mode="json")
    data["name"] = name
    data["output_dir"] = str(output_dir)
    data["baselines"] = []
    data["backbone"].update(pretrained=False, init_from=None, weights=None)
    if recipe.strategy.plugin != "full":
        # A frozen or adapted random network is not the scratch baseline: all of it trains.
        data["strategy"] = {"plugin": "full", "options": {}}
    return Recipe.model_validate(data)


def _save_model(model: nn.Module, backbone: Backbone, strategy: Strategy, recipe: Recipe, task: Task, out: Path):
    from . import __version__
    from ._paths import staged_folder

    final = out / "model"
    with staged_folder(out / ".model.tmp") as tmp:
        strategy.save(model, backbone, tmp, task)
        meta = {
            "format_version": 1,
            "tl_toolkit_version": __version__,
            "backbone": recipe.backbone.model_dump(mode="json"),
            "data": recipe.data.model_dump(mode="json"),
            "strategy": recipe.strategy.model_dump(mode="json"),
            "label_names": task.label_names,
        }
        (tmp / MODEL_META).write_text(json.dumps(meta, indent=2) + "\n")
    if final.exists():
        old = out / ".model.old"
        if old.exists():
            shutil.rmtree(old)
        final.rename(old)
        tmp.rename(final)
        shutil.rmtree(old)
    else:
        tmp.rename(final)


# -- loading finished runs --------------------------------------------------


def load_model_dir(path: str | Path, merge: bool = False) -> LoadedModel:
    """Load a finished run's model through the plugins that trained it.

    Raises:
        UserError: not a finished run, or its plugins are not installed.
    """
    from ._run_files import check_model_dir, damaged_model

    model_dir = resolve_run_dir(path)
    meta = check_model_dir(model_dir, MODEL_META)
    backbone_cfg = BackboneConfig.model_validate(meta["backbone"])
    data_cfg = DataConfig.model_validate(meta["data"])
    backbone = registry.get("backbone", backbone_cfg.plugin)(backbone_cfg, data_cfg)
    strategy = registry.get("strategy", meta["strategy"]["plugin"])(meta["strategy"].get("options", {}))
    from ._tasks import make_task

    task = make_task(data_cfg)
    task.setup(list(meta["label_names"]))
    try:
        model = strategy.load(backbone, model_dir, merge=merge)
    except (OSError, ValueError) as e:  # a model folder missing a file, or with a file a library cannot parse
        raise damaged_model(model_dir, e) from None
    model.eval()
    return LoadedModel(model, backbone, strategy, list(meta["label_names"]), meta, task)


def with_source_options(recipe: Recipe, quiet: bool) -> Recipe:
    """``recipe`` with the options its ``init_from`` source run offers (the source trained first if need be).

    For commands that derive several runs from one recipe (``tl compare``): resolved once, every
    run, the scratch one included, is fed the same way, as ``baselines: [scratch]`` is.
    """
    if not recipe.backbone.init_from:
        return recipe
    recipe, taken = inherit_options(recipe, _resolve_source(recipe, quiet))
    if taken and not quiet:  # said once here: the derived runs see them as the recipe's own
        print(f"{recipe.name}: {taken_line(taken)}")
    return recipe


def _resolve_source(recipe: Recipe, quiet: bool) -> Path:
    """The source run of ``backbone.init_from``, trained first when it is a recipe with no finished run."""
    value = recipe.backbone.init_from or ""
    path = Path(value)
    if path.suffix not in (".yaml", ".yml"):
        return resolve_run_dir(path)
    source = validate(path)
    run_dir = source.output_path
    if not (run_dir / "summary.json").is_file():
        if not quiet:
            print(f"{recipe.name}: training the source run {source.name!r} first ({path})")
        # Resumed when it was interrupted, even before its first checkpoint (then it starts over).
        _run(source, resume=started(run_dir), overwrite=False, quiet=quiet)
    return resolve_run_dir(run_dir)


def _load_source(model_dir: Path, recipe: Recipe) -> SourceModel:
    loaded = load_model_dir(model_dir, merge=True)
    if loaded.meta["backbone"]["plugin"] != recipe.backbone.plugin:
        raise UserError(
            f"backbone.init_from: the source run used backbone {loaded.meta['backbone']['plugin']!r}, "
            f"this recipe uses {recipe.backbone.plugin!r}; they must match"
        )
    return SourceModel(model=loaded.model, directory=model_dir, label_names=loaded.label_names,
                       backbone=loaded.backbone)
