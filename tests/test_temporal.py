"""The LSTM temporal head, the CNN's features output, sequence synthesis, train-/eval-temporal and their metrics."""

import csv
import gzip
import json
import shutil

import numpy as np
import pytest

from conftest import face_video
from emolive.models.errors import InputError, ModelError
from emolive.models.labels import EMOTIONS
from emolive.models.preprocess import PreprocessSpec, preprocess_faces
from emolive.models.temporal_info import read_temporal_info, temporal_head_path
from emolive.realtime.smoothing import LstmSmoother, create_smoother
from emolive.training.sequences import ViewJitter, jittered_view, plan_sequence, plan_sequences
from emolive.training.temporal_metrics import flicker_rate, label_switches, latency_summary, sustained_switches, transition_latencies

torch = pytest.importorskip("torch")


def _torch_head(cnn):
    from safetensors.torch import load_file

    from emolive.models.temporal import TemporalHead

    head = TemporalHead(16, len(EMOTIONS), projection=8, hidden_size=6)
    head.load_state_dict(load_file(str(cnn.with_name("head.safetensors"))))
    return head.eval()


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# -- the ONNX step against PyTorch over whole sequences -------------------------------------------

def test_onnx_step_per_track_equals_pytorch_over_the_whole_sequence(tiny_model_with_head):
    head = _torch_head(tiny_model_with_head)
    smoother = create_smoother("lstm", cnn_path=tiny_model_with_head, labels=EMOTIONS)
    rng = np.random.default_rng(0)
    features = {track: rng.normal(size=(12, 16)).astype(np.float32) for track in (1, 2, 3)}
    # Track 1 lives frames 0-11, track 2 frames 0-5, track 3 starts at frame 4; row order changes every frame.
    alive_at = {1: range(0, 12), 2: range(0, 6), 3: range(4, 12)}
    outputs = {track: [] for track in features}
    for frame in range(12):
        ids = [t for t in (3, 1, 2) if frame in alive_at[t]]
        if frame % 2:
            ids.reverse()
        rows = np.stack([features[t][frame] for t in ids])
        smoothed = smoother.update(ids, np.full((len(ids), 7), 1 / 7, np.float32), ids, features=rows)
        for t, row in zip(ids, smoothed):
            outputs[t].append(row)
    for track, frames in alive_at.items():
        sequence = torch.from_numpy(features[track][list(frames)])[None]
        with torch.no_grad():
            expected = _softmax(head(sequence)[0][0].numpy())
        np.testing.assert_allclose(np.stack(outputs[track]), expected, atol=1e-5)


def test_a_track_forgotten_by_the_tracker_restarts_from_zero_state(tiny_model_with_head):
    head = _torch_head(tiny_model_with_head)
    smoother = create_smoother("lstm", cnn_path=tiny_model_with_head)
    f = np.random.default_rng(1).normal(size=(3, 1, 16)).astype(np.float32)
    p = np.full((1, 7), 1 / 7, np.float32)
    smoother.update([5], p, [5], features=f[0])
    smoother.update([5], p, [5], features=f[1])
    smoother.update([], p[:0], [], features=None)  # the tracker dropped track 5
    again = smoother.update([5], p, [5], features=f[2])
    with torch.no_grad():
        fresh = _softmax(head(torch.from_numpy(f[2][None]))[0][0, 0].numpy())
    np.testing.assert_allclose(again[0], fresh, atol=1e-5)
    smoother.update([5], p, [5], features=f[0])
    smoother.reset()
    np.testing.assert_allclose(smoother.update([5], p, [5], features=f[2])[0], fresh, atol=1e-5)


