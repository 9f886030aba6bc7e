"""``emo-live train`` end to end on a small synthetic FER2013 CSV: checkpoints, resume, export, eval."""

import json

import numpy as np
import pytest

from emolive.realtime.cli import main

pytest.importorskip("torch")


def _learnable_csv(path, n=420):
    """Each class is a distinct brightness pattern, so a few epochs learn it."""
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i in range(n):
        label = i % 7
        image = np.zeros((48, 48), np.float32)
        image[:, label * 6:label * 6 + 12] = 200
        image += rng.normal(0, 20, image.shape)
        usage = "Training" if i % 5 < 3 else ("PublicTest" if i % 5 == 3 else "PrivateTest")
        rows.append(f"{label},{' '.join(map(str, np.clip(image, 0, 255).astype(np.uint8).ravel()))},{usage}")
    path.write_text("\n".join(rows) + "\n")
    return path


def test_train_resume_export_and_eval(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = _learnable_csv(tmp_path / "fer2013.csv")
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
