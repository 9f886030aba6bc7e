"""``emo-live train`` end to end on a small synthetic FER2013 CSV: checkpoints, resume, export, eval."""

import json

import numpy as np
import pytest

from emolive.realtime.cli import main
from conftest import learnable_fer_csv

pytest.importorskip("torch")


def test_train_resume_export_and_eval(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=420)
    run = tmp_path / "run"
    common = ["train", "--data", str(data), "-o", str(run), "--batch-size", "32", "--augment-strength", "0",
              "--lr", "3e-3", "--ema-decay", "0", "--schedule", "cosine", "--threads", "1"]
    assert main([*common, "--epochs", "2", "--no-export"]) == 0
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert main([*common, "--epochs", "4", "--resume"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert (run / "best.safetensors").is_file() and (run / "best.onnx").is_file()
    capsys.readouterr()

    assert main(["eval", "--data", str(data), "--split", "PrivateTest", "--model", str(run / "best.onnx"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics)
    assert metrics["n"] == 84 and np.array(metrics["confusion_matrix"]).sum() == 84
    assert metrics["accuracy"] > 0.5  # the synthetic classes are easy: training must have learned them

    assert main(["export", str(run / "best.safetensors"), "-o", str(tmp_path / "again.onnx")]) == 0
    assert (tmp_path / "again.onnx").is_file()
