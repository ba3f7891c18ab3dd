"""``tl_toolkit._data.load_task_data``: every data format, label encoding, filters, caps and errors.

Everything runs in-process on small files written into ``tmp_path``; the text
of each example names its label (``"pos 3"`` has label ``pos``), so the tests
can check that the integer labels were encoded with the returned label names.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import SST2

from tl_toolkit import DataConfig, UserError
from tl_toolkit._data import TaskData, load_task_data


def cfg(**values: Any) -> DataConfig:
    return DataConfig.model_validate(values)


def rows_for(labels: dict[Any, int], prefix: str = "") -> list[dict[str, Any]]:
    """``n`` rows per label whose text names the label: ``{"text": "<prefix>pos 0", "label": "pos"}``."""
    return [
        {"text": f"{prefix}{label} {i}", "label": label} for label, n in labels.items() for i in range(n)
    ]


def write_table(path: Path, rows: list[dict[str, Any]], sep: str = ",") -> Path:
    import pandas as pd

    frame = pd.DataFrame(rows)
    if path.suffix in (".csv", ".tsv"):
        frame.to_csv(path, sep=sep, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif path.suffix == ".json":
        path.write_text(json.dumps(rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        raise AssertionError(path)
    return path


def decoded(split: Any, names: list[str], column: str = "text") -> list[tuple[str, str]]:
    """(text, label name) pairs of a split."""
    return [(t, names[y]) for t, y in zip(split[column], split["labels"], strict=True)]


def assert_consistent(task: TaskData, column: str = "text") -> None:
    """Each example's encoded label is the one its text names, in both splits."""
    for split in (task.train, task.eval):
        for text, name in decoded(split, task.label_names, column):
            assert text.split()[0] == name, (text, name, task.label_names)


def load(data: DataConfig, modality: str = "text", seed: int = 0) -> TaskData:
    return load_task_data(data, modality, seed)


# -- formats ------------------------------------------------------------------


def test_csv_string_labels(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"pos": 4, "neg": 3}))
    dev = write_table(tmp_path / "dev.csv", rows_for({"neg": 2, "pos": 1}, prefix=""))
    task = load(cfg(format="csv", train=str(train), eval=str(dev)))
    assert task.label_names == ["neg", "pos"]
    assert task.input_columns == ["text"]
    assert len(task.train) == 7 and len(task.eval) == 3
    assert set(task.train.column_names) == {"text", "labels"}
    assert set(task.eval.column_names) == {"text", "labels"}
    assert all(isinstance(y, int) for y in task.train["labels"])
    assert_consistent(task)
    assert Counter(name for _, name in decoded(task.eval, task.label_names)) == {"neg": 2, "pos": 1}


def test_csv_integer_labels_sort_numerically(tmp_path: Path) -> None:
    rows = [{"text": f"{label} x{i}", "label": label} for label in (10, 2, 1) for i in range(3)]
    train = write_table(tmp_path / "train.csv", rows)
    dev = write_table(tmp_path / "dev.csv", [{"text": "2 y", "label": 2}, {"text": "10 y", "label": 10}])
    task = load(cfg(format="csv", train=str(train), eval=str(dev)))
    assert task.label_names == ["1", "2", "10"]  # numeric order, not "1", "10", "2"
    assert_consistent(task)
    assert sorted(task.eval["labels"]) == [1, 2]


def test_csv_custom_delimiter(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"a": 3, "b": 3}), sep=";")
    dev = write_table(tmp_path / "dev.csv", rows_for({"a": 1, "b": 1}), sep=";")
    task = load(cfg(format="csv", train=str(train), eval=str(dev), delimiter=";"))
    assert task.label_names == ["a", "b"]
    assert_consistent(task)


