"""``emo-live train`` end to end on a small synthetic FER2013 CSV: checkpoints, resume, export, eval; bad options and checkpoints."""

import json

import numpy as np
import pytest

from emolive.realtime.cli import main
from conftest import learnable_fer_csv

torch = pytest.importorskip("torch")

import emolive.training.train as train_module  # noqa: E402
from emolive.training.train import epochs_since_best, get_args_parser, main as train_main  # noqa: E402


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return learnable_fer_csv(tmp_path_factory.mktemp("fer") / "fer2013.csv", n=450)  # 270 Training images


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))


def _args(data, run, *extra):
    return get_args_parser().parse_args(["--data", str(data), "-o", str(run), "--threads", "1", "--no-export", *extra])


def test_train_resume_export_and_eval(data, tmp_path, capsys):
    run = tmp_path / "run"
    common = ["--data", str(data), "-o", str(run), "--batch-size", "32", "--augment-strength", "0",
              "--lr", "3e-3", "--ema-decay", "0", "--schedule", "cosine", "--threads", "1", "--epochs", "4"]
    # A 4-epoch run stopped after epoch 2 (as if interrupted), then resumed with the same options.
    train_main(get_args_parser().parse_args([*common, "--no-export"]), on_epoch_end=lambda record: record["epoch"] == 2)
    assert len(json.loads((run / "history.json").read_text())) == 2
    assert main(["train", *common, "--resume"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert (run / "best.safetensors").is_file() and (run / "best.onnx").is_file()
    capsys.readouterr()

    assert main(["eval", "--data", str(data), "--split", "PrivateTest", "--model", str(run / "best.onnx"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix"} <= set(metrics)
    assert metrics["n"] == 90 and np.array(metrics["confusion_matrix"]).sum() == 90
    assert metrics["accuracy"] > 0.5  # the synthetic classes are easy: training must have learned them

    assert main(["export", str(run / "best.safetensors"), "-o", str(tmp_path / "again.onnx")]) == 0
    assert (tmp_path / "again.onnx").is_file()


@pytest.mark.parametrize("fast_bf16, precision", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_only_on_a_cpu_with_native_bf16_kernels(data, tmp_path, monkeypatch, capsys, fast_bf16, precision):
    if torch.cuda.is_available():
        pytest.skip("trains on CUDA here, where auto means fp16")
    monkeypatch.setattr(train_module.recipe, "cpu_has_fast_bf16", lambda: fast_bf16)
    summary = train_main(_args(data, tmp_path / "run", "--model", "mlp", "--limit", "64", "--epochs", "1"))
    assert summary["precision"] == precision
    assert f"precision {precision} on cpu\n" in capsys.readouterr().out


def test_explicit_bf16_on_a_cpu_without_native_kernels_is_kept_with_a_note(data, tmp_path, monkeypatch, capsys):
    if torch.cuda.is_available():
        pytest.skip("trains on CUDA here")
    monkeypatch.setattr(train_module.recipe, "cpu_has_fast_bf16", lambda: False)
    summary = train_main(_args(data, tmp_path / "run", "--model", "mlp", "--limit", "64", "--epochs", "1", "--precision", "bf16"))
    assert summary["precision"] == "bf16"
    assert "no native bf16 kernels, so --precision fp32 (or auto) trains far faster here" in capsys.readouterr().out


# -- resume continues exactly where the run stopped -----------------------------------------------

RESUMABLE = ["--model", "mlp", "--limit", "256", "--epochs", "3", "--batch-size", "64", "--lr", "1e-3"]  # mlp: dropout 0.3; augmentation and EMA on


def _weights(run):
    state = torch.load(run / "last.pt", weights_only=True)
    return {**{f"model.{k}": v for k, v in state["model"].items()}, **{f"ema.{k}": v for k, v in state["ema"].items()}}


def test_a_resumed_run_equals_an_uninterrupted_one(data, tmp_path):
    train_main(_args(data, tmp_path / "straight", *RESUMABLE))
    train_main(_args(data, tmp_path / "resumed", *RESUMABLE), on_epoch_end=lambda record: True)  # stopped after epoch 1
    assert len(json.loads((tmp_path / "resumed" / "history.json").read_text())) == 1
    train_main(_args(data, tmp_path / "resumed", *RESUMABLE, "--resume"))
    straight, resumed = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert straight.keys() == resumed.keys()
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), [k for k in straight if not torch.equal(straight[k], resumed[k])]
    losses = [[h["train_loss"] for h in json.loads((tmp_path / run / "history.json").read_text())] for run in ("straight", "resumed")]
    assert losses[0] == losses[1]  # epochs 2 and 3 saw the same dropout masks and augmentation draws


def test_a_checkpoint_without_random_states_still_resumes(data, tmp_path):
    run = tmp_path / "old"
    train_main(_args(data, run, *RESUMABLE), on_epoch_end=lambda record: True)
    state = torch.load(run / "last.pt", weights_only=True)
    del state["rng"]  # as last.pt files written before the random states were saved
    torch.save(state, run / "last.pt")
    train_main(_args(data, run, *RESUMABLE, "--resume"))
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2, 3]


# -- early stopping counts across a resume ---------------------------------------------------------

def _fake_public_test(monkeypatch, accuracies):
    """PublicTest accuracy of successive epochs, whatever the model learns."""
    values = iter(accuracies)
    monkeypatch.setattr(train_module, "evaluate", lambda *args, **kwargs: {"accuracy": next(values), "loss": 1.0})


def test_epochs_since_best_counts_from_the_first_best_epoch():
    assert epochs_since_best([]) == 0
    records = [{"val_accuracy": a} for a in (0.5, 0.6, 0.55, 0.6, 0.58)]
    assert epochs_since_best(records) == 3 and epochs_since_best(records[:2]) == 0


def test_early_stopping_counts_the_epochs_before_a_resume(data, tmp_path, monkeypatch, capsys):
    run, options = tmp_path / "run", ["--model", "mlp", "--limit", "64", "--epochs", "8", "--patience", "2"]
    _fake_public_test(monkeypatch, [0.5, 0.6, 0.55])
    train_main(_args(data, run, *options), on_epoch_end=lambda record: record["epoch"] == 3)  # one epoch without gain
    _fake_public_test(monkeypatch, [0.55, 0.55, 0.55, 0.55])
    train_main(_args(data, run, *options, "--resume"))
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1, 2, 3, 4]  # the second stale epoch stops it
    assert "early stop: no PublicTest gain for 2 epochs" in capsys.readouterr().out

    _fake_public_test(monkeypatch, [0.9])
    summary = train_main(_args(data, run, *options, "--resume"))  # it stopped early: resuming does not train on
    assert summary["epochs_run"] == 4 and len(json.loads((run / "history.json").read_text())) == 4
    assert "not training on" in capsys.readouterr().out


# -- bad options and checkpoints: one line, exit code 2, before any data loads ---------------------

def _no_data_loading(monkeypatch):
    monkeypatch.setattr(train_module, "load_fer2013", lambda *args: pytest.fail("the data was loaded before the options were checked"))


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("emo-live: error: ") and "\n" not in err and "Traceback" not in err
    return err


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--ema-decay", "1.5", "--ema-decay must be in [0, 1)"),
    ("--ema-decay", "-0.1", "--ema-decay must be in [0, 1)"),
    ("--epochs", "0", "--epochs must be at least 1"),
    ("--batch-size", "0", "--batch-size must be at least 1"),
    ("--label-smoothing", "1.5", "--label-smoothing must be in [0, 1)"),
    ("--label-smoothing", "1", "--label-smoothing must be in [0, 1)"),
    ("--patience", "-1", "--patience must be >= 0"),
    ("--model", "nosuch", "unknown --model 'nosuch'; choose one of: baseline_cnn"),
    ("--teacher-weight", "0", "--teacher-weight must be in (0, 1], got 0.0"),
    ("--teacher-weight", "1.5", "--teacher-weight must be in (0, 1], got 1.5"),
    ("--teacher-temperature", "0", "--teacher-temperature must be positive, got 0.0"),
    ("--teacher-mode", "online", "--teacher-mode online needs a teacher; add --teacher MODEL"),
    ("--arch-kwargs", '{"bogus": 1}', "--arch-kwargs {\"bogus\": 1} does not fit --model baseline_cnn (")
])
def test_bad_training_options_fail_in_one_line_before_loading_data(data, tmp_path, monkeypatch, capsys, option, value, message):
    _no_data_loading(monkeypatch)
    assert main(["train", "--data", str(data), "-o", str(tmp_path / "run"), option, value]) == 2
    assert message in _one_line_error(capsys)
    assert not (tmp_path / "run").exists()  # no empty run folder left behind


@pytest.fixture(scope="module")
def one_epoch_run(data, tmp_path_factory: pytest.TempPathFactory):
    run = tmp_path_factory.mktemp("one_epoch") / "run"
    train_main(_args(data, run, *RESUMABLE), on_epoch_end=lambda record: True)
    return run


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--model", "baseline_cnn", "was trained with --model mlp, not baseline_cnn; resume with --model mlp"),
    ("--epochs", "5", "was trained with --epochs 3, not 5; resume with --epochs 3"),
    ("--batch-size", "32", "was trained with --batch-size 64, not 32"),
    ("--schedule", "cosine", "was trained with --schedule onecycle, not cosine"),
    ("--limit", "128", "was trained with --limit 256, not 128"),
    ("--arch-kwargs", '{"hidden": [64]}', "does not fit this run (Error(s) in loading state_dict for MLP"),
])
def test_resuming_with_other_options_is_refused(one_epoch_run, data, tmp_path, monkeypatch, capsys, option, value, message):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(one_epoch_run, run)
    before = (run / "last.pt").read_bytes()
    options = dict(zip(RESUMABLE[::2], RESUMABLE[1::2]))
    options[option] = value
    assert main(["train", "--data", str(data), "-o", str(run), "--threads", "1", *[x for kv in options.items() for x in kv], "--resume"]) == 2
    err = _one_line_error(capsys)
    assert message in err and str(run / "last.pt") in err
    assert (run / "last.pt").read_bytes() == before


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04" + b"x" * 64])
def test_a_broken_checkpoint_fails_in_one_line(data, tmp_path, monkeypatch, capsys, content):
    _no_data_loading(monkeypatch)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "last.pt").write_bytes(content)
    assert main(["train", "--data", str(data), "-o", str(tmp_path / "run"), "--resume"]) == 2
    assert "last.pt is not a readable training checkpoint" in (err := _one_line_error(capsys)) and "delete it or start without --resume" in err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "run" / "last.pt")  # a readable file, but not a training checkpoint
    assert main(["train", "--data", str(data), "-o", str(tmp_path / "run"), "--resume"]) == 2
    assert "is not an emolive training checkpoint" in _one_line_error(capsys)


def test_module_entry_point_reports_errors_in_one_line(data, tmp_path, monkeypatch, capsys):
    from emolive.training.train import cli

    _no_data_loading(monkeypatch)
    assert cli(["--data", str(data), "-o", str(tmp_path / "run"), "--model", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m emolive.training.train: error: unknown --model 'nosuch'") and "\n" not in err
    assert cli(["--data", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "run")]) == 2
    assert "dataset path" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full to imitate a full disk")
def test_a_full_disk_while_checkpointing_is_a_one_line_error(data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt.part").symlink_to("/dev/full")  # every write there fails with ENOSPC
    assert main(["train", "--data", str(data), "-o", str(run), "--model", "mlp", "--limit", "64", "--epochs", "2", "--threads", "1"]) == 2
    full = capsys.readouterr().err
    err = full.split("\r")[-1]  # after the progress bar
    assert err.startswith(f"emo-live: error: cannot write {run / 'last.pt'} (") and "free disk space" in err and err.count("\n") == 1
    assert "Traceback" not in full
    assert not (run / "last.pt").exists() and not (run / "history.json").exists()  # nothing claims epoch 1 was saved
