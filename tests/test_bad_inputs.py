"""Bad input, everywhere: every verb of ``tl`` meets the mistakes a user makes (table in ``bad_input_cases.py``).

Each case is a real ``tl`` command line, run by the console script's ``main()``
in a child forked from this process (which already holds the imports, so a
case costs milliseconds, not an interpreter start). Every case must exit 2,
print the error line naming the recipe key, file or option with the cause,
print no traceback, and leave the files already in the case's output
directory, and the shared finished runs, byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from bad_input_cases import CASES, GOOD_TSV, Case, Env, World, drop_privileges
from bad_input_messages import MESSAGES
from conftest import run_tl
from forked import tl_in_child
from PIL import Image

from tl_toolkit._cli import main


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (and the folder's existence) by content hash."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha1(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()} | {".": "folder"}


def _tiny_run(world_root: Path, name: str, recipe: dict[str, Any]) -> Path:
    out = world_root / "runs" / name
    path = world_root / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**recipe, "name": name, "output_dir": str(out)}))
    code, text = tl_in_child(["run", str(path), "-q"], world_root, world_root / f"{name}.log")
    assert code == 0, text
    return out


def _warm_imports() -> None:
    """Import once, here, what the commands import, so that each forked child finds it loaded.

    Every module of the core and of the built-in plugins, not a list: a child that dropped to ``nobody``
    cannot read a checkout in a private folder (``mktemp -d``), so a module it imports lazily would fail there.
    """
    import concurrent.futures.process  # noqa: F401 - also what root's Python keeps from nobody
    import importlib
    import pkgutil

    import sklearn.metrics  # noqa: F401
    import tl_toolkit_plugins

    import tl_toolkit
    from tl_toolkit._registry import registry

    for package in (tl_toolkit, tl_toolkit_plugins):
        for module in pkgutil.iter_modules(package.__path__):
            if module.name != "__main__":  # running it is the CLI
                importlib.import_module(f"{package.__name__}.{module.name}")
    registry.all()  # every registered plugin (third-party ones too), and the libraries they import


@pytest.fixture(scope="module")
def world(tiny_bert_dir: Path) -> Iterator[World]:
    """Good data, a tiny BERT and three finished runs, in a folder every user may read."""
    _warm_imports()
    root = Path(tempfile.mkdtemp(prefix="tl-bad-inputs-"))
    root.chmod(0o755)
    bert = root / "bert"
    shutil.copytree(tiny_bert_dir, bert)
    for path in [bert, *bert.rglob("*")]:  # copytree keeps pytest's private modes: readable by every user
        path.chmod(0o755 if path.is_dir() else 0o644)
    (root / "train.tsv").write_text(GOOD_TSV)
    (root / "dev.tsv").write_text(GOOD_TSV)
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (root / "img" / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(root / "img" / cls / f"{i}.png")
    (root / "hf-cache").mkdir(mode=0o777)
    (root / "hf-cache").chmod(0o777)
    text = {"backbone": {"plugin": "bert", "model": str(bert)},
            "data": {"format": "csv", "train": str(root / "train.tsv"), "eval": str(root / "dev.tsv")},
            "train": {"epochs": 1, "batch_size": 4}}
    runs = {
        "text": _tiny_run(root, "text", {**text, "strategy": {"plugin": "full"}}),
        "lora": _tiny_run(root, "lora", {**text, "strategy": {"plugin": "lora"}}),
        "image": _tiny_run(root, "image", {
            "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False},
            "data": {"format": "imagefolder", "train": str(root / "img"), "eval": str(root / "img"),
                     "image_size": 32}, "strategy": {"plugin": "full"}, "train": {"epochs": 1, "batch_size": 4}}),
    }
    for run in runs.values():  # the runs' folders as any user's: readable, not writable by others
        for path in [run, *run.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    (root / "cases").mkdir()
    (root / "cases").chmod(0o755)
    yield World(root=root, bert=bert, runs=runs)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def world_snapshot(world: World) -> dict[str, dict[str, str]]:
    return {name: _snapshot(run) for name, run in world.runs.items()}


def _case_env(world: World, case: Case, suffix: str = "") -> Env:
    slug = "".join(c if c.isalnum() else "-" for c in case.id) + suffix
    folder = world.root / "cases" / slug
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    env = Env(world, folder)
    env.out.mkdir()
    (env.out / "notes.txt").write_text("the user's own notes, never to be touched\n")
    (env.out / "recipe.yaml").write_text("# an earlier attempt's recipe\n")
    return env


def _as_nobody(world: World) -> Callable[[], None]:
    def drop() -> None:
        import concurrent.futures.process  # noqa: F401 - what root's Python keeps from nobody: imported first
        import logging.handlers  # noqa: F401

        import datasets
        import sklearn.metrics  # noqa: F401
        import timm  # noqa: F401 - resnet's model_problems imports it during tl validate

        datasets.config.HF_DATASETS_CACHE = world.root / "hf-cache"  # root's cache is not nobody's
        drop_privileges()

    return drop


def _placeholders(lines: list[str], world: World, env: Env) -> list[str]:
    """``lines`` with the case's folder written ``{dir}`` and the world's ``{root}``, as ``MESSAGES`` has them."""
    return [line.replace(str(env.dir), "{dir}").replace(str(world.root), "{root}") for line in lines]


def test_the_matrix_covers_every_verb_tl_has() -> None:
    """Every verb ``tl --help`` lists meets at least one bad input here (a new verb needs its cases)."""
    import argparse

    from tl_toolkit._cli_parser import build_parser

    [verbs] = [a.choices for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert len({c.id for c in CASES}) == len(CASES)
    assert {c.verb for c in CASES} == set(verbs)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(world: World, world_snapshot: dict[str, dict[str, str]], case: Case) -> None:
    env = _case_env(world, case)
    argv = case.build(env)
    if case.user == "nobody":  # the case's folder is the user's own; what the case locked stays root's
        for path in (env.dir, env.out, *env.out.iterdir()) if os.geteuid() == 0 else ():
            os.chown(path, 65534, 65534)
    before = _snapshot(env.out)
    siblings = {p.name for p in env.dir.iterdir()}
    code, text = tl_in_child(argv, env.dir, world.root / f"{env.dir.name}.log",
                             before=_as_nobody(world) if case.user == "nobody" else None)
    assert "Traceback" not in text, text
    assert code == 2, text
    errors = [line for line in text.splitlines() if ": error: " in line]
    assert errors, text
    assert all(fragment in errors[0] for fragment in case.says), errors[0]
    assert _placeholders(errors, world, env) == MESSAGES[case.id]
    assert _snapshot(env.out) == before, "the files in the output directory changed"
    new = {p.name for p in env.dir.iterdir()} - siblings
    assert not new, f"a failed command left {sorted(new)} behind"
    for name, run in world.runs.items():
        if str(run) in argv:
            assert _snapshot(run) == world_snapshot[name], f"the finished run {name!r} changed"


# Through the real command (a new interpreter each, seconds apiece): the first case of every verb, and two more.
REAL_TL = [*(next(c for c in CASES if c.verb == verb and c.user == "root") for verb in dict.fromkeys(
    c.verb for c in CASES)), *(c for c in CASES if c.id.endswith((":unknown verb", ":corrupt image")))]


@pytest.mark.parametrize("case", REAL_TL, ids=[c.id for c in REAL_TL])
def test_bad_input_through_the_real_tl(world: World, case: Case) -> None:
    """``python -m tl_toolkit`` itself: exit 2, the same whole error lines as above, no traceback, nothing written."""
    env = _case_env(world, case, "-real-tl")
    argv = case.build(env)
    before = _snapshot(env.out)
    proc = run_tl(*argv, cwd=env.dir)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert _placeholders(errors, world, env) == MESSAGES[case.id]
    assert _snapshot(env.out) == before


def test_internal_error_exits_1_with_traceback_and_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import tl_toolkit._validate

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug, not the user's fault")

    monkeypatch.setenv("TL_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(tl_toolkit._validate, "validate", broken)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\n")
    code = main(["validate", str(recipe)])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" in err and "RuntimeError: a bug, not the user's fault" in err
    [log] = (tmp_path / "logs").iterdir()
    assert str(log) in err.splitlines()[-1]
    text = log.read_text()
    assert "tl validate" in text and "Traceback" in text and "a bug, not the user's fault" in text
