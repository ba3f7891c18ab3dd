"""``tl new-plugin`` in a fresh virtual environment: write, install, list, use, uninstall."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT, run_tl


def _sh(*args: str | Path, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"{args}: {proc.stdout[-2000:]}{proc.stderr[-2000:]}"
    return proc


def test_scaffolded_strategy_installs_lists_runs_and_uninstalls(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    _sh(sys.executable, "-m", "venv", "--without-pip", venv)  # pip and setuptools come with the shared libraries
    py, tl = venv / "bin" / "python", venv / "bin" / "tl"
    # The fresh environment sees this one's libraries (torch, transformers, ...) through a .pth file,
    # so the test installs only tl_toolkit and the new plugin, not gigabytes of dependencies.
    fresh_site = Path(_sh(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (fresh_site / "_shared_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    pip = [py, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e"]

    _sh(*pip, ROOT)
    _sh(tl, "new-plugin", "myaug", "--kind", "strategy", cwd=tmp_path)
    _sh(*pip, tmp_path / "myaug")
    listed = json.loads(_sh(tl, "list", "--json").stdout)
    mine = [p for p in listed if p["name"] == "myaug"]
    assert mine and mine[0]["dist"] == "tl-myaug" and mine[0]["kind"] == "strategy" and not mine[0]["error"]
    assert "l2: float (default 0.0)" in _sh(tl, "list", "--verbose", "myaug").stdout

    _sh(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", tmp_path / "myaug" / "tests", cwd=tmp_path / "myaug")

    recipe = tmp_path / "myaug.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "myaug",
        "backbone": {"plugin": "resnet", "model": "resnet18", "pretrained": False},
        "data": {"format": "digits", "train": "train", "eval": "test", "image_size": 32,
                 "max_train_samples": 48, "max_eval_samples": 24},
        "strategy": {"plugin": "myaug", "options": {"l2": 1.0e-4}},
        "train": {"epochs": 1, "batch_size": 16},
    }))
    _sh(tl, "run", recipe, f"output_dir={tmp_path / 'run'}", "--quiet", env={"HF_HUB_OFFLINE": "1"})
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["strategy"] == "myaug"

    _sh(py, "-m", "pip", "uninstall", "--quiet", "-y", "tl-myaug")
    assert "myaug" not in [p["name"] for p in json.loads(_sh(tl, "list", "--json").stdout)]


def test_new_plugin_refuses_bad_names_and_existing_folders(tmp_path: Path) -> None:
    proc = run_tl("new-plugin", "My Plugin", "--kind", "strategy", "--output", tmp_path)
    assert proc.returncode == 2 and "must start with a letter" in proc.stderr
    (tmp_path / "taken").mkdir()
    proc = run_tl("new-plugin", "taken", "--kind", "backbone", "--output", tmp_path)
    assert proc.returncode == 2 and "already exists" in proc.stderr
    # A built-in's name: a second package registering it would turn both off.
    proc = run_tl("new-plugin", "lora", "--kind", "strategy", "--output", tmp_path)
    assert proc.returncode == 2 and "'lora' is already a strategy plugin (from tl-toolkit" in proc.stderr
    assert not (tmp_path / "lora").exists()
    assert run_tl("new-plugin", "lora", "--kind", "task", "--output", tmp_path).returncode == 0  # another group


def test_scaffolded_backbone_passes_its_own_tests(tmp_path: Path) -> None:
    assert run_tl("new-plugin", "tinynet", "--kind", "backbone", "--output", tmp_path).returncode == 0
    root = tmp_path / "tinynet"
    assert 'tinynet = "tl_tinynet:TinynetBackbone"' in (root / "pyproject.toml").read_text()
    # Without installing: the plugin's unit test that does not need the entry point.
    _sh(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "build_forward or trains_end_to_end",
        root / "tests", cwd=root, env={"PYTHONPATH": str(root)})


def test_scaffolded_task_passes_its_own_tests(tmp_path: Path) -> None:
    assert run_tl("new-plugin", "huber", "--kind", "task", "--output", tmp_path).returncode == 0
    root = tmp_path / "huber"
    assert '[project.entry-points."tl_toolkit.tasks"]\nhuber = "tl_huber:HuberTask"' in (root / "pyproject.toml").read_text()
    assert "`data.task: huber` in a recipe" in (root / "README.md").read_text()
    # Without installing: every test but the entry-point lookup (the strategy test above installs one).
    _sh(sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not entry_point",
        root / "tests", cwd=root, env={"PYTHONPATH": str(root)})
