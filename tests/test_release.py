"""Shipping a model: release of a training run and of an ensemble, the manifest, the card, calibration choice."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import learnable_fer_csv

pytest.importorskip("torch")

from emolive.calibration.temperature import expected_calibration_error  # noqa: E402
from emolive.models.onnx_io import read_onnx_info  # noqa: E402
from emolive.models.shipped import file_sha256  # noqa: E402
from emolive.realtime.engines import softmax  # noqa: E402
from emolive.training.data import load_fer2013  # noqa: E402
from emolive.training.evaluate import evaluate_model  # noqa: E402
from emolive.training.release import choose_temperature, main as release  # noqa: E402
from emolive.training.train import get_args_parser, main as train  # noqa: E402

TINY = '{"widths": [4, 8, 8], "hidden": 16}'


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return learnable_fer_csv(tmp_path_factory.mktemp("fer") / "fer.csv")


def _train(data: Path, run: Path, seed: int) -> Path:
    train(get_args_parser().parse_args(["--data", str(data), "--model", "baseline_cnn", "--arch-kwargs", TINY, "--epochs", "3", "--batch-size", "32",
           "--lr", "3e-3", "--label-smoothing", "0", "--seed", str(seed), "--threads", "1", "--no-export", "-o", str(run)]))
    return run


def test_choose_temperature_keeps_the_fit_only_when_it_lowers_ece():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 7, 4000)
    logits = rng.normal(0, 1, (4000, 7))
    logits[np.arange(4000), labels] += 2.0
    overconfident = logits * 3.0  # a scalar fixes this: the fit is kept
    temperature, record = choose_temperature(overconfident, labels)
    assert temperature == pytest.approx(record["fitted_temperature"], abs=1e-4) and temperature > 1.2
    assert expected_calibration_error(softmax(overconfident, temperature), labels) < record["public_test_ece_t1"]

    # Already calibrated (confidence 0.7, exactly 70 % right): refitting cannot lower ECE, T = 1 is kept.
    labels = np.arange(4000) % 7
    top = np.where(np.arange(4000) < 2800, labels, (labels + 1) % 7)
    probs = np.full((4000, 7), 0.3 / 6)
    probs[np.arange(4000), top] = 0.7
    temperature, record = choose_temperature(np.log(probs), labels)
    assert record["public_test_ece_t1"] == pytest.approx(0.0, abs=1e-6)
    assert temperature == 1.0


def test_release_ships_a_run_and_an_ensemble(data, tmp_path, capsys):
    runs = [_train(data, tmp_path / f"run{seed}", seed) for seed in (0, 1)]
    dest = tmp_path / "weights"
    result = release([str(runs[0]), "--data", str(data), "--name", "tiny_a", "--alias", "fast", "--dest", str(dest), "--tta", "auto"])
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["aliases"] == {"fast": "tiny_a"}
    assert manifest["models"]["tiny_a"]["sha256"] == result["sha256"]
    assert manifest["models"]["tiny_a"]["safetensors_sha256"] == file_sha256(dest / "tiny_a.safetensors")
    info = read_onnx_info(dest / "tiny_a.onnx")
    private = evaluate_model(dest / "tiny_a.onnx", data, "PrivateTest", progress=False)
    assert info.metrics["private_test_accuracy"] == pytest.approx(private["accuracy"], abs=1e-4)
    assert info.test_time_augmentation in ("none", "hflip")
    card = (dest / "tiny_a.md").read_text()
    assert f"{private['accuracy']:.4f}" in card and "emo-live train --data" in card and "--epochs 3" in card
    assert "--label-smoothing 0.0" in card and "--arch-kwargs '{\"widths\": [4, 8, 8], \"hidden\": 16}'" in card
    assert "--seed 0" not in card  # defaults are left out
    assert not list(dest.glob(".*staging*"))  # nothing half-written left behind

    result = release([str(runs[1]), "--data", str(data), "--name", "tiny_b", "--dest", str(dest), "--tta", "none,hflip_zoom"])
    chosen = read_onnx_info(dest / "tiny_b.onnx").test_time_augmentation
    compared = {tta: result["metrics"][f"public_test_accuracy_tta_{tta}"] for tta in ("none", "hflip_zoom")}
    assert chosen == max(compared, key=lambda tta: (compared[tta], tta == "none"))  # the better on PublicTest, ties to the cheaper
    assert "--tta none,hflip_zoom" in (dest / "tiny_b.md").read_text()
    capsys.readouterr()
    release(["--ensemble", str(dest / "tiny_a.safetensors"), str(dest / "tiny_b.safetensors"), "--data", str(data),
             "--name", "tiny_ens", "--alias", "accurate", "--dest", str(dest), "--tta", "none", "--weights-fp16"])
    manifest = json.loads((dest / "manifest.json").read_text())
    assert manifest["aliases"] == {"fast": "tiny_a", "accurate": "tiny_ens"} and set(manifest["models"]) == {"tiny_a", "tiny_b", "tiny_ens"}
    ensemble = read_onnx_info(dest / "tiny_ens.onnx")
    assert ensemble.arch == "ensemble" and len(ensemble.arch_kwargs["members"]) == 2
    card = (dest / "tiny_ens.md").read_text()
    assert "Members:" in card and "--ensemble tiny_a.safetensors tiny_b.safetensors" in card
    assert f"{ensemble.metrics['private_test_accuracy']:.4f}" in card
    # --weights-fp16: both files hold float16 weights, and the figures are those of the stored file
    assert "--weights-fp16" in card and "store the weights as float16" in card
    from safetensors import safe_open

    with safe_open(str(dest / "tiny_ens.safetensors"), framework="pt") as handle:
        assert {str(handle.get_tensor(k).dtype) for k in handle.keys() if "weight" in k} == {"torch.float16"}
    private = evaluate_model(dest / "tiny_ens.onnx", data, "PrivateTest", progress=False)
    assert ensemble.metrics["private_test_accuracy"] == pytest.approx(private["accuracy"], abs=1e-4)


def test_a_fine_tuned_runs_card_gives_the_command_behind_its_starting_weights(data, tmp_path):
    donor = _train(data, tmp_path / "donor", 0)
    tuned = tmp_path / "tuned"
    train(get_args_parser().parse_args(["--data", str(data), "--model", "baseline_cnn", "--arch-kwargs", TINY, "--epochs", "1",
                                        "--batch-size", "32", "--lr", "1e-4", "--threads", "1", "--no-export", "-o", str(tuned),
                                        "--init", str(donor)]))
    release([str(tuned), "--data", str(data), "--name", "tiny_ft", "--dest", str(tmp_path / "weights"), "--tta", "none"])
    card = (tmp_path / "weights" / "tiny_ft.md").read_text()
    donor_minutes = json.loads((donor / "summary.json").read_text())["wall_seconds"] / 60
    assert f"--init {donor}" in card  # the fine-tuning command
    assert f"- Starting weights (`--init`): the run `emo-live train --data {data} --model baseline_cnn --epochs 3" in card
    tuned_minutes = json.loads((tuned / "summary.json").read_text())["wall_seconds"] / 60
    assert f"-o {donor}`, {donor_minutes:.1f} min for 3 epochs; {donor_minutes + tuned_minutes:.1f} min of training in all." in card

    again = tmp_path / "again"  # a fine-tune of the fine-tune: the card follows --init back to the first run
    train(get_args_parser().parse_args(["--data", str(data), "--model", "baseline_cnn", "--arch-kwargs", TINY, "--epochs", "1",
                                        "--batch-size", "32", "--lr", "1e-4", "--threads", "1", "--no-export", "-o", str(again),
                                        "--init", str(tuned / "best.safetensors")]))
    release([str(again), "--data", str(data), "--name", "tiny_ft2", "--dest", str(tmp_path / "weights"), "--tta", "none"])
    card = (tmp_path / "weights" / "tiny_ft2.md").read_text()
    again_minutes = json.loads((again / "summary.json").read_text())["wall_seconds"] / 60
    assert f"--init {donor} -o {tuned}`, {tuned_minutes:.1f} min for 1 epochs; which started from the run `emo-live train" in card
    assert f"{donor_minutes + tuned_minutes + again_minutes:.1f} min of training in all." in card


def test_screen_scores_each_view_set_on_publictest_only_and_writes_nothing(data, tmp_path, capsys, monkeypatch):
    import emolive.training.evaluate as evaluate_module

    run = _train(data, tmp_path / "run", 2)
    splits_read: list[str] = []
    load = evaluate_module.load_fer2013
    monkeypatch.setattr(evaluate_module, "load_fer2013", lambda path, split: splits_read.append(split) or load(path, split))
    dest = tmp_path / "weights"
    screened = release([str(run), "--data", str(data), "--screen", "--tta", "none,hflip", "--dest", str(dest)])
    assert splits_read == ["PublicTest"] and not dest.exists()
    printed = capsys.readouterr().out
    for tta, acc in screened["public_test_accuracy_by_tta"].items():
        assert f"PublicTest {tta}: {acc:.4f}" in printed

    # The same figures the release of that run records, computed the same way.
    shipped = release([str(run), "--data", str(data), "--name", "tiny_s", "--dest", str(dest), "--tta", "none,hflip"])
    assert screened["public_test_accuracy_by_tta"] == {tta: shipped["metrics"][f"public_test_accuracy_tta_{tta}"] for tta in ("none", "hflip")}
    capsys.readouterr()


def test_screen_against_a_model_counts_the_images_only_one_gets_right(data, tmp_path, capsys):
    runs = [_train(data, tmp_path / f"run{seed}", seed) for seed in (3, 4)]
    dest = tmp_path / "weights"
    shipped = release([str(runs[0]), "--data", str(data), "--name", "tiny_ref", "--dest", str(dest), "--tta", "hflip"])
    reference = dest / "tiny_ref.onnx"
    capsys.readouterr()

    # The shipped file of the same run with the same views predicts the same classes: nothing to test, p = 1.
    same = release([str(runs[0]), "--data", str(data), "--screen", "--tta", "hflip", "--against", str(reference)])
    assert same["against"]["public_test_accuracy"] == shipped["metrics"]["public_test_accuracy"]
    assert same["against"]["paired"]["hflip"] == {"right_only_here": 0, "right_only_there": 0, "mcnemar_p": 1.0}

    # Another run: the accuracy gap is exactly the discordant images' difference, and each line says so.
    other = release([str(runs[1]), "--data", str(data), "--screen", "--tta", "none,hflip", "--against", str(reference)])
    printed = capsys.readouterr().out
    n = len(load_fer2013(data, "PublicTest"))
    for tta, pair in other["against"]["paired"].items():
        gap = other["public_test_accuracy_by_tta"][tta] - other["against"]["public_test_accuracy"]
        assert gap == pytest.approx((pair["right_only_here"] - pair["right_only_there"]) / n, abs=2e-4)
        assert 0.0 < pair["mcnemar_p"] <= 1.0
        assert (f"PublicTest {tta}: {other['public_test_accuracy_by_tta'][tta]:.4f}  vs {reference} "
                f"{other['against']['public_test_accuracy']:.4f}: right only here {pair['right_only_here']}, "
                f"only there {pair['right_only_there']}, McNemar p = {pair['mcnemar_p']:.3f}") in printed
    assert any(pair["right_only_here"] + pair["right_only_there"] for pair in other["against"]["paired"].values())

    with pytest.raises(SystemExit) as exit_info:
        release([str(runs[1]), "--data", str(data), "--name", "x", "--against", str(reference)])
    assert exit_info.value.code == 2 and "--against compares candidates on PublicTest only; add --screen" in capsys.readouterr().err


def test_paired_comparison_is_the_exact_mcnemar_test():
    from emolive.training.release import paired_comparison

    labels = np.zeros(40, dtype=int)
    ours = np.zeros(40, dtype=int)
    theirs = np.zeros(40, dtype=int)
    ours[:2] = 1      # 2 images only the reference gets right
    theirs[2:12] = 1  # 10 images only the candidate gets right
    pair = paired_comparison(ours, theirs, labels)
    # Two-sided binomial test of 10 of 12 at 1/2: 2 * (C(12,0) + C(12,1) + C(12,2)) / 2**12 = 158 / 4096.
    assert pair == {"right_only_here": 10, "right_only_there": 2, "mcnemar_p": round(158 / 4096, 4)}


def test_release_without_a_name_asks_for_one_or_for_screen(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        release([str(tmp_path), "--data", str(data)])
    assert exit_info.value.code == 2 and "--name is required to ship a model (or pass --screen" in capsys.readouterr().err


def test_release_needs_exactly_one_source(data, tmp_path):
    with pytest.raises(SystemExit):
        release(["--data", str(data), "--name", "x", "--dest", str(tmp_path)])


def test_release_rejects_an_unknown_test_time_augmentation(data, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        release([str(tmp_path), "--data", str(data), "--name", "x", "--dest", str(tmp_path), "--tta", "hflip,ten-crop"])
    assert exit_info.value.code == 2 and "unknown test-time augmentation ten-crop" in capsys.readouterr().err


@pytest.mark.parametrize(("files", "message"), [
    ({}, "has no summary.json; pass the --output folder of a finished 'emo-live train' run"),
    ({"summary.json": "{}"}, "has no best.safetensors"),
    ({"summary.json": "{not json", "best.safetensors": ""}, "summary.json is unreadable"),
    ({"summary.json": '{"args": {}}', "best.safetensors": ""}, "summary.json lacks epochs_run, wall_seconds"),
])
def test_module_entry_point_refuses_an_unfinished_run_in_one_line(data, tmp_path, capsys, files, message):
    from emolive.training.release import cli

    run = tmp_path / "run"
    run.mkdir()
    for name, text in files.items():
        (run / name).write_text(text)
    assert cli([str(run), "--data", str(data), "--name", "x", "--dest", str(tmp_path / "weights")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m emolive.training.release: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "weights").exists()  # nothing shipped


def test_module_entry_point_reports_a_broken_model_in_one_line(data, tmp_path, capsys):
    from emolive.training.release import cli

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text('{"args": {}, "epochs_run": 1, "wall_seconds": 1.0}')
    (run / "best.safetensors").write_bytes(b"not safetensors")
    assert cli([str(run), "--data", str(data), "--name", "x", "--dest", str(tmp_path / "weights")]) == 2
    err = capsys.readouterr().err.strip()
    assert "best.safetensors is not a readable safetensors file" in err and "\n" not in err