def test_tsv_by_suffix_keeps_commas_in_text(tmp_path: Path) -> None:
    rows = [{"text": f"{label} one, two, three {i}", "label": label} for label in ("x", "y") for i in range(3)]
    train = write_table(tmp_path / "train.tsv", rows, sep="\t")
    dev = write_table(tmp_path / "dev.tsv", rows[:2] + rows[-2:], sep="\t")
    task = load(cfg(format="csv", train=str(train), eval=str(dev)))
    assert task.label_names == ["x", "y"]
    assert all(", two, three" in t for t in task.train["text"])
    assert_consistent(task)


def test_tsv_sst2_copy() -> None:
    data = cfg(
        format="csv", train=str(SST2 / "train.tsv"), eval=str(SST2 / "dev.tsv"),
        text_column="sentence", label_column="label", max_train_samples=50, max_eval_samples=20,
    )
    task = load(data)
    assert task.label_names == ["0", "1"]
    assert task.input_columns == ["sentence"]
    assert len(task.train) == 50 and len(task.eval) == 20
    assert set(task.train.column_names) == {"sentence", "labels"}
    assert set(task.train["labels"]) <= {0, 1}
    assert all(isinstance(s, str) and s.strip() for s in task.train["sentence"])
    dev_text = set((SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines())
    assert all(any(line.startswith(s) for line in dev_text) for s in task.eval["sentence"][:5])


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".parquet"])
def test_json_and_parquet(tmp_path: Path, suffix: str) -> None:
    fmt = "parquet" if suffix == ".parquet" else "json"
    train = write_table(tmp_path / f"train{suffix}", rows_for({"cat": 3, "dog": 4, "ant": 2}))
    dev = write_table(tmp_path / f"dev{suffix}", rows_for({"dog": 1, "cat": 1}))
    task = load(cfg(format=fmt, train=str(train), eval=str(dev)))
    assert task.label_names == ["ant", "cat", "dog"]
    assert len(task.train) == 9 and len(task.eval) == 2
    assert_consistent(task)


def test_jsonl_integer_labels(tmp_path: Path) -> None:
    rows = [{"text": f"{label} z{i}", "label": label} for label in (3, 0, 12) for i in range(2)]
    train = write_table(tmp_path / "train.jsonl", rows)
    task = load(cfg(format="json", train=str(train), eval=str(train)))
    assert task.label_names == ["0", "3", "12"]
    assert_consistent(task)


def test_hf_save_to_disk_directory(tmp_path: Path) -> None:
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.Value("string")})
    dd = datasets.DatasetDict(
        {
            "training": datasets.Dataset.from_list(rows_for({"b": 3, "a": 3}), features=features),
            "validation": datasets.Dataset.from_list(rows_for({"a": 1, "b": 2}), features=features),
        }
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    task = load(cfg(format="hf", name=str(tmp_path / "ds"), train="training", eval="validation"))
    assert task.label_names == ["a", "b"]
    assert len(task.train) == 6 and len(task.eval) == 3
    assert_consistent(task)


def test_hf_class_label_feature_gives_its_names(tmp_path: Path) -> None:
    import datasets

    names = ["neg", "pos"]
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=names)})
    rows = [{"text": f"{names[y]} {i}", "label": y} for y in (1, 0) for i in range(4)]
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows, features=features),
         "test": datasets.Dataset.from_list(rows[:2] + rows[-2:], features=features)}
    )
    dd.save_to_disk(str(tmp_path / "ds"))
    task = load(cfg(format="hf", name=str(tmp_path / "ds"), train="train", eval="test"))
    assert task.label_names == names
    assert_consistent(task)


def test_hf_unknown_split_names_the_splits(tmp_path: Path) -> None:
    import datasets

    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(rows_for({"a": 2, "b": 2}))})
    dd.save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(UserError) as err:
        load(cfg(format="hf", name=str(tmp_path / "ds"), train="train", eval="validation"))
    assert "'validation'" in str(err.value) and "train" in str(err.value)


def _png(path: Path, color: int | tuple[int, int, int], mode: str = "RGB", size: int = 12) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (size, size), color).save(path)


