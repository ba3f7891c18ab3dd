"""What a target run takes from its source run (``backbone.init_from``): the preprocessing it leaves unset.

A backbone names its options that shape the inputs (:attr:`~tl_toolkit.Backbone.preprocessing_options`,
e.g. ``resnet``'s random-resized-crop ``scale`` and ``hflip``). Those the target recipe does not set
are taken from the source run's recipe, so the transferred filters see inputs prepared as they
were trained on; a key the recipe sets wins. The resolved recipe (``recipe.yaml``) records what was
inherited, and the scratch baseline uses the same options, so the gain compares like with like.
On the issue-23 proxy (``bench/vision_shift.py``), inheriting the CIFAR source's ``scale: [0.6, 1.0]``
instead of the default ``[0.5, 1.0]`` raised the transferred ResNet-18's accuracy by 1.9 points over
three seeds (+3.6, -0.8, +2.8): small against the seed noise, but the right direction for a default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._recipe import Recipe

__all__ = ["inherit_preprocessing"]


def inherit_preprocessing(recipe: Recipe, source_dir: Path, keys: tuple[str, ...]) -> Recipe:
    """``recipe`` with each backbone option in ``keys`` it leaves unset taken from the source run in ``source_dir``.

    ``source_dir`` is the source run's ``model/`` directory; ``keys`` the backbone's
    :attr:`~tl_toolkit.Backbone.preprocessing_options`.
    """
    meta_file = source_dir / "tl_toolkit.json"
    if not keys or not meta_file.is_file():
        return recipe
    theirs = json.loads(meta_file.read_text()).get("backbone", {}).get("options", {})
    mine = recipe.backbone.options
    inherited = {k: theirs[k] for k in keys if k in theirs and k not in mine}
    if not inherited:
        return recipe
    backbone = recipe.backbone.model_copy(update={"options": {**mine, **inherited}})
    return recipe.model_copy(update={"backbone": backbone})
