"""The real ``tl`` command line, driven in a subprocess: exit codes, messages, cheap imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

def tl(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tl_toolkit ARGS`` offline and capture its output."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "tl_toolkit", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def error_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


def assert_user_error(result: subprocess.CompletedProcess[str], count: int) -> list[str]:
    """Exit 2, ``count`` problems one a line, no traceback; return the lines."""
    lines = error_lines(result)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(lines) == count, lines
    assert all(line.startswith("tl ") and ": error: " in line for line in lines), lines
    return lines


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    (tmp_path / "train.csv").write_text("sentence,label\ngood,1\nbad,0\n", encoding="utf-8")
    (tmp_path / "dev.csv").write_text("sentence,label\nfine,1\nawful,0\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def good_recipe(data_dir: Path) -> dict[str, Any]:
    return {
        "name": "cli-test",
        "output_dir": str(data_dir / "out"),
        "backbone": {"plugin": "bert", "model": "sentence-transformers/all-MiniLM-L6-v2"},
        "data": {"format": "csv", "train": "train.csv", "eval": "dev.csv", "text_column": "sentence"},
        "strategy": {"plugin": "lora", "options": {"r": 4}},
        "train": {"epochs": 1, "batch_size": 2},
    }


def write(path: Path, recipe: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(recipe, sort_keys=False), encoding="utf-8")
    return path


# -- help and list -----------------------------------------------------------


def test_help() -> None:
    result = tl("--help")
    assert result.returncode == 0, result.stderr
    for verb in ("run", "validate", "list", "predict", "eval"):
        assert verb in result.stdout


@pytest.mark.parametrize("verb", ["run", "validate", "list", "predict", "eval"])
def test_verb_help(verb: str) -> None:
    result = tl(verb, "--help")
    assert result.returncode == 0, result.stderr
    assert f"tl {verb}" in result.stdout


def test_no_command_prints_help_and_exits_2() -> None:
    result = tl()
    assert result.returncode == 2
    assert "validate" in result.stdout


def _declared_plugins() -> dict[tuple[str, str], str]:
    """Every built-in plugin as pyproject.toml declares it: (kind, name) -> entry point value."""
    import tomllib

    groups = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"]
    kinds = {"tl_toolkit.backbones": "backbone", "tl_toolkit.strategies": "strategy", "tl_toolkit.tasks": "task"}
    return {(kinds[group], name): value for group, entries in groups.items() for name, value in entries.items()}


def test_list_shows_every_declared_plugin_with_its_distribution_as_text_and_json() -> None:
    """``tl list`` and ``tl list --json``, through the real command, against the entry points pyproject declares."""
    import importlib.metadata as md

    declared = _declared_plugins()
    assert len(declared) == 17 and {k for k, _ in declared} == {"backbone", "strategy", "task"}
    version = md.version("tl-toolkit")
    result = tl("list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    for _kind, name in declared:
        [line] = [line for line in lines if line.split()[:1] == [name]]
        assert f"tl-toolkit {version}" in line, line
    for header in ("backbone plugins (tl_toolkit.backbones):", "strategy plugins (tl_toolkit.strategies):",
                   "task plugins (tl_toolkit.tasks):"):
        assert header in lines
    assert "failed plugins" not in result.stdout

    result = tl("list", "--json")
    assert result.returncode == 0, result.stderr
    by_key = {(row["kind"], row["name"]): row for row in json.loads(result.stdout)}
    for (kind, name), value in declared.items():
        row = by_key[(kind, name)]
        assert (row["dist"], row["version"], row["error"], row["value"]) == ("tl-toolkit", version, None, value)
        assert row["group"] == {"backbone": "tl_toolkit.backbones", "strategy": "tl_toolkit.strategies",
                                "task": "tl_toolkit.tasks"}[kind]


@pytest.mark.parametrize("argv", [["list"], ["list", "--json"], ["--help"], ["list", "--help"]])
def test_list_and_help_do_not_import_torch(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from tl_toolkit._cli import main\n"
        "try:\n"
        f"    code = main({argv!r})\n"
        "except SystemExit as e:  # --help exits through argparse\n"
        "    code = e.code\n"
        "assert code == 0, code\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'timm', 'peft') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr


# -- validate ----------------------------------------------------------------


def test_validate_the_quickstart_recipe() -> None:
    result = tl("validate", "recipes/quickstart.yaml")
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def test_validate_a_good_recipe(tmp_path: Path, good_recipe: dict[str, Any]) -> None:
    path = write(tmp_path / "good.yaml", good_recipe)
    result = tl("validate", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ok (bert + lora" in result.stdout
    assert result.stderr == ""


def test_validate_with_overrides(tmp_path: Path, good_recipe: dict[str, Any]) -> None:
    path = write(tmp_path / "good.yaml", good_recipe)
    result = tl("validate", str(path), "strategy.plugin=full", "train.epochs=2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "bert + full" in result.stdout


def _break(recipe: dict[str, Any], problem: str) -> None:
    if problem == "unknown key":
        recipe["train"]["epoch"] = 2
    elif problem == "unknown plugin":
        recipe["strategy"]["plugin"] = "lroa"
    elif problem == "wrong type":
        recipe["train"]["batch_size"] = "big"
    elif problem == "missing data file":
        recipe["data"]["train"] = "missing.csv"


def _registered(kind: str) -> str:
    from tl_toolkit._registry import registry

    return ", ".join(sorted(registry.names(kind)))


def _train_keys() -> str:
    from tl_toolkit._recipe import TrainConfig

    return ", ".join(TrainConfig.model_fields)


# What tl says after "<recipe path>: " for each problem, whole; {dir} is the recipe's folder.
PROBLEMS: dict[str, Any] = {
    "unknown key": lambda: f"unknown key 'train.epoch'. Did you mean 'epochs'? Valid keys in 'train': {_train_keys()}",
    "unknown plugin": lambda: (f"strategy.plugin: Unknown strategy plugin 'lroa'. Did you mean 'lora'? Registered "
                               f"strategy plugins: {_registered('strategy')}. Install a package that provides it "
                               f"(entry-point group 'tl_toolkit.strategies') or pick one of these."),
    "wrong type": lambda: ("train.batch_size: Input should be a valid integer, unable to parse string as an integer, "
                           "got 'big'"),
    "missing data file": lambda: "data.train: file 'missing.csv' not found; check the path (relative to {dir})",
}
MIXED_PRECISION = "train.mixed_precision: 'fp8' is not allowed; choose 'auto', 'no', 'fp16' or 'bf16'"
BRET = ("backbone.plugin: Unknown backbone plugin 'bret'. Did you mean 'bert'? Registered backbone plugins: "
        "{backbones}. Install a package that provides it (entry-point group 'tl_toolkit.backbones') or pick one "
        "of these.")
NOWHERE = "data.eval: file 'nowhere/dev.csv' not found; check the path (relative to {dir})"


def _says(verb: str, path: Path, problem: str) -> str:
    text = problem.replace("{dir}", str(path.parent)).replace("{backbones}", _registered("backbone"))
    return f"tl {verb}: error: {path}: {text}"


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_validate_reports_one_problem_a_line(
    tmp_path: Path, good_recipe: dict[str, Any], problem: str
) -> None:
    _break(good_recipe, problem)
    path = write(tmp_path / "bad.yaml", good_recipe)
    result = tl("validate", str(path), cwd=tmp_path)
    assert assert_user_error(result, 1) == [_says("validate", path, PROBLEMS[problem]())]
    assert result.stdout == ""


def test_validate_reports_every_problem_at_once(tmp_path: Path, good_recipe: dict[str, Any]) -> None:
    """Schema, plugin and file problems, every one on its own line, in one run of tl validate."""
    for problem in PROBLEMS:
        _break(good_recipe, problem)
    good_recipe["train"]["mixed_precision"] = "fp8"
    good_recipe["backbone"]["plugin"] = "bret"
    good_recipe["data"]["eval"] = "nowhere/dev.csv"
    path = write(tmp_path / "bad.yaml", good_recipe)
    lines = assert_user_error(tl("validate", str(path), cwd=tmp_path), 7)
    assert lines == [_says("validate", path, problem) for problem in (
        PROBLEMS["wrong type"](), MIXED_PRECISION, PROBLEMS["unknown key"](), BRET, PROBLEMS["unknown plugin"](),
        PROBLEMS["missing data file"](), NOWHERE)]


def test_validate_bad_override(tmp_path: Path, good_recipe: dict[str, Any]) -> None:
    path = write(tmp_path / "good.yaml", good_recipe)
    [line] = assert_user_error(tl("validate", str(path), "train.epoch=1", cwd=tmp_path), 1)
    assert "'train.epoch'" in line and "'epochs'" in line
    [line] = assert_user_error(tl("validate", str(path), "train..epochs=1", cwd=tmp_path), 1)
    assert "KEY=VALUE" in line


def test_validate_unknown_strategy_option(tmp_path: Path, good_recipe: dict[str, Any]) -> None:
    good_recipe["strategy"]["options"] = {"rank": 8}
    path = write(tmp_path / "bad.yaml", good_recipe)
    [line] = assert_user_error(tl("validate", str(path), cwd=tmp_path), 1)
    assert "strategy.options.rank" in line


def test_validate_missing_recipe_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-recipe.yaml"
    [line] = assert_user_error(tl("validate", str(missing), cwd=tmp_path), 1)
    assert str(missing) in line
    assert "not found" in line


def test_validate_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nbackbone: {plugin: bert\ntrain: [1,\n", encoding="utf-8")
    [line] = assert_user_error(tl("validate", str(path), cwd=tmp_path), 1)
    assert str(path) in line
    assert "not valid YAML" in line


# -- run ---------------------------------------------------------------------


@pytest.mark.parametrize("problem", ["unknown key", "unknown plugin", "missing data file"])
def test_run_on_a_bad_recipe_exits_2_and_creates_nothing(
    tmp_path: Path, good_recipe: dict[str, Any], problem: str
) -> None:
    _break(good_recipe, problem)
    path = write(tmp_path / "bad.yaml", good_recipe)
    result = tl("run", str(path), cwd=tmp_path)
    assert assert_user_error(result, 1) == [_says("run", path, PROBLEMS[problem]())]
    assert not Path(good_recipe["output_dir"]).exists()
    assert not (tmp_path / "runs").exists()


def test_run_with_a_bad_override_exits_2_and_creates_nothing(
    tmp_path: Path, good_recipe: dict[str, Any]
) -> None:
    path = write(tmp_path / "good.yaml", good_recipe)
    result = tl("run", str(path), "strategy.plugin=nope", "train.epochs=0", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "train.epochs" in result.stderr
    assert not Path(good_recipe["output_dir"]).exists()


def test_run_missing_recipe_file(tmp_path: Path) -> None:
    [line] = assert_user_error(tl("run", "nope.yaml", cwd=tmp_path), 1)
    assert "nope.yaml" in line
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("failure", [
    OSError(28, "No space left on device"),  # a write that failed as a whole: no file name
    RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on '
                 'device" })'),  # safetensors' own error type, as it words a full disk
])
def test_a_full_disk_is_one_sentence_whatever_raises_it(
        failure: Exception, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from tl_toolkit import _cli

    def full(args: Any) -> int:
        raise failure

    monkeypatch.setitem(_cli._COMMANDS, "list", full)
    assert _cli.main(["list"]) == 2
    assert capsys.readouterr().err == ("tl list: error: writing the output failed: no space left on the device; "
                                       "free some space or use another disk\n")


def test_an_os_error_of_ours_without_a_file_is_an_internal_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from tl_toolkit import _cli

    def broken(args: Any) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")  # no user's file, no full disk: a bug to report

    monkeypatch.setitem(_cli._COMMANDS, "list", broken)
    monkeypatch.setenv("TL_LOG_DIR", str(tmp_path))  # the crash log goes here
    assert _cli.main(["list"]) == 1
    assert "internal error" in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "expected"), [
    (["run", "recipes/quickstart.yaml", "--resum"], "unrecognized arguments: --resum"),  # no abbreviations
    (["run", "recipes/quickstart.yaml", "--resume", "--overwrite"], "--resume and --overwrite: choose one"),
    (["sweep", "recipes/sst2_bert_sweep.yaml", "--resume", "--overwrite"], "--resume and --overwrite: choose one"),
    (["compare", "recipes/quickstart.yaml", "--strategies", ","], "--strategies: ',' names no strategy"),
])
def test_flags_that_cannot_mean_what_they_say_are_refused(
        argv: list[str], expected: str, capsys: pytest.CaptureFixture[str]) -> None:
    from tl_toolkit._cli import main

    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = int(e.code or 0)
    assert code == 2 and expected in capsys.readouterr().err


def test_version_into_a_pipe_nobody_reads_is_no_crash() -> None:
    """`tl --version | (exec 0<&-)`: the reader is gone before tl writes; that is no error of tl's."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run([sys.executable, "-m", "tl_toolkit", "--version"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