@pytest.fixture
def image_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """train/ and test/ folders of tiny PNGs in class folders, one grayscale image and a stray text file."""
    colors = {"cat": (200, 10, 10), "dog": (10, 200, 10), "emu": (10, 10, 200)}
    for split, n in (("train", 4), ("test", 2)):
        for name, color in colors.items():
            for i in range(n):
                _png(tmp_path / split / name / f"{i:03d}.png", color)
    _png(tmp_path / "train" / "dog" / "gray.png", 128, mode="L")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image\n")
    (tmp_path / "train" / "README.md").write_text("a file at the top level is not a class\n")
    return tmp_path / "train", tmp_path / "test"


def test_imagefolder(image_dirs: tuple[Path, Path], caplog: pytest.LogCaptureFixture) -> None:
    train, test = image_dirs
    with caplog.at_level(logging.WARNING, logger="tl_toolkit._data"):
        task = load(cfg(format="imagefolder", train=str(train), eval=str(test)), modality="image")
    assert task.label_names == ["cat", "dog", "emu"]
    assert task.input_columns == ["image"]
    assert set(task.train.column_names) == {"image", "labels"}
    assert len(task.train) == 13 and len(task.eval) == 6  # notes.txt is not an example
    assert Counter(task.train["labels"]) == {0: 4, 1: 5, 2: 4}
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "skipped 1 files" in skipped[0], skipped
    images = task.train["image"]
    assert {img.mode for img in images} == {"RGB", "L"}
    # The label encoded for each image matches its colour (the folder it came from).
    by_color = {(200, 10, 10): "cat", (10, 200, 10): "dog", (10, 10, 200): "emu"}
    for img, y in zip(images, task.train["labels"], strict=True):
        pixel = img.getpixel((0, 0))
        assert task.label_names[y] == ("dog" if img.mode == "L" else by_color[pixel])


def test_imagefolder_grayscale_becomes_rgb_tensor(image_dirs: tuple[Path, Path]) -> None:
    from plugins.resnet import ResNetBackbone
    from tl_toolkit import BackboneConfig, Task

    train, test = image_dirs
    data = cfg(format="imagefolder", train=str(train), eval=str(test), image_size=16)
    task = load(data, modality="image")
    backbone = ResNetBackbone(BackboneConfig(plugin="resnet", model="resnet18", pretrained=False), data)
    backbone.build(Task(task.label_names))
    ds = backbone.preprocess(task.train, train=False)
    shapes = {tuple(ds[i]["pixel_values"].shape) for i in range(len(ds))}
    assert shapes == {(3, 16, 16)}


def test_imagefolder_without_eval_holds_out(image_dirs: tuple[Path, Path]) -> None:
    train, _ = image_dirs
    task = load(cfg(format="imagefolder", train=str(train), eval_fraction=0.25), modality="image")
    assert len(task.train) + len(task.eval) == 13
    assert set(task.train["labels"]) == set(task.eval["labels"]) == {0, 1, 2}


def test_digits_splits() -> None:
    task = load(cfg(format="digits", train="train", eval="test"), modality="image")
    assert task.label_names == [str(d) for d in range(10)]
    assert len(task.train) + len(task.eval) == 1797
    assert abs(len(task.eval) - 0.25 * 1797) <= 1
    assert task.train[0]["image"].size == (8, 8)


def test_digits_classes_filter() -> None:
    data = cfg(format="digits", train="train", eval="test", classes=[5, 6, 7, 8, 9])
    assert data.classes == ["5", "6", "7", "8", "9"]
    task = load(data, modality="image")
    assert task.label_names == ["5", "6", "7", "8", "9"]
    assert set(task.train["labels"]) == set(task.eval["labels"]) == {0, 1, 2, 3, 4}
    full = load(cfg(format="digits", train="train", eval="test"), modality="image")
    # Every digit 5..9 survives the filter, none of 0..4 does.
    assert len(task.train) == sum(1 for y in full.train["labels"] if y >= 5)
    assert len(task.eval) == sum(1 for y in full.eval["labels"] if y >= 5)


def test_digits_unknown_split() -> None:
    with pytest.raises(UserError, match=r"data\.eval: .*'train' and 'test'"):
        load(cfg(format="digits", train="train", eval="validation"), modality="image")