def test_lstm_smoothing_needs_a_matching_head_and_the_features(tiny_model, tiny_model_with_head, tmp_path):
    with pytest.raises(ModelError, match="train-temporal"):
        create_smoother("lstm", cnn_path=tiny_model)  # no head beside it
    other = tmp_path / "other.onnx"
    shutil.copyfile(tiny_model, other)
    with open(other, "ab") as handle:
        handle.write(b"\0")  # another file: another sha256
    shutil.copyfile(temporal_head_path(tiny_model_with_head), temporal_head_path(other))
    with pytest.raises(ModelError, match="another CNN"):
        create_smoother("lstm", cnn_path=other)
    with pytest.raises(InputError, match="lstm"):
        create_smoother("lstm")
    with pytest.raises(ModelError, match="labels|predicts"):
        LstmSmoother(temporal_head_path(tiny_model_with_head), labels=("a", "b"))
    smoother = create_smoother("lstm", cnn_path=tiny_model_with_head)
    with pytest.raises(ModelError, match="features"):
        smoother.update([1], np.full((1, 7), 1 / 7, np.float32), [1], features=None)


# -- the CNN's features output ---------------------------------------------------------------------

def test_shipped_cnn_has_features_and_its_logits_match_the_pytorch_weights(sample_bgr):
    from emolive.models.checkpoint import load_model
    from emolive.models.networks import TestTimeViews
    from emolive.models.shipped import resolve_model_path, shipped_models, weights_dir
    from emolive.realtime.engines import OnnxRuntimeEngine

    path = resolve_model_path("fer2013_face_resnet_s")
    model, info = load_model(weights_dir() / shipped_models()["fer2013_face_resnet_s"].safetensors)
    with OnnxRuntimeEngine(path) as engine:
        assert engine.info == info  # metadata (temperature, TTA, metrics, preprocessing) kept
        boxes = [(150, 60, 170, 190), (140, 50, 190, 210), (160, 70, 150, 170)]
        batch = preprocess_faces(sample_bgr, boxes, info.preprocess)
        logits = engine.logits(batch)
        probs, features = engine.infer(batch)
        np.testing.assert_allclose(probs, engine.classify(batch), atol=1e-6)
    assert features.shape == (3, model.num_features)
    x = torch.from_numpy(batch)
    with torch.no_grad():
        expected_logits = TestTimeViews(model)(x).numpy()
        expected_features = 0.5 * (model.forward_features(x) + model.forward_features(torch.flip(x, dims=[3]))).numpy()
    np.testing.assert_allclose(logits, expected_logits, atol=1e-4)
    np.testing.assert_allclose(features, expected_features, atol=1e-4)


def test_export_adds_features_without_changing_logits(tiny_model):
    from emolive.realtime.engines import OnnxRuntimeEngine

    with OnnxRuntimeEngine(tiny_model) as engine:
        batch = np.random.default_rng(2).normal(size=(4, 1, 48, 48)).astype(np.float32)
        probs, features = engine.infer(batch)
        assert features is not None and features.shape == (4, 16)
        np.testing.assert_allclose(probs, engine.classify(batch), atol=1e-6)
        assert [o.name for o in engine._session.get_outputs()] == ["logits", "features"]


# -- sequence synthesis ----------------------------------------------------------------------------

def test_sequence_plans_change_label_at_segment_boundaries_and_label_every_frame():
    labels = np.array([0, 0, 1, 2, 3, 3, 4, 5, 6, 6])
    for seed in range(5):
        plan = plan_sequence(labels, 300, np.random.default_rng(seed), clean_views=3, occluded_views=2, segment=(10, 40), occlusion_rate=1.0)
        assert len(plan) == 300
        np.testing.assert_array_equal(plan.label, labels[plan.image])
        image_changes = np.flatnonzero(np.diff(plan.image) != 0) + 1
        np.testing.assert_array_equal(plan.change_points, image_changes)  # every change of still is a change of label
        bounds = np.concatenate([[0], image_changes, [300]])
        assert (np.diff(bounds)[:-1] >= 10).all() and (np.diff(bounds) <= 40).all()
        occluded = plan.view >= 3
        assert occluded.any() and (plan.view < 5).all()
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], occluded.astype(int), [0]]))))[::2]
        assert runs.max() <= 6  # occlusions are short
    assert plan_sequences(labels, 3, 50, seed=1, clean_views=2, occluded_views=0)[0].view.max() < 2


