"""Knowledge distillation: a student trained on labels blended with a teacher's probabilities."""

import json

import numpy as np
import pytest

from emolive.models.errors import InputError
from emolive.models.labels import EMOTIONS
from emolive.realtime.cli import main
from conftest import learnable_fer_csv

torch = pytest.importorskip("torch")

from emolive.training.distill import CACHE_NAME, blend_targets, teacher_probabilities  # noqa: E402


def test_blended_targets_are_distributions_between_label_and_teacher():
    teacher = np.full((2, 7), 1 / 7, np.float32)
    targets = blend_targets(torch.tensor([3, 0]), teacher, 0.7)
    torch.testing.assert_close(targets.sum(1), torch.ones(2))
    assert targets[0, 3] == pytest.approx(0.3 + 0.7 / 7) and targets[0, 0] == pytest.approx(0.7 / 7)
    with pytest.raises(InputError, match="teacher-weight"):
        blend_targets(torch.tensor([3]), teacher[:1], 0.0)


def test_teacher_probabilities_are_cached_and_checked(tiny_model, tmp_path, monkeypatch):
    from emolive.training.data import load_fer2013

    split = load_fer2013(learnable_fer_csv(tmp_path / "fer2013.csv", n=70), "Training")
    first = teacher_probabilities(str(tiny_model), split, EMOTIONS, 2.0, tmp_path, progress=False)
    assert first.shape == (len(split), 7) and (tmp_path / CACHE_NAME).is_file()
    np.testing.assert_allclose(first.sum(1), 1.0, atol=1e-5)

    import emolive.realtime.engines as engines

    monkeypatch.setattr(engines, "OnnxRuntimeEngine", None)  # a second pass would fail: the cache must answer
    np.testing.assert_allclose(teacher_probabilities(str(tiny_model), split, EMOTIONS, 2.0, tmp_path, progress=False), first)
    monkeypatch.undo()
    with pytest.raises(InputError, match="same labels"):
        teacher_probabilities(str(tiny_model), split, EMOTIONS[:6], 1.0, tmp_path / "other", progress=False)


def test_student_distilled_from_a_trained_teacher_learns(tmp_path, capsys):
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=420)
    common = ["train", "--data", str(data), "--batch-size", "32", "--augment-strength", "0", "--lr", "3e-3",
              "--ema-decay", "0", "--schedule", "cosine", "--threads", "1", "--model", "baseline_cnn",
              "--arch-kwargs", '{"widths": [8, 16, 16], "hidden": 32}']
    assert main([*common, "--epochs", "3", "-o", str(tmp_path / "teacher")]) == 0
    student = tmp_path / "student"
    assert main([*common, "--epochs", "3", "-o", str(student), "--teacher", str(tmp_path / "teacher" / "best.onnx"),
                 "--teacher-weight", "0.5"]) == 0
    history = json.loads((student / "history.json").read_text())
    assert max(h["val_accuracy"] for h in history) > 0.5  # the easy synthetic classes are learned from blended targets
    assert (student / CACHE_NAME).is_file()
    capsys.readouterr()
    assert main(["info", "--model", str(student / "best.onnx")]) == 0
    assert "distilled from best.onnx (weight 0.5" in capsys.readouterr().out
