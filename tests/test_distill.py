"""Knowledge distillation: a student trained on labels blended with a teacher's probabilities."""

import json

import numpy as np
import pytest

from emolive.models.errors import InputError
from emolive.models.labels import EMOTIONS
from emolive.realtime.cli import main
from conftest import learnable_fer_csv

torch = pytest.importorskip("torch")

from emolive.models.preprocess import PreprocessSpec  # noqa: E402
from emolive.realtime.engines import OnnxRuntimeEngine, softmax  # noqa: E402
from emolive.training.distill import CACHE_NAME, OnlineTeacher, blend_targets, teacher_probabilities  # noqa: E402
from emolive.training.train import get_args_parser, train_one_epoch  # noqa: E402


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


def test_online_teacher_gives_its_probabilities_for_the_batch_it_is_shown(tiny_model):
    batch = torch.randn(5, 1, 48, 48)
    with OnnxRuntimeEngine(tiny_model) as engine:
        expected = softmax(engine.logits(batch.numpy()), 2.0)
    with OnlineTeacher(str(tiny_model), EMOTIONS, PreprocessSpec(), 2.0) as teacher:
        probs = teacher.probabilities(batch)
        other = teacher.probabilities(batch.flip(-1))
    assert probs.dtype == torch.float32 and probs.shape == (5, 7)
    np.testing.assert_allclose(probs.numpy(), expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(probs, other)  # a changed image gets its own target


@pytest.mark.parametrize("spec, labels, message", [
    (PreprocessSpec(size=64), EMOTIONS, "teacher-mode offline"),
    (PreprocessSpec(mean=0.4), EMOTIONS, "normalized with mean 0.5"),
    (PreprocessSpec(), EMOTIONS[:6], "same labels"),
])
def test_online_teacher_refuses_input_or_labels_unlike_the_students(tiny_model, spec, labels, message):
    with pytest.raises(InputError, match=message):
        OnlineTeacher(str(tiny_model), labels, spec, 1.0)
    with pytest.raises(InputError, match="temperature"):
        OnlineTeacher(str(tiny_model), EMOTIONS, PreprocessSpec(), 0.0)


def test_online_teacher_sees_exactly_the_augmented_batch_the_student_trains_on():
    class RecordingTeacher:
        def __init__(self) -> None:
            self.seen: list[torch.Tensor] = []

        def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
            self.seen.append(batch.clone())
            return torch.full((len(batch), 7), 1 / 7)

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
    student_inputs: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda _, inputs: student_inputs.append(inputs[0].clone()))
    args = get_args_parser().parse_args(["--data", "unused", "--batch-size", "8", "--mixup", "0.4", "--teacher-weight", "0.5"])
    images, labels = torch.rand(16, 1, 48, 48), torch.arange(16) % 7
    targets = torch.nn.functional.one_hot(labels, 7).float()  # mixing needs probability targets
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    teacher = RecordingTeacher()
    train_one_epoch(model, optimizer, scheduler, images, targets, args, 0, torch.Generator().manual_seed(1), None, None,
                    torch.device("cpu"), teacher=teacher)
    assert len(teacher.seen) == len(student_inputs) == 2
    for shown, trained in zip(teacher.seen, student_inputs):
        torch.testing.assert_close(shown, trained.contiguous())
        assert not any(torch.equal(shown[i], image) for i in range(len(shown)) for image in images)  # augmented and mixed, not clean


def test_online_teacher_probabilities_become_the_training_targets():
    class SaysFear:
        def probabilities(self, batch: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(torch.full((len(batch),), 2), 7).float()

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48 * 48, 7))
    args = get_args_parser().parse_args(["--data", "unused", "--batch-size", "16", "--teacher-weight", "1", "--label-smoothing", "0"])
    images, labels = torch.rand(64, 1, 48, 48), torch.arange(64) % 7  # the labels never say fear (2) for most images
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    for epoch in range(3):
        train_one_epoch(model, optimizer, scheduler, images, labels, args, epoch, torch.Generator().manual_seed(epoch), None, None,
                        torch.device("cpu"), teacher=SaysFear())
    with torch.no_grad():
        assert (model(images).argmax(1) == 2).all()  # weight 1: the student learned the teacher's answer, not the labels


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
    assert "distilled from best.onnx (weight 0.5, T 1.0)" in capsys.readouterr().out

    online = tmp_path / "online"
    assert main([*common, "--epochs", "3", "-o", str(online), "--teacher", str(tmp_path / "teacher" / "best.onnx"),
                 "--teacher-weight", "0.5", "--teacher-mode", "online"]) == 0
    history = json.loads((online / "history.json").read_text())
    assert max(h["val_accuracy"] for h in history) > 0.5
    assert not (online / CACHE_NAME).exists()  # nothing to cache: the teacher labels every batch anew
    capsys.readouterr()
    assert main(["info", "--model", str(online / "best.onnx")]) == 0
    assert "distilled from best.onnx (weight 0.5, T 1.0, online)" in capsys.readouterr().out