def test_a_view_without_jitter_is_the_shared_preprocessing_of_the_still():
    still = np.random.default_rng(3).integers(0, 256, (48, 48), dtype=np.uint8)
    spec = PreprocessSpec()
    still_jitter = ViewJitter(shift=0, scale=0, brightness=0, contrast=0, blur_prob=0, noise_std=0)
    view = jittered_view(still, spec, np.random.default_rng(0), still_jitter, occluded=False)
    np.testing.assert_array_equal(view, preprocess_faces(still, None, spec))
    rng = np.random.default_rng(0)
    a, b = (jittered_view(still, spec, rng, ViewJitter(), occluded=False) for _ in range(2))
    assert a.shape == (1, 1, 48, 48) and not np.array_equal(a, b)


# -- metrics on hand-made label sequences ---------------------------------------------------------

def test_flicker_counts_switches_per_track_second():
    assert label_switches([3, 3, 4, 4, 3]) == 2 and label_switches([1]) == 0
    rate, switches, seconds = flicker_rate([[0, 1, 0, 1], [2, 2, 2, 2, 2, 2]], fps=10)
    assert (switches, seconds) == (3, 1.0) and rate == pytest.approx(3.0)


def test_the_flicker_floor_counts_changes_between_labels_held_long_enough():
    # 0 held 4 frames, a 1-frame blip of 2, 0 again, then 1 held 3 frames, a 2-frame run of 3, 1 held 3 frames.
    labels = [0, 0, 0, 0, 2, 0, 0, 1, 1, 1, 3, 3, 1, 1, 1]
    assert label_switches(labels) == 5
    assert sustained_switches(labels, 1) == 5
    assert sustained_switches(labels, 2) == 3  # the blip goes and the two runs of 0 merge: 0, 1, 3, 1
    assert sustained_switches(labels, 3) == 1  # the run of 3 goes too, and the two runs of 1 merge: 0 -> 1
    assert sustained_switches(labels, 5) == 0 and sustained_switches([], 3) == 0
    with pytest.raises(ValueError):
        sustained_switches(labels, 0)