# -- labels, filters and caps ---------------------------------------------------


def test_classes_filter_keeps_their_order(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"a": 3, "b": 3, "c": 3, "d": 3}))
    dev = write_table(tmp_path / "dev.csv", rows_for({"a": 1, "b": 1, "c": 1, "d": 1}))
    task = load(cfg(format="csv", train=str(train), eval=str(dev), classes=["d", "a", "c"]))
    assert task.label_names == ["d", "a", "c"]
    assert len(task.train) == 9 and len(task.eval) == 3
    assert_consistent(task)
    assert {t.split()[0] for t in task.train["text"]} == {"a", "c", "d"}


def test_classes_filter_with_integer_labels(tmp_path: Path) -> None:
    rows = [{"text": f"{label} q{i}", "label": label} for label in range(4) for i in range(3)]
    train = write_table(tmp_path / "train.csv", rows)
    task = load(cfg(format="csv", train=str(train), eval=str(train), classes=[3, 1]))
    assert task.label_names == ["3", "1"]
    assert_consistent(task)


def test_classes_not_in_training_data(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"a": 3, "b": 3}))
    with pytest.raises(UserError, match=r"data\.classes: \['zebra'\]"):
        load(cfg(format="csv", train=str(train), eval=str(train), classes=["a", "zebra"]))


def test_max_train_per_class(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"a": 10, "b": 2, "c": 7}))
    dev = write_table(tmp_path / "dev.csv", rows_for({"a": 5, "b": 5, "c": 5}))
    task = load(cfg(format="csv", train=str(train), eval=str(dev), max_train_per_class=3))
    counts = Counter(name for _, name in decoded(task.train, task.label_names))
    assert counts == {"a": 3, "b": 2, "c": 3}
    assert len(task.eval) == 15  # the cap is on training examples only
    assert_consistent(task)


def test_max_samples(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"a": 20, "b": 20}))
    dev = write_table(tmp_path / "dev.csv", rows_for({"a": 10, "b": 10}))
    data = cfg(format="csv", train=str(train), eval=str(dev), max_train_samples=7, max_eval_samples=5)
    task = load(data)
    assert len(task.train) == 7 and len(task.eval) == 5
    assert len(set(task.train["text"])) == 7
    assert_consistent(task)
    again = load(data)
    assert again.train["text"] == task.train["text"] and again.eval["text"] == task.eval["text"]
    # Caps larger than the data keep everything.
    big = load(cfg(format="csv", train=str(train), eval=str(dev), max_train_samples=1000, max_eval_samples=1000))
    assert len(big.train) == 40 and len(big.eval) == 20


def test_held_out_eval_is_stratified_and_deterministic(tmp_path: Path) -> None:
    rows = rows_for({"a": 20, "b": 12, "c": 8})
    train = write_table(tmp_path / "train.csv", rows)
    data = cfg(format="csv", train=str(train), eval_fraction=0.25)
    task = load(data, seed=0)
    assert task.label_names == ["a", "b", "c"]
    assert len(task.eval) == 10 and len(task.train) == 30
    train_texts, eval_texts = set(task.train["text"]), set(task.eval["text"])
    assert not train_texts & eval_texts
    assert train_texts | eval_texts == {r["text"] for r in rows}
    assert_consistent(task)
    # Stratified: every class in both splits, in proportion.
    assert Counter(n for _, n in decoded(task.eval, task.label_names)) == {"a": 5, "b": 3, "c": 2}
    assert set(n for _, n in decoded(task.train, task.label_names)) == {"a", "b", "c"}
    # Deterministic for a seed, different for another.
    assert set(load(data, seed=0).eval["text"]) == eval_texts
    assert set(load(data, seed=1).eval["text"]) != eval_texts


