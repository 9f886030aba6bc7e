"""The shipped default model: integrity, its card's figures on real data, and a real video end to end."""

import json
import shutil

import cv2
import pytest

from emolive.models.checkpoint import read_weights_info
from emolive.models.errors import ModelError
from emolive.models.onnx_io import read_onnx_info
from emolive.models.shipped import file_sha256, resolve_model_path, shipped_models, weights_dir, weights_for
from emolive.models.temporal_info import find_temporal_head
from emolive.realtime.cli import main
from conftest import int8_weight_range


def test_default_model_ships_with_card_and_metrics():
    models = shipped_models()
    assert "default" in models
    entry = models["default"]
    path = resolve_model_path("default")  # checks sha256
    for name in (entry.onnx, entry.safetensors, entry.card):
        assert (weights_dir() / name).is_file()
    info = read_onnx_info(path)
    assert info.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    card = (weights_dir() / entry.card).read_text()
    assert entry.onnx in card and f"{info.metrics['public_test_accuracy']:.4f}" in card


def test_fast_and_accurate_names_pick_shipped_models():
    models = shipped_models()
    assert models["fast"] == models["default"]
    info = {name: read_onnx_info(resolve_model_path(name)) for name in sorted(json.loads((weights_dir() / "manifest.json").read_text())["models"])}
    fer2013 = {name: i for name, i in info.items() if i.labels == info[models["default"].name].labels}
    public = {name: i.metrics["public_test_accuracy"] for name, i in fer2013.items()}
    # accurate: the best PublicTest accuracy among the FP32 FER2013 models (the default may be an INT8 file of that
    # network, within the live budget; INT8 rounding can move PublicTest either way).
    accurate = models["accurate"].name
    assert fer2013[accurate].precision == "fp32"
    assert public[accurate] == max(a for name, a in public.items() if fer2013[name].precision == "fp32")


@pytest.mark.parametrize("name", sorted(json.loads((weights_dir() / "manifest.json").read_text())["models"]))
def test_every_shipped_model_is_intact_and_has_its_card(name):
    entry = shipped_models()[name]
    path = resolve_model_path(name)  # checks sha256
    info = read_onnx_info(path)
    assert weights_for(path) == weights_dir() / entry.safetensors  # the torch engine and eval find these weights
    assert entry.safetensors_sha256 == file_sha256(weights_dir() / entry.safetensors)  # and check them
    weights = read_weights_info(weights_dir() / entry.safetensors)
    assert (weights.arch, weights.arch_kwargs, weights.labels) == (info.arch, info.arch_kwargs, info.labels)
    if info.precision == "int8":  # engines that cannot run the CPU INT8 file build from its FP32 model
        source = shipped_models()[entry.quantized_from]
        assert source.safetensors == entry.safetensors and read_onnx_info(resolve_model_path(source.name)).precision == "fp32"
        low, high = int8_weight_range(path)  # 7-bit weights: no 16-bit overflow in ONNX Runtime's kernels on CPUs without VNNI
        assert -64 <= low and high <= 64, (low, high)
    if entry.temporal:  # a shipped LSTM head belongs to this exact file (--smooth auto falls back to EMA on a stale one)
        assert find_temporal_head(path) == weights_dir() / entry.temporal
    card = (weights_dir() / entry.card).read_text()
    assert entry.onnx in card  # an INT8 file is described on its FP32 model's card
    assert "Command" in card or "Members" in card  # how to reproduce it
    assert f"{info.metrics['public_test_accuracy']:.4f}" in card


def _weights_with_one_damaged_file(tmp_path, monkeypatch, file_name):
    """A copy of the shipped weights folder, used in place of the real one, with one byte appended to ``file_name``."""
    import emolive.models.shipped as shipped

    copy = tmp_path / "weights"
    shutil.copytree(weights_dir(), copy)
    with open(copy / file_name, "ab") as handle:
        handle.write(b"\0")
    monkeypatch.setattr(shipped, "weights_dir", lambda: copy)


