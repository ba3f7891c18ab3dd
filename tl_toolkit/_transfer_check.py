"""When transfer did not help: what the run can check itself, and what to try next.

A run with ``baselines: [scratch]`` whose transfer gain is at or below zero gets
a "Transfer did not help" section in ``report.md`` and the same findings as its
last printed lines: how far the backbone drifted from its starting weights
(relative change per block), in how many epochs the transferred run led
scratch, how the preprocessing differs from the source run's, and the learning
rate of the head and of the transferred weights, each with what to try next.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._run_files import MODEL_META

if TYPE_CHECKING:
    from torch import nn

    from ._plugin_api import Backbone, SourceModel
    from ._recipe import Recipe
    from ._transfer_lr import TransferRates

__all__ = ["DriftWatch", "check_transfer", "findings_lines", "gain_text"]

#: A block whose weights changed by more than this share of their norm has left its starting point behind.
FAR = 0.5


class DriftWatch:
    """The starting values of the transferred weights, to measure how far training moved them."""

    def __init__(self, model: nn.Module, rates: TransferRates, backbone: Backbone) -> None:
        self.start = {name: (param, param.detach().to("cpu", copy=True))
                      for name, param in model.named_parameters() if id(param) in rates.params}
        try:
            self.blocks = backbone.block_names(model)
        except NotImplementedError:  # then each top-level module is a block
            self.blocks = []

    def drift(self) -> dict[str, float]:
        """Relative change ``||w - w0|| / ||w0||`` of each block's weights (top-level modules without block names)."""
        totals: dict[str, list[float]] = {}
        for name, (param, start) in self.start.items():
            now = param.detach().to("cpu")
            if now.shape != start.shape or start.ndim < 2:  # biases and norms barely say anything; sharded: skip
                continue
            block = next((b for b in self.blocks if name == b or name.startswith(f"{b}.")), name.split(".")[0])
            entry = totals.setdefault(block, [0.0, 0.0])
            entry[0] += float((now.float() - start.float()).norm()) ** 2
            entry[1] += float(start.float().norm()) ** 2
        return {block: round((change / norm) ** 0.5, 4) for block, (change, norm) in totals.items() if norm > 0}


def check_transfer(recipe: Recipe, summary: dict[str, Any], history: list[dict[str, Any]], out: Path,
                   backbone: Backbone, source: SourceModel | None, watch: DriftWatch | None,
                   rates: TransferRates, goals: dict[str, str]) -> dict[str, Any] | None:
    """The findings of a transfer run that did not beat scratch (JSON-ready), or None when it did.

    ``goals``: the task's metrics and whether each is maximised or minimised
    (``TaskPlugin.metric_goals``); the first one the gain holds is the one judged.
    """
    gain = summary.get("transfer_gain", {}).get("scratch")
    if not gain:
        return None
    metric = next((m for m in goals if m in gain), next(iter(gain)))
    sign = -1.0 if goals.get(metric) == "min" else 1.0
    if sign * gain[metric] > 0:
        return None
    findings: dict[str, Any] = {"metric": metric, "gain": gain[metric], "lower_is_better": sign < 0}
    findings["drift"] = watch.drift() if watch else {}
    findings["lead"] = _lead(history, out / "baselines" / "scratch" / "metrics.jsonl", metric, sign)
    findings["taken"] = summary.get("inherited_options", {})
    meta = _source_meta(source)
    findings["preprocessing"] = _preprocessing(recipe, backbone, source, meta, findings["taken"])
    findings["resized"] = _data_changed(meta, recipe, "image_size")
    findings["lr"] = {"head": recipe.train.lr, "transferred": recipe.train.lr * rates.ratio, "ratio": rates.ratio,
                      "layer_decay": recipe.strategy.options.get("layer_decay")}
    findings["next"] = _next_steps(findings, recipe)
    return findings


def _evals(rows: list[dict[str, Any]], metric: str) -> list[float]:
    return [r["eval"][metric] for r in rows if r.get("kind") == "eval" and metric in r.get("eval", {})]


def _lead(history: list[dict[str, Any]], scratch_log: Path, metric: str, sign: float) -> dict[str, Any]:
    """The epochs in which the transferred run's ``metric`` was better than scratch's (``sign``: -1 if lower is)."""
    mine = _evals(history, metric)
    theirs = _evals([json.loads(line) for line in scratch_log.read_text().splitlines()], metric) \
        if scratch_log.is_file() else []
    led = [i + 1 for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if sign * (a - b) > 0]
    return {"epochs": min(len(mine), len(theirs)), "led": led}


def _source_meta(source: SourceModel | None) -> dict[str, Any]:
    """The source run's saved facts (its recipe's backbone and data sections); empty without a source."""
    meta_file = source.directory / MODEL_META if source is not None else None
    return json.loads(meta_file.read_text()) if meta_file is not None and meta_file.is_file() else {}


def _data_changed(meta: dict[str, Any], recipe: Recipe, key: str) -> bool:
    """Whether ``data.<key>`` differs from the source run's (a source that did not record it: no)."""
    src_data = meta.get("data", {})
    return key in src_data and src_data[key] != getattr(recipe.data, key)


