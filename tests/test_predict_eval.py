"""``tl predict`` and ``tl eval`` on finished runs, and the errors users hit with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import SST2, run_tl


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory, tiny_bert_dir: Path) -> Path:
    from tl_toolkit import finetune

    out = tmp_path_factory.mktemp("text-run")
    finetune(
        {
            "name": "text",
            "output_dir": str(out),
            "backbone": {"plugin": "bert", "model": str(tiny_bert_dir)},
            "data": {"format": "csv", "train": str(SST2 / "train.tsv"), "eval": str(SST2 / "dev.tsv"),
                     "text_column": "sentence", "max_train_samples": 64, "max_eval_samples": 40,
                     "max_length": 64},
            "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3},
        },
        quiet=True,
    )
    return out


def test_predict_reads_text_csv_and_jsonl_alike(text_run: Path, tmp_path: Path) -> None:
    sentences = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés"]
    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n\n")  # blank lines are not examples
    (tmp_path / "in.csv").write_text("id,review\n" + "".join(f'{i},"{s}"\n' for i, s in enumerate(sentences)))
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"review": s}) + "\n" for s in sentences))

    def labels(*args: str) -> list[dict]:
        proc = run_tl("predict", text_run, *args)
        assert proc.returncode == 0, proc.stderr
        return [json.loads(line) for line in proc.stdout.splitlines()]

    from_txt = labels(str(tmp_path / "in.txt"))
    assert [r["input"] for r in from_txt] == sentences
    assert all(r["label"] in {"0", "1"} for r in from_txt)
    assert labels(str(tmp_path / "in.csv"), "--column", "review") == from_txt
    assert labels(str(tmp_path / "in.jsonl"), "--column", "review") == from_txt
    ranked = labels(str(tmp_path / "in.txt"), "--top-k", "2")
    for row in ranked:
        assert row["top_k"][0]["label"] == row["label"]
        assert sum(t["score"] for t in row["top_k"]) == pytest.approx(1.0, abs=1e-4)
    proc = run_tl("predict", text_run, str(tmp_path / "in.txt"), "--output", str(tmp_path / "p.jsonl"))
    assert proc.returncode == 0 and proc.stdout == ""
    assert [json.loads(x) for x in (tmp_path / "p.jsonl").read_text().splitlines()] == from_txt


def test_python_predict_takes_in_memory_texts_and_a_loaded_model(text_run: Path, tmp_path: Path) -> None:
    from tl_toolkit import UserError, load_model_dir, predict

    sentences = ["a gorgeous , witty , seductive movie .", "the plot is nothing but boilerplate clichés"]
    (tmp_path / "in.txt").write_text("\n".join(sentences) + "\n")
    from_file = predict(text_run, [tmp_path / "in.txt"], top_k=2)
    loaded = load_model_dir(text_run)  # loaded once, predicted with twice
    assert predict(loaded, examples=sentences, top_k=2) == from_file
    assert predict(loaded, examples=sentences[:1], top_k=2) == from_file[:1]
    for kwargs, expected in (
        ({"inputs": str(tmp_path / "in.txt")}, "inputs: got the single str"),
        ({"inputs": [tmp_path / "in.txt"], "examples": sentences}, "not both"),
        ({}, "not neither"),
        ({"examples": [("a", "b")]}, "examples[0]: got tuple ('a', 'b'); this model reads a string"),
    ):
        with pytest.raises(UserError, match=expected.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            predict(loaded, **kwargs)


def test_predict_with_stdout_closed_is_no_crash(text_run: Path, tmp_path: Path) -> None:
    """`tl predict RUN in.txt >&-`: Python starts with sys.stdout None; the predictions go nowhere, exit 0."""
    import os
    import subprocess
    import sys

    (tmp_path / "in.txt").write_text("fine\n")
    proc = subprocess.run([sys.executable, "-m", "tl_toolkit", "predict", str(text_run), str(tmp_path / "in.txt")],
                          stderr=subprocess.PIPE, text=True, preexec_fn=lambda: os.close(1), timeout=300)
    assert proc.returncode == 0 and "error" not in proc.stderr, proc.stderr


def test_predict_errors_name_the_problem(text_run: Path, tmp_path: Path) -> None:
    (tmp_path / "in.csv").write_text("id,review\n1,fine\n")
    cases = [
        ((str(tmp_path / "nope"), str(tmp_path / "in.csv")), "not a finished run"),
        ((str(text_run), str(tmp_path / "missing.txt")), "missing.txt"),
        ((str(text_run), str(tmp_path / "in.csv")), "no column 'sentence'"),
    ]
    (tmp_path / "in.txt").write_text("fine\n")
    summary = (text_run / "summary.json").read_bytes()
    import shutil

    stopped = tmp_path / "stopped"  # killed during its baselines: model saved, no summary.json
    shutil.copytree(text_run, stopped)
    (stopped / "summary.json").unlink()
    cases.append(((str(stopped), str(tmp_path / "in.txt")), "the run did not finish"))
    cases += [  # --output must not replace what the command reads
        ((str(text_run), str(tmp_path / "in.txt"), "--output", str(tmp_path / "in.txt")), "is one of the inputs"),
        ((str(text_run), str(tmp_path / "in.txt"), "--output", str(text_run / "summary.json")), "is a file of the run"),
    ]
    for args, expected in cases:
        proc = run_tl("predict", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert expected in proc.stderr and "Traceback" not in proc.stderr
    assert (tmp_path / "in.txt").read_text() == "fine\n" and (text_run / "summary.json").read_bytes() == summary


def test_eval_matches_the_run_and_accepts_other_data(text_run: Path, tmp_path: Path) -> None:
    summary = json.loads((text_run / "summary.json").read_text())
    proc = run_tl("eval", text_run)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["eval"] == pytest.approx(summary["eval"], rel=1e-5)
    assert json.loads((text_run / "eval.json").read_text()) == result

    proc = run_tl("eval", text_run, "data.max_eval_samples=10")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["num_eval_examples"] == 10

    proc = run_tl("eval", text_run, f"data.eval={tmp_path / 'absent.csv'}")
    assert proc.returncode == 2 and "absent.csv" in proc.stderr
    proc = run_tl("eval", text_run, "backbone.model=bert-base-uncased")  # was ignored: the model is the run's
    assert proc.returncode == 2 and "backbone.model: tl eval evaluates the run's model as it was trained" in proc.stderr