def test_damaged_shipped_model_is_refused(tmp_path, monkeypatch):
    _weights_with_one_damaged_file(tmp_path, monkeypatch, shipped_models()["default"].onnx)
    with pytest.raises(ModelError, match="damaged"):
        resolve_model_path("default")


def test_damaged_shipped_weights_are_refused_by_the_torch_engine_path(tmp_path, monkeypatch):
    entry = shipped_models()["accurate"]
    _weights_with_one_damaged_file(tmp_path, monkeypatch, entry.safetensors)
    path = resolve_model_path("accurate")  # the ONNX file is intact
    with pytest.raises(ModelError, match=rf"shipped model '{entry.name}' is damaged \({entry.safetensors}: sha256 .*reinstall emolive"):
        weights_for(path)


@pytest.mark.data
@pytest.mark.parametrize("name", ["default", "accurate"])
def test_shipped_model_reproduces_its_private_test_accuracy(name, fer_tarball, capsys):
    """Guards train/inference preprocessing parity: the file's recorded figure must come back through eval.

    A release records PrivateTest; an INT8 export records the PublicTest accuracy its calibration was chosen on."""
    stated = read_onnx_info(resolve_model_path(name)).metrics
    split = "PrivateTest" if "private_test_accuracy" in stated else "PublicTest"
    assert main(["eval", "--data", str(fer_tarball), "--split", split, "--model", name, "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["accuracy"] == pytest.approx(stated[f"{split[:-4].lower()}_test_accuracy"], abs=5e-4)
    if split == "PrivateTest":
        assert metrics["ece"] == pytest.approx(stated["private_test_ece"], abs=5e-4)
    assert metrics["accuracy"] >= 0.69


@pytest.mark.media
def test_annotate_real_single_face_video(media_dir, tmp_path):
    out, jsonl = tmp_path / "out.mp4", tmp_path / "out.jsonl"
    assert main(["annotate", str(media_dir / "single_face.mp4"), "-o", str(out), "--jsonl", str(jsonl), "--quiet"]) == 0
    source = cv2.VideoCapture(str(media_dir / "single_face.mp4"))
    written = cv2.VideoCapture(str(out))
    assert int(written.get(cv2.CAP_PROP_FRAME_COUNT)) == int(source.get(cv2.CAP_PROP_FRAME_COUNT)) == 72
    assert written.get(cv2.CAP_PROP_FPS) == pytest.approx(source.get(cv2.CAP_PROP_FPS))
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [r["frame"] for r in records] == list(range(72))
    with_face = sum(bool(r["faces"]) for r in records)
    assert with_face >= 0.9 * 72
    assert {f["id"] for r in records for f in r["faces"]} == {1}  # one person, one id


@pytest.mark.media
def test_annotate_real_group_photo_finds_every_face(media_dir, tmp_path):
    assert main(["annotate", str(media_dir / "five_faces.jpg"), "-o", str(tmp_path / "g.jpg"), "--quiet"]) == 0
    (record,) = [json.loads(line) for line in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert len(record["faces"]) == 5


@pytest.mark.data
def test_shipped_ferplus_model_reproduces_its_figure_on_ferplus_labels(fer_tarball, capsys):
    from conftest import DATA

    if not (DATA / "ferplus" / "fer2013new.csv").is_file():
        pytest.skip(f"FER+ labels not present at {DATA / 'ferplus'} (see shared/data/README.md)")
    info = read_onnx_info(resolve_model_path("ferplus"))
    assert len(info.labels) == 8 and "contempt" in info.labels
    assert main(["eval", "--data", str(fer_tarball), "--split", "PrivateTest", "--model", "ferplus", "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["label_set"] == "ferplus-majority"  # picked from the model's labels
    assert metrics["accuracy"] == pytest.approx(info.metrics["private_test_accuracy"], abs=5e-4)
