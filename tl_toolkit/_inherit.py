"""What a target run takes from its source run (``backbone.init_from``): the preprocessing its recipe leaves unset.

The transferred filters were trained on inputs prepared one way (crops, flips,
an image size); a target recipe that says nothing about them should feed its
images the way that suits those filters, not a generic default. The backbone
knows what that means for its inputs (:meth:`~tl_toolkit.Backbone.transfer_options`;
``resnet``: the source's crops and flips, the crop range narrowed when the target's
images are larger than the source's). A key the recipe sets wins. The resolved
``recipe.yaml`` records what was taken, and the scratch baseline, built from that
recipe, uses the same options, so the transfer gain compares like with like.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ._errors import UserError
from ._recipe import BackboneConfig, DataConfig, Recipe, load_recipe
from ._registry import registry
from ._run_files import MODEL_META, resolve_run_dir

__all__ = ["inherit_options", "source_options_preview", "taken_line"]


def inherit_options(recipe: Recipe, source_dir: Path) -> tuple[Recipe, dict[str, Any]]:
    """``recipe`` with the backbone options the source run in ``source_dir`` offers, and those taken.

    ``source_dir`` is the source run's ``model/`` directory. A source of another backbone
    plugin, or one whose saved recipe sections this version cannot read, offers nothing
    (loading the first says why it cannot be the starting point).
    """
    meta_file = source_dir / MODEL_META
    if not meta_file.is_file():
        return recipe, {}
    meta = json.loads(meta_file.read_text())
    try:
        theirs, their_data = BackboneConfig.model_validate(meta["backbone"]), DataConfig.model_validate(meta["data"])
    except (KeyError, TypeError, ValidationError):
        return recipe, {}
    return _take(recipe, theirs, their_data)


def _take(recipe: Recipe, theirs: BackboneConfig, their_data: DataConfig) -> tuple[Recipe, dict[str, Any]]:
    """``recipe`` with what a source run of ``theirs`` on ``their_data`` offers it, and what it took."""
    if theirs.plugin != recipe.backbone.plugin:
        return recipe, {}
    backbone = registry.get("backbone", recipe.backbone.plugin)(recipe.backbone, recipe.data)
    offered = backbone.transfer_options(theirs, their_data)
    mine = recipe.backbone.options
    model = type(backbone).options_model
    default = model.model_validate(mine).model_dump(mode="json") if model is not None else {}
    # What the recipe sets stays; an offer equal to what the run gets anyway changes nothing.
    taken = {key: value for key, value in offered.items() if key not in mine and default.get(key, object()) != value}
    if not taken:
        return recipe, {}
    section = recipe.backbone.model_copy(update={"options": {**mine, **taken}})
    return recipe.model_copy(update={"backbone": section}), taken


def taken_line(taken: dict[str, Any]) -> str:
    """What a run takes from its source, as the run and ``tl validate`` print it (after ``NAME: ``)."""
    shown = ", ".join(f"backbone.options.{key}={json.dumps(value)}" for key, value in taken.items())
    return f"from the source run, {shown} (set them in the recipe to choose)"


def source_options_preview(recipe: Recipe) -> dict[str, Any]:
    """The options a run of ``recipe`` would take from its ``init_from`` source, without training anything.

    A source recipe whose run is not finished yet offers what its own sections say (``tl validate``
    trains nothing); empty when there is no source, or that source takes options from a source of its own.
    """
    value = recipe.backbone.init_from
    if not value:
        return {}
    path = Path(value)
    if path.suffix in (".yaml", ".yml"):
        source = load_recipe(path)
        path = source.output_path
        if not (path / "model" / MODEL_META).is_file():
            return {} if source.backbone.init_from else _take(recipe, source.backbone, source.data)[1]
    try:
        return inherit_options(recipe, resolve_run_dir(path))[1]
    except UserError:
        return {}
