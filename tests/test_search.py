"""``emo-live search``: a tiny Optuna study on synthetic FER2013 that logs every trial and resumes from sqlite."""

import csv
import json
import shlex

import pytest

pytest.importorskip("torch")
pytest.importorskip("optuna")

from emolive.realtime.cli import main  # noqa: E402
from emolive.training.train import get_args_parser, main as train_main  # noqa: E402

from conftest import learnable_fer_csv  # noqa: E402

TINY = ["--arch-kwargs", '{"widths": [4, 8, 8], "hidden": 16}', "--threads", "1", "--ema-decay", "0", "--schedule", "cosine"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_search_logs_every_trial_prints_a_train_command_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv")
    out = tmp_path / "search"
    search = ["search", "--data", str(data), "--epochs-per-trial", "2", "-o", str(out), "--params", "lr,batch_size,weight_decay,augment_strength"]
    assert main([*search, "--trials", "3", *TINY]) == 0
    printed = capsys.readouterr().out

    rows = _rows(out / "trials.csv")
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert {r["state"] for r in rows} <= {"COMPLETE", "PRUNED"} and rows[0]["state"] == "COMPLETE"
    for row in rows:
        history = json.loads((out / f"trial_{int(row['trial']):04d}" / "history.json").read_text())
        assert row["publictest_per_epoch"].split() == [f"{h['val_accuracy']:.4f}" for h in history]  # each epoch reported
        assert len(history) == (2 if row["state"] == "COMPLETE" else int(row["epochs_reported"]))
        assert float(row["duration_s"]) > 0 and float(row["lr"]) > 0 and row["batch_size"] in {"32", "64", "128", "256"}
        if row["state"] == "COMPLETE":
            assert float(row["value"]) == pytest.approx(max(h["val_accuracy"] for h in history), abs=1e-4)

    best = json.loads((out / "best.json").read_text())
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    assert best["public_test_accuracy"] == pytest.approx(max(float(r["value"]) for r in complete), abs=1e-4)
    assert best["command"] in printed
    command = shlex.split(best["command"])
    assert command[:2] == ["emo-live", "train"]
    rerun = get_args_parser().parse_args(command[2:])  # ready to run: the train parser takes it as is
    assert rerun.lr == pytest.approx(best["params"]["lr"], rel=1e-5) and rerun.batch_size == best["params"]["batch_size"]
    assert rerun.epochs == 2 and rerun.arch_kwargs == TINY[1]

    # same command, more trials: resumes the sqlite study and only runs the missing trial
    assert main([*search, "--trials", "4", *TINY]) == 0
    assert "resuming study 'baseline_cnn-search'" in capsys.readouterr().out
    again = _rows(out / "trials.csv")
    assert [r["trial"] for r in again] == ["0", "1", "2", "3"] and again[:3] == rows

    # a resumed study must keep its training options
    assert main([*search, "--trials", "5", *TINY[:-2]]) == 2
    assert "resume it with the same options" in capsys.readouterr().err
    assert len(_rows(out / "trials.csv")) == 4


def test_search_refuses_options_it_owns(tmp_path, capsys):
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=14)
    assert main(["search", "--data", str(data), "-o", str(tmp_path / "s"), "--lr", "0.1"]) == 2
    assert "--lr is set by the search" in capsys.readouterr().err
    assert main(["search", "--data", str(data), "-o", str(tmp_path / "s"), "--params", "lr,momentum"]) == 2
    assert "unknown momentum" in capsys.readouterr().err


def test_search_refuses_bad_training_options_and_output_paths_before_the_study(tmp_path, capsys):
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=14)
    out = tmp_path / "s"
    assert main(["search", "--data", str(data), "-o", str(out), "--exclude", str(tmp_path / "missing.csv"), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emo-live: error: exclusion list {tmp_path / 'missing.csv'} does not exist") and err.count("\n") == 1
    assert not (out / "study.db").exists() and not list(out.glob("trial_*"))  # refused before the study and trial 0
    assert main(["search", "--data", str(data), "-o", str(out), "--limit", "-1"]) == 2
    assert "--limit must be >= 0" in capsys.readouterr().err

    (tmp_path / "file").write_text("")
    assert main(["search", "--data", str(data), "-o", str(tmp_path / "file" / "sub")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emo-live: error: cannot create output folder {tmp_path / 'file' / 'sub'}: {tmp_path / 'file'} is a file; choose another location with -o")
    assert err.count("\n") == 1


def test_a_trial_that_fails_is_logged_in_trials_csv(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=14)
    foreign = tmp_path / "foreign.csv"  # a readable list, but of another data source: the trial's training refuses it
    foreign.write_text("split,key,row,image,label,reasons\nTraining,99999,99999,,happy,blank\n")
    out = tmp_path / "s"
    assert main(["search", "--data", str(data), "-o", str(out), "--trials", "2", "--epochs-per-trial", "1", "--exclude", str(foreign), *TINY]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emo-live: error: none of the 1 excluded keys matches a Training row") and err.count("\n") == 1
    rows = _rows(out / "trials.csv")
    assert [(r["trial"], r["state"]) for r in rows] == [("0", "FAIL")] and rows[0]["output"] == str(out / "trial_0000")


def test_on_epoch_end_can_stop_training(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=70)
    seen = []
    args = get_args_parser().parse_args(["--data", str(data), "-o", str(tmp_path / "run"), "--epochs", "5", "--no-export", *TINY])
    summary = train_main(args, on_epoch_end=lambda record: seen.append(record["epoch"]) or record["epoch"] == 2)
    assert seen == [1, 2] and summary["epochs_run"] == 2
    assert len(json.loads((tmp_path / "run" / "history.json").read_text())) == 2