def test_held_out_eval_with_a_single_example_class_is_a_user_error(tmp_path: Path) -> None:
    # A class with one example cannot be in both splits: the user must give data.eval or more examples.
    train = write_table(tmp_path / "train.csv", rows_for({"a": 10, "b": 1}))
    with pytest.raises(UserError) as err:
        load(cfg(format="csv", train=str(train), eval_fraction=0.2))
    assert "data.eval" in str(err.value)


def test_sentence_pairs_keep_both_columns(tmp_path: Path) -> None:
    rows = [
        {"premise": f"{label} p{i}", "hypothesis": f"h{i} for {label}", "label": label}
        for label in ("entail", "contra") for i in range(3)
    ]
    train = write_table(tmp_path / "train.csv", rows)
    task = load(cfg(format="csv", train=str(train), eval=str(train), text_column="premise",
                    text_pair_column="hypothesis"))
    assert task.input_columns == ["premise", "hypothesis"]
    assert set(task.train.column_names) == set(task.eval.column_names) == {"premise", "hypothesis", "labels"}
    for row in task.train:
        assert row["premise"].split()[0] == task.label_names[row["labels"]]
        assert row["hypothesis"].endswith(task.label_names[row["labels"]])
        assert row["premise"].split()[1][1:] == row["hypothesis"].split()[0][1:]  # the pair stays together


# -- errors -----------------------------------------------------------------------


def test_eval_labels_not_in_training(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", rows_for({"a": 3, "b": 3}))
    dev = write_table(tmp_path / "dev.csv", rows_for({"a": 1, "zzz": 1}))
    with pytest.raises(UserError) as err:
        load(cfg(format="csv", train=str(train), eval=str(dev)))
    message = str(err.value)
    assert message.startswith("data.eval:") and "'zzz'" in message and str(dev) in message


def test_missing_text_column_suggests_nearest(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", [{"sentence": "a 1", "label": "a"}, {"sentence": "b 2", "label": "b"}])
    with pytest.raises(UserError) as err:
        load(cfg(format="csv", train=str(train), eval=str(train), text_column="sentense"))
    message = str(err.value)
    assert "data.text_column" in message and "'sentense'" in message
    assert "Did you mean 'sentence'?" in message


def test_missing_label_column_suggests_nearest(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.csv", [{"text": "a 1", "labels": "a"}, {"text": "b 2", "labels": "b"}])
    with pytest.raises(UserError) as err:
        load(cfg(format="csv", train=str(train), eval=str(train)))
    message = str(err.value)
    assert "data.label_column" in message and "Did you mean 'labels'?" in message


def test_missing_image_column(tmp_path: Path) -> None:
    train = write_table(tmp_path / "train.parquet", rows_for({"a": 2, "b": 2}))
    with pytest.raises(UserError, match=r"data\.image_column: column 'image'"):
        load(cfg(format="parquet", train=str(train), eval=str(train)), modality="image")


@pytest.mark.parametrize("labels", [["a", "b", None, "a"], [1, 0, None, 1]])
def test_missing_label_values(tmp_path: Path, labels: list[Any]) -> None:
    rows = [{"text": f"t{i}", "label": v} for i, v in enumerate(labels)]
    train = write_table(tmp_path / "train.csv", rows)
    with pytest.raises(UserError) as err:
        load(cfg(format="csv", train=str(train), eval=str(train)))
    message = str(err.value)
    assert "1 rows" in message and "row 2" in message and "'label'" in message


def test_missing_file_names_data_train(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load(cfg(format="csv", train=str(tmp_path / "nope.csv"), eval=str(tmp_path / "nope-dev.csv")))
    problems = err.value.problems
    assert any(p.startswith("data.train:") and "nope.csv" in p for p in problems), problems
    assert any(p.startswith("data.eval:") and "nope-dev.csv" in p for p in problems), problems


def test_missing_image_folder_names_data_train(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"data\.train: folder .*not found"):
        load(cfg(format="imagefolder", train=str(tmp_path / "absent")), modality="image")


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "train.parquet"
    bad.write_text("this is not parquet\n")
    with pytest.raises(UserError, match=r"data\.train"):
        load(cfg(format="parquet", train=str(bad), eval=str(bad)))