def test_transition_latency_is_frames_until_the_output_follows():
    true = [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    assert transition_latencies(true, [0, 0, 0, 0, 0, 1, 1, 2, 2, 2]) == [2, 0]
    assert transition_latencies(true, [0, 0, 0, 0, 0, 0, 0, 1, 1, 1]) == [None, None]
    summary = latency_summary([2, 0, None, 4])
    assert summary["median_latency"] == 2 and summary["mean_latency"] == 2 and summary["followed"] == 0.75


def test_consistency_loss_counts_jumps_inside_an_expression_only():
    torch = pytest.importorskip("torch")
    from emolive.training.temporal_train import consistency_loss

    steady = torch.tensor([[[4.0, 0.0], [4.0, 0.0], [4.0, 0.0]]])
    jumpy = torch.tensor([[[4.0, 0.0], [0.0, 4.0], [4.0, 0.0]]])
    same = torch.zeros(1, 3, dtype=torch.long)
    assert consistency_loss(steady, same).item() == pytest.approx(0.0)
    jump = (torch.tensor([4.0, 0.0]).softmax(0) - torch.tensor([0.0, 4.0]).softmax(0)).abs().sum().item() / 2
    assert consistency_loss(jumpy, same).item() == pytest.approx(jump)
    # At a true change of expression (label 0 -> 1 between frames 0 and 1) that jump is not penalised.
    assert consistency_loss(jumpy, torch.tensor([[0, 1, 1]])).item() == pytest.approx(jump)  # only the 1 -> 2 pair counts, same size
    assert consistency_loss(jumpy[:, :2], torch.tensor([[0, 1]])).item() == pytest.approx(0.0)


# -- the commands end to end on tiny data ---------------------------------------------------------

def _tiny_fer_csv(path, per_class=3, seed=4):
    rng = np.random.default_rng(seed)
    with gzip.open(path, "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for usage in ("Training", "PublicTest", "PrivateTest"):
            for label in range(7):
                for _ in range(per_class):
                    writer.writerow([label, " ".join(map(str, rng.integers(0, 256, 2304))), usage])
    return path


def test_train_and_eval_temporal_end_to_end(tiny_model, sample_bgr, tmp_path, monkeypatch, capsys):
    from emolive.realtime.cli import main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = _tiny_fer_csv(tmp_path / "fer2013.csv.gz")
    cnn = tmp_path / "cnn" / "tiny.onnx"
    cnn.parent.mkdir()
    shutil.copyfile(tiny_model, cnn)
    args = ["--data", str(data), "--model", str(cnn), "--views", "2", "--occluded-views", "1", "--steps", "6", "--batch-size", "4",
            "--length", "20", "--val-every", "3", "--val-sequences", "4", "--quiet"]
    assert main(["train-temporal", *args, "-o", str(tmp_path / "run"), "--install", "--hidden", "8", "--projection", "8",
                 "--consistency", "1"]) == 0
    summary = json.loads((tmp_path / "run" / "temporal_summary.json").read_text())
    head = temporal_head_path(cnn)
    assert head.is_file() and summary["installed"] == str(head)
    info = read_temporal_info(head)
    assert info.hidden_size == 8 and info.feature_dim == 16 and info.labels == EMOTIONS
    assert 0.0 <= info.metrics["public_test_seq_accuracy"] <= 1.0 and info.training["consistency"] == 1.0
    capsys.readouterr()

    media = tmp_path / "media"
    media.mkdir()
    face_video(media / "clip.mp4", sample_bgr, frames=6)
    assert main(["eval-temporal", "--data", str(data), "--model", str(cnn), "--media", str(media), "--json", str(tmp_path / "t.json"),
                 "--views", "2", "--occluded-views", "1", "--sequences", "4", "--length", "20", "--cost-frames", "5", "--alphas", "0.5",
                 "--hysteresis", "0.1:3", "--hysteresis-on", "lstm", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "| lstm |" in table and "| ema (alpha 0.5) |" in table and "| lstm + hysteresis 0.1, dwell 3 |" in table
    result = json.loads((tmp_path / "t.json").read_text())
    rows = {row["smoothing"]: row for row in result["rows"]}
    assert set(rows) == {"none", "ema (alpha 0.5)", "lstm", "lstm + hysteresis 0.1, dwell 3"}
    assert all(row["frames"] == 6 and row["tracks"] >= 1 for row in rows.values())
    assert all(0.0 <= row["accuracy"] <= 1.0 and row["cost_ms_1"] > 0 for row in rows.values())
    floor = result["flicker_floor"]
    assert floor["raw_switches"] == rows["none"]["switches"] and 0 <= floor["sustained_switches"] <= floor["raw_switches"]
    assert floor["min_run_frames"] == 6 and f"{floor['raw_switches']} label switches without smoothing" in table

    # A setting is chosen on PublicTest sequences: --split builds them from PublicTest stills.
    import emolive.training.evaluate as evaluate  # eval-temporal labels its stills through evaluate.ground_truth

    loaded = []
    real_load = evaluate.load_fer2013
    monkeypatch.setattr(evaluate, "load_fer2013", lambda data, split: loaded.append(split) or real_load(data, split))
    assert main(["eval-temporal", "--data", str(data), "--model", str(cnn), "--split", "PublicTest", "--json", str(tmp_path / "p.json"),
                 "--views", "2", "--occluded-views", "1", "--sequences", "4", "--length", "20", "--cost-frames", "5", "--alphas", "0.5",
                 "--hysteresis", "", "--quiet"]) == 0
    assert loaded == ["PublicTest"] and json.loads((tmp_path / "p.json").read_text())["synthetic"]["split"] == "PublicTest"


def test_feature_cache_is_not_shared_by_datasets_with_equal_counts_but_other_images(tiny_model, tmp_path, monkeypatch):
    from emolive.training.temporal_train import feature_cache_dir, get_args_parser, main as temporal_main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, seed in zip(folders, (4, 5)):  # same rows, labels and counts; other pixels
        folder.mkdir()
        _tiny_fer_csv(folder / "fer2013.csv.gz", seed=seed)
    settings = ["--model", str(tiny_model), "--views", "1", "--occluded-views", "0", "--steps", "2", "--batch-size", "2",
                "--length", "10", "--val-every", "2", "--val-sequences", "2", "--quiet"]

    def run(folder):
        temporal_main(get_args_parser().parse_args(["--data", str(folder / "fer2013.csv.gz"), "-o", str(folder / "run"), *settings]))
        return {path.name: np.load(path)["features"] for path in sorted(feature_cache_dir().glob("views-*.npz"))}

    first = run(folders[0])
    assert len(first) == 2  # Training and PublicTest views
    both = run(folders[1])
    assert len(both) == 4  # the second dataset rendered its own views instead of reusing the first one's
    new = [both[name] for name in set(both) - set(first)]
    assert all(not any(np.array_equal(features, old) for old in first.values()) for features in new)
    assert run(folders[0]).keys() == both.keys()  # the same data again reuses its cache


def test_eval_temporal_settings_add_hysteresis_rows_and_reject_bad_ones():
    from emolive.training.temporal_eval import SmoothingSetting, settings_from

    settings = settings_from("0.7", "0.1:1,0:4", "lstm,ema", hysteresis_alpha=0.5)
    assert settings == [SmoothingSetting("none"), SmoothingSetting("ema", 0.7), SmoothingSetting("lstm"),
                        SmoothingSetting("lstm", 0.7, 0.1, 1), SmoothingSetting("lstm", 0.7, 0.0, 4),
                        SmoothingSetting("ema", 0.5, 0.1, 1), SmoothingSetting("ema", 0.5, 0.0, 4)]
    assert settings[5].label == "ema (alpha 0.5) + hysteresis 0.1, dwell 1"
    assert settings_from("0.7", "") == settings[:3]
    for bad in ({"hysteresis": "0.1"}, {"hysteresis": "1.5:2"}, {"hysteresis": "0:0"}, {"on": "kalman"}):
        with pytest.raises(InputError):
            settings_from("0.7", **{"hysteresis": "0:2", **bad})


def test_replaying_the_recorded_smoother_calls_equals_running_the_pipeline_with_that_smoothing(tiny_model, sample_bgr, tmp_path):
    from emolive.realtime import Recognizer
    from emolive.realtime.smoothing import EmaSmoother
    from emolive.training.temporal_eval import record_videos

    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=8)
    with Recognizer(tiny_model, smooth="ema", smooth_alpha=0.5) as recognizer:
        direct = [(face.id, face.probs) for result in recognizer.stream(str(clip)) for face in result.faces]
    (recorded,) = record_videos(tiny_model, [clip], "auto", 0)
    smoother, replayed = EmaSmoother(0.5), []
    for call in recorded.calls:
        if call is None:
            smoother.reset()
            continue
        ids, probs, active_ids, features = call
        replayed += list(zip(ids, smoother.update(ids, probs, active_ids, features=features)))
    assert len(direct) == len(replayed) >= 8
    for (direct_id, direct_probs), (replay_id, replay_probs) in zip(direct, replayed):
        assert direct_id == replay_id
        np.testing.assert_allclose(direct_probs, replay_probs, atol=1e-6)


def test_train_temporal_reports_bad_data_in_one_line(tmp_path, capsys):
    from emolive.realtime.cli import main

    assert main(["train-temporal", "--data", str(tmp_path / "missing"), "-o", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emo-live: error: dataset path") and "\n" not in err


def test_the_shipped_cnn_ships_a_temporal_head_trained_on_it():
    from emolive.models.shipped import resolve_model_path, shipped_models

    smoother = create_smoother("lstm", cnn_path=resolve_model_path("default"), labels=EMOTIONS)
    assert shipped_models()["default"].temporal == smoother.path.name
    assert smoother.info.metrics["public_test_seq_accuracy"] > 0


# -- label sets, option checks and output paths of train-temporal / eval-temporal ------------------

def _spy_plans(monkeypatch, module):
    """Record the still labels every plan_sequences call of ``module`` builds sequences from."""
    seen = []
    real = module.plan_sequences
    monkeypatch.setattr(module, "plan_sequences", lambda labels, *a, **k: seen.append(np.array(labels)) or real(labels, *a, **k))
    return seen


def test_a_ferplus_cnn_learns_and_is_scored_on_ferplus_majority_labels(tiny_ferplus_model, tmp_path, monkeypatch, capsys):
    import emolive.training.temporal_eval as temporal_eval
    import emolive.training.temporal_train as temporal_train
    from emolive.models.labels import FERPLUS_EMOTIONS
    from emolive.realtime.cli import main
    from emolive.training.data import load_fer2013
    from emolive.training.evaluate import ferplus_majority_split
    from test_ferplus import _ferplus_dataset

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    (tmp_path / "d").mkdir()
    data, majority = _ferplus_dataset(tmp_path / "d", n=160)
    expected = {split: ferplus_majority_split(load_fer2013(data, split), data).labels for split in ("Training", "PublicTest", "PrivateTest")}
    assert all(7 in labels for labels in expected.values())  # contempt: a FER+ class id FER2013 ids never take
    cnn = tmp_path / "cnn" / "ferplus.onnx"
    cnn.parent.mkdir()
    shutil.copyfile(tiny_ferplus_model, cnn)
    common = ["--data", str(data), "--model", str(cnn), "--views", "2", "--occluded-views", "1", "--length", "20", "--quiet"]

    trained = _spy_plans(monkeypatch, temporal_train)
    assert main(["train-temporal", *common, "-o", str(tmp_path / "run"), "--install", "--steps", "2", "--batch-size", "2",
                 "--val-every", "2", "--val-sequences", "2", "--hidden", "8", "--projection", "8"]) == 0
    validation, *training = trained
    np.testing.assert_array_equal(validation, expected["PublicTest"])  # every PublicTest still with a majority, in FER+ ids
    assert len(training) == 2 and all(np.array_equal(labels, expected["Training"]) for labels in training)
    info = read_temporal_info(temporal_head_path(cnn))
    assert info.labels == FERPLUS_EMOTIONS and "ferplus-majority labels" in info.training_data
    capsys.readouterr()

    scored = _spy_plans(monkeypatch, temporal_eval)
    assert main(["eval-temporal", *common, "--json", str(tmp_path / "t.json"), "--sequences", "3", "--cost-frames", "2",
                 "--alphas", "0.5", "--hysteresis", ""]) == 0
    np.testing.assert_array_equal(scored[0], expected["PrivateTest"])
    synthetic = json.loads((tmp_path / "t.json").read_text())["synthetic"]
    assert synthetic["label_set"] == "ferplus-majority" and synthetic["stills"] == majority["PrivateTest"]


def test_a_cnn_with_other_labels_is_refused_before_any_view_is_rendered(tmp_path, monkeypatch, capsys):
    import emolive.training.temporal_train as temporal_train
    from conftest import random_tiny_model
    from emolive.realtime.cli import main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(temporal_train, "view_features", lambda *a, **k: pytest.fail("views rendered for a CNN with other labels"))
    cnn = random_tiny_model(tmp_path / "two.onnx", ("happy", "sad"))
    data = _tiny_fer_csv(tmp_path / "fer2013.csv.gz")
    assert main(["train-temporal", "--data", str(data), "--model", str(cnn), "-o", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emo-live: error: the model predicts happy, sad; --labels fer2013 needs a model with the labels angry") and err.count("\n") == 1


def _no_split_csv(path):
    """A FER2013 CSV with Training and PublicTest rows but no PrivateTest ones."""
    _tiny_fer_csv(path)
    with gzip.open(path, "rt") as handle:
        lines = [line for line in handle if not line.rstrip().endswith("PrivateTest")]
    with gzip.open(path, "wt") as handle:
        handle.writelines(lines)
    return path


EVAL_CASES = [
    (["--sequences", "0"], "--sequences must be at least 1, got 0"),
    (["--length", "0"], "--length must be at least 1, got 0"),
    (["--cost-frames", "0"], "--cost-frames must be at least 1, got 0"),
    (["--sustained-frames", "0"], "--sustained-frames must be at least 1, got 0"),
    (["--views", "0"], "--views must be at least 1, got 0"),
    (["--occluded-views", "-1"], "--occluded-views must be at least 0, got -1"),
    (["--images", "-2"], "--images must be at least 0, got -2"),
    (["--fps", "0"], "--fps must be above 0"),
    (["--images", "1"], "has 1 still(s) of 1 class(es); sequences need expression changes, so raise --images (0 = all)"),
    (["--data", "NO_SPLIT"], "the PrivateTest split of NO_SPLIT has no images; pass a FER2013 copy that has it"),
    (["--json", "FILE/t.json"], "cannot create output folder FILE: FILE is a file; choose another location with --json"),
]


@pytest.mark.parametrize("extra,message", EVAL_CASES, ids=[" ".join(case[0]) for case in EVAL_CASES])
def test_eval_temporal_refuses_bad_options_in_one_line_before_the_cnn_runs(tiny_model_with_head, tmp_path, monkeypatch, capsys, extra, message):
    import emolive.training.temporal_eval as temporal_eval
    from emolive.realtime.cli import main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(temporal_eval, "view_features", lambda *a, **k: pytest.fail("CNN features computed before the check"))
    (tmp_path / "file").write_text("")
    names = {"NO_SPLIT": str(_no_split_csv(tmp_path / "no_private.csv.gz")), "FILE": str(tmp_path / "file")}
    for name, path in names.items():
        extra, message = [a.replace(name, path) for a in extra], message.replace(name, path)
    argv = ["eval-temporal", "--data", str(_tiny_fer_csv(tmp_path / "fer2013.csv.gz")), "--model", str(tiny_model_with_head), "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("emo-live: error: ") and message in err and err.count("\n") == 1


TRAIN_CASES = [
    (["--steps", "0"], "--steps must be at least 1, got 0"),
    (["--val-every", "0"], "--val-every must be at least 1, got 0"),
    (["--val-sequences", "0"], "--val-sequences must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--length", "0"], "--length must be at least 1, got 0"),
    (["--views", "0"], "--views must be at least 1, got 0"),
    (["--train-images", "1"], "Training at"),
    (["-o", "FILE/run"], "cannot create output folder FILE/run: FILE is a file; choose another location with -o"),
]


@pytest.mark.parametrize("extra,message", TRAIN_CASES, ids=[" ".join(case[0]) for case in TRAIN_CASES])
def test_train_temporal_refuses_bad_options_in_one_line_before_the_cnn_runs(tiny_model, tmp_path, monkeypatch, capsys, extra, message):
    import emolive.training.temporal_train as temporal_train
    from emolive.realtime.cli import main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(temporal_train, "view_features", lambda *a, **k: pytest.fail("CNN features computed before the check"))
    (tmp_path / "file").write_text("")
    extra = [a.replace("FILE", str(tmp_path / "file")) for a in extra]
    argv = ["train-temporal", "--data", str(_tiny_fer_csv(tmp_path / "fer2013.csv.gz")), "--model", str(tiny_model), "-o", str(tmp_path / "run"),
            "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("emo-live: error: ") and message.replace("FILE", str(tmp_path / "file")) in err and err.count("\n") == 1