def _preprocessing(recipe: Recipe, backbone: Backbone, source: SourceModel | None, meta: dict[str, Any],
                   taken: dict[str, Any]) -> list[str]:
    """How this run feeds its inputs differently from the source run (one sentence each).

    ``meta``: the source run's saved facts (:func:`_source_meta`). ``taken``: the options this run
    took from the source run (``Backbone.transfer_options``); they are adjusted to this run's data
    on purpose, so they are listed apart (``findings["taken"]``).
    """
    if source is None:
        return []
    diffs = []
    src_data = meta.get("data", {})
    for key in ("image_size", "max_length"):
        if _data_changed(meta, recipe, key):
            diffs.append(f"data.{key} is {getattr(recipe.data, key)} here and was {src_data[key]} in the source run.")
    theirs_opts, mine_opts = meta.get("backbone", {}).get("options", {}), recipe.backbone.options
    for key in sorted(set(theirs_opts) | set(mine_opts)):
        if key not in taken and theirs_opts.get(key) != mine_opts.get(key):
            diffs.append(f"backbone.options.{key} is {_shown(mine_opts, key)} here and was "
                         f"{_shown(theirs_opts, key)} in the source run.")
    if source.backbone is not None and source.backbone.preprocessing_key() != backbone.preprocessing_key():
        diffs.append(f"The evaluation preprocessing differs: the source run used "
                     f"`{_one_line(source.backbone.preprocessing_key())}`, this run "
                     f"`{_one_line(backbone.preprocessing_key())}`.")
    return diffs


def _shown(options: dict[str, Any], key: str) -> str:
    return repr(options[key]) if key in options else "the default"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _next_steps(findings: dict[str, Any], recipe: Recipe) -> list[str]:
    """What to try next, most likely first, as whole sentences."""
    steps = []
    far = [b for b, d in findings["drift"].items() if d > FAR]
    ratio = findings["lr"]["ratio"]
    resized = findings.get("resized", False)
    if far:
        steps.append(f"The transferred weights moved far from where they started ({', '.join(far)} changed by more "
                     f"than {FAR:.0%} of their norm): lower train.backbone_lr_ratio (now {ratio:g}) to "
                     f"{ratio * 0.3:.2g}, or train fewer epochs"
                     + (" (the images changed size, and the backbone then often needs its full rate to adapt: "
                        "run both and compare)." if resized else "."))
    elif ratio >= 1:
        steps.append("The transferred weights trained at the head's learning rate: compare a run with "
                     "train.backbone_lr_ratio 0.3, which keeps more of the source's features (when the inputs "
                     "changed size, the first layers may need the full rate to adapt).")
    lead = findings["lead"]
    if lead["epochs"] and not lead["led"]:
        steps.append("The transferred run never led scratch: the source features may not suit this task; try "
                     "strategy head-only to measure what the frozen features alone are worth, or a source task "
                     "closer to this one.")
    elif lead["led"] and lead["led"][-1] < lead["epochs"]:
        steps.append(f"The transferred run led scratch until epoch {lead['led'][-1]} and then lost its lead: "
                     f"train fewer epochs, or set train.best_metric to {findings['metric']} to keep the best epoch.")
    if findings["preprocessing"]:
        steps.append("The inputs are prepared differently from the source run: make the settings listed above match "
                     "the source run's, or train the source with this run's settings.")
    if recipe.strategy.plugin == "full":
        steps.append("Compare strategies on the same data with `tl compare RECIPE --strategies "
                     "head-only,lp-ft,full,scratch`.")
    return steps


def _change(value: float, lower_is_better: bool) -> str:
    """One metric's gain: points for a score that rises, the plain difference for one that falls (MSE)."""
    return f"{value:+.4g} (lower is better)" if lower_is_better else f"{value * 100:+.1f} pt"


def gain_text(gain: dict[str, float], goals: dict[str, str], labels: dict[str, str] | None = None) -> str:
    """A transfer gain as words, each metric under its ``labels`` name (:func:`_change`)."""
    labels = labels or {}
    return ", ".join(f"{labels.get(k, k)} {_change(v, True)}" if goals.get(k) == "min"
                     else f"{_change(v, False)} {labels.get(k, k)}" for k, v in gain.items())


def findings_lines(findings: dict[str, Any], markdown: bool) -> list[str]:
    """The findings as report lines (``markdown``) or as the run's last printed lines."""
    metric, gain = findings["metric"], findings["gain"]
    change = _change(gain, bool(findings.get("lower_is_better")))
    lines = [f"Transfer did not help: {metric} is {change} against the same recipe trained from scratch."]
    drift = findings["drift"]
    if drift:
        lines.append("Drift of the backbone from its starting weights (relative change of each block's weights): "
                     + ", ".join(f"{block} {value:.2f}" for block, value in drift.items()) + ".")
    lead = findings["lead"]
    if lead["epochs"]:
        lines.append(f"The transferred run led scratch in {len(lead['led'])} of {lead['epochs']} epochs"
                     + (f" (epochs {', '.join(map(str, lead['led']))})." if lead["led"] else "."))
    pre = findings["preprocessing"]
    lines.append("Preprocessing differences from the source run: " + (" ".join(pre) if pre else "none found."))
    if findings.get("taken"):
        lines.append("Taken from the source run and adjusted to this run's data: " + ", ".join(
            f"backbone.options.{key} {json.dumps(value)}" for key, value in findings["taken"].items()) + ".")
    lr = findings["lr"]
    decay = f", with layer-wise decay {lr['layer_decay']}" if lr["layer_decay"] else ""
    lines.append(f"Learning rate per layer: the head {lr['head']:g}, the transferred backbone weights "
                 f"{lr['transferred']:g} (train.backbone_lr_ratio {lr['ratio']:g}{decay}).")
    if not markdown:
        return [*lines, *(f"Try next: {step}" for step in findings["next"])]
    head, *checks = lines
    return ["## Transfer did not help", "", f"**{head}** What the run can check itself:", "",
            *(f"- {line}" for line in checks), "", "What to try next:", "",
            *(f"{i}. {step}" for i, step in enumerate(findings["next"], 1)), ""]
