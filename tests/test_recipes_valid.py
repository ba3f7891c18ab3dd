"""Every recipe shipped in ``recipes/`` validates; new files are picked up by the glob.

Paths in recipes are relative to the repository root (``tl run recipes/x.yaml``
is run from there). The shared data sets live in ``../shared/data``, which not
every machine has: where it is absent, problems about paths inside it are the
only ones tolerated, and everything else (schema, plugin names and options,
other files) is still checked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tl_toolkit._recipe import load_recipe
from tl_toolkit._registry import registry
from tl_toolkit._validate import check_recipe, validate

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").glob("*.yaml"))
SHARED_DATA = Path("../shared/data")  # relative to the repository root, as the recipes write it


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def _names(path: Path) -> str:
    return path.name


def _needs_absent_shared_data(problem: str) -> bool:
    """A problem about a path in ../shared/data on a machine without it."""
    return not SHARED_DATA.is_dir() and str(SHARED_DATA) in problem


def test_there_are_recipes() -> None:
    assert RECIPES, "recipes/*.yaml is empty"


@pytest.mark.parametrize("path", RECIPES, ids=_names)
def test_recipe_schema_and_plugins(path: Path) -> None:
    recipe = load_recipe(path.relative_to(REPO))
    backbone = registry.get("backbone", recipe.backbone.plugin)
    strategy = registry.get("strategy", recipe.strategy.plugin)
    assert backbone.option_problems(recipe.backbone.options) == []
    assert strategy.option_problems(recipe.strategy.options) == []


@pytest.mark.parametrize("path", RECIPES, ids=_names)
def test_recipe_validates(path: Path) -> None:
    relative = path.relative_to(REPO)
    if SHARED_DATA.is_dir():
        recipe = validate(relative)  # raises RecipeError listing every problem
        assert recipe.name
    else:
        problems = check_recipe(load_recipe(relative))
        assert [p for p in problems if not _needs_absent_shared_data(p)] == []
