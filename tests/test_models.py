"""Registry-driven model tests: every architecture builds, saves, loads and exports identically."""

import json

import numpy as np
import pytest

from emolive.models.errors import ModelError
from emolive.models.info import ModelInfo
from emolive.models.labels import EMOTIONS

torch = pytest.importorskip("torch")

from emolive.models.checkpoint import load_model, save_weights  # noqa: E402
from emolive.models.onnx_io import export_onnx, read_onnx_info  # noqa: E402
from emolive.models.registry import create_model, list_models  # noqa: E402

TINY = {"widths": [4, 8, 8], "hidden": 16}
BASELINES = [name for name in list_models() if name.startswith("baseline_cnn")]  # every architecture: tests/test_zoo.py


def test_labels_are_fer2013_order():
    assert EMOTIONS == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


@pytest.mark.parametrize("name", BASELINES)
def test_every_registered_model_classifies_a_batch(name):
    model = create_model(name, num_classes=7, **TINY).eval()
    x = torch.randn(3, 1, 48, 48)
    assert model(x).shape == (3, 7)
    assert model.forward_features(x).shape == (3, model.num_features)


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(KeyError, match="baseline_cnn"):
        create_model("nope")


@pytest.mark.parametrize("name", BASELINES)
def test_safetensors_and_onnx_round_trip(name, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = create_model(name, num_classes=7, **TINY).eval()
    info = ModelInfo(arch=name, labels=EMOTIONS, arch_kwargs=TINY, metrics={"public_test_accuracy": 0.5})
    save_weights(model, info, tmp_path / "m.safetensors")
    loaded, loaded_info = load_model(tmp_path / "m.safetensors")
    assert loaded_info == info
    x = torch.randn(5, 1, 48, 48)
    with torch.no_grad():
        expected = model(x).numpy()
        np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-5)
    path = export_onnx(loaded, loaded_info, tmp_path / "m.onnx")
    assert read_onnx_info(path) == info
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 5):  # dynamic batch axis
        got = session.run(None, {"input": x[:batch].numpy()})[0]
        np.testing.assert_allclose(got, expected[:batch], atol=1e-4)


def test_model_info_rejects_missing_or_malformed_metadata():
    with pytest.raises(ModelError, match="no 'emolive' metadata"):
        ModelInfo.from_json(None, "x.onnx")
    with pytest.raises(ModelError, match="malformed"):
        ModelInfo.from_json(json.dumps({"labels": ["a"]}), "x.onnx")
    with pytest.raises(ModelError, match="malformed"):
        ModelInfo.from_json(json.dumps({"arch": "baseline_cnn", "labels": ["a", "a"]}), "x.onnx")
    for metrics in (None, [0.5]):  # written by an older or foreign tool
        text = json.dumps({"arch": "baseline_cnn", "labels": list(EMOTIONS), "metrics": metrics})
        if metrics is None:
            assert ModelInfo.from_json(text, "x.onnx").metrics == {}
        else:
            with pytest.raises(ModelError, match="malformed"):
                ModelInfo.from_json(text, "x.onnx")


def test_a_damaged_or_newer_manifest_of_shipped_models(tmp_path, monkeypatch):
    import emolive.models.shipped as shipped

    real = json.loads((shipped.weights_dir() / "manifest.json").read_text())
    monkeypatch.setattr(shipped, "weights_dir", lambda: tmp_path)
    try:
        for text in ("{\"models\": {", None):
            shipped._manifest.cache_clear()
            manifest = tmp_path / "manifest.json"
            manifest.unlink(missing_ok=True)
            if text is not None:
                manifest.write_text(text)
            with pytest.raises(ModelError, match=r"is missing or damaged \(\w+\); reinstall emolive"):
                shipped.shipped_models()
        newer = {**real, "models": {name: {**entry, "added_later": 1} for name, entry in real["models"].items()}}
        (tmp_path / "manifest.json").write_text(json.dumps(newer))
        shipped._manifest.cache_clear()
        assert shipped.shipped_models()["default"].onnx == real["models"][real["aliases"]["default"]]["onnx"]
    finally:
        shipped._manifest.cache_clear()


def test_loading_weights_into_the_wrong_label_count_fails_clearly(tmp_path):
    model = create_model("baseline_cnn", num_classes=7, **TINY)
    wrong = ModelInfo(arch="baseline_cnn", labels=("a", "b", "c"), arch_kwargs=TINY)
    save_weights(model, wrong, tmp_path / "w.safetensors")
    with pytest.raises(ModelError, match="does not match"):
        load_model(tmp_path / "w.safetensors")


def test_squeeze_excitation_option_gates_every_block_and_round_trips(tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    kwargs = {"widths": [8, 16], "depths": [1, 2], "stem": 8, "se_reduction": 4}
    model = create_model("face_resnet_s", num_classes=7, **kwargs).eval()
    plain = create_model("face_resnet_s", num_classes=7, **{**kwargs, "se_reduction": 0})
    gates = [m for m in model.modules() if type(m).__name__ == "SqueezeExcitation"]
    assert len(gates) == 3  # one per residual block
    assert sum(p.numel() for p in model.parameters()) > sum(p.numel() for p in plain.parameters())
    info = ModelInfo(arch="face_resnet_s", labels=EMOTIONS, arch_kwargs=kwargs)
    save_weights(model, info, tmp_path / "se.safetensors")
    loaded, _ = load_model(tmp_path / "se.safetensors")
    x = torch.randn(4, 1, 48, 48)
    with torch.no_grad():
        expected = model(x).numpy()
        np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-5)
    session = ort.InferenceSession(str(export_onnx(loaded, info, tmp_path / "se.onnx")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x.numpy()})[0], expected, atol=1e-4)
    with pytest.raises(ValueError, match="se_reduction must be 0"):
        create_model("face_resnet_s", num_classes=7, se_reduction=-1)


@pytest.mark.parametrize(("arch", "arch_kwargs", "reason"), [
    ("baseline_cnn", {**TINY, "bogus": 1}, "unexpected keyword argument 'bogus'"),  # TypeError in the constructor
    ("baseline_cnn", {**TINY, "widths": [4, 8]}, "widths must have 3 entries"),  # ValueError in the constructor
    ("no_such_net", {}, "needs architecture 'no_such_net', which this emolive does not have; upgrade emolive"),  # not in the registry
    ("ensemble", {"members": [{"arch": "no_such_net"}]}, "needs architecture 'no_such_net'"),  # an ensemble names its member's
    ("ensemble", {"members": [{"arch_kwargs": {}}]}, "does not accept"),  # a member without an architecture
])
def test_model_files_with_bad_architecture_settings_give_model_error(tmp_path, arch, arch_kwargs, reason):
    model = create_model("baseline_cnn", num_classes=7, **TINY)
    save_weights(model, ModelInfo(arch=arch, labels=EMOTIONS, arch_kwargs=arch_kwargs), tmp_path / "w.safetensors")
    with pytest.raises(ModelError, match=reason) as raised:
        load_model(tmp_path / "w.safetensors")
    assert "\n" not in str(raised.value) and "w.safetensors" in str(raised.value)


@pytest.mark.parametrize("content", [b"", b"not a model at all", b"\x08\x01garbage"])
def test_broken_model_files_give_model_error(tmp_path, content):
    from emolive.realtime.engines import OnnxRuntimeEngine

    (tmp_path / "bad.onnx").write_bytes(content)
    with pytest.raises(ModelError):
        OnnxRuntimeEngine(tmp_path / "bad.onnx")
    (tmp_path / "bad.safetensors").write_bytes(content)
    with pytest.raises(ModelError):
        load_model(tmp_path / "bad.safetensors")


@pytest.mark.parametrize("mode", ["hflip", "hflip_zoom"])
def test_tta_export_averages_the_views_of_a_face(mode, tmp_path):
    """hflip: the face and its mirror; hflip_zoom: also its centre without a 2-pixel frame scaled back to 48x48, and that
    zoom's mirror. One graph, the mean of the views' logits."""
    import onnxruntime as ort

    torch.manual_seed(0)
    model = create_model("baseline_cnn", num_classes=7, **TINY).eval()
    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=TINY, test_time_augmentation=mode)
    path = export_onnx(model, info, tmp_path / "tta.onnx")
    assert read_onnx_info(path).test_time_augmentation == mode
    x = torch.randn(3, 1, 48, 48).cumsum(3)  # smooth rows: a zoom moves content visibly
    zoomed = torch.nn.functional.interpolate(x[:, :, 2:46, 2:46], size=(48, 48), mode="bilinear", align_corners=False)
    with torch.no_grad():
        views = [model(v) for v in (x, torch.flip(x, dims=[3]), zoomed, torch.flip(zoomed, dims=[3]))]
        mirror_only = (0.5 * (views[0] + views[1])).numpy()
        expected = mirror_only if mode == "hflip" else (sum(views) / 4).numpy()
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x.numpy()})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    if mode == "hflip_zoom":
        assert np.abs(got - mirror_only).max() > 50 * np.abs(got - expected).max()  # the zoomed views count
    with pytest.raises(ValueError):
        ModelInfo(arch="baseline_cnn", labels=EMOTIONS, test_time_augmentation="ten-crop")


def test_weights_stored_as_float16_halve_the_files_and_keep_the_outputs(tmp_path):
    from emolive.realtime.engines import OnnxRuntimeEngine

    torch.manual_seed(0)
    kwargs = {"widths": [16, 32, 32], "hidden": 64}
    network = create_model("baseline_cnn", num_classes=7, **kwargs).eval()
    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=kwargs)
    full, half = export_onnx(network, info, tmp_path / "full.onnx"), export_onnx(network, info, tmp_path / "half.onnx", weights_fp16=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    x = np.random.default_rng(1).normal(0, 1, (8, 1, 48, 48)).astype(np.float32)
    with OnnxRuntimeEngine(full) as a, OnnxRuntimeEngine(half) as b:
        assert b.info == a.info
        reference, compact = a.logits(x), b.logits(x)
    assert np.abs(compact - reference).max() < 1e-2 * np.abs(reference).max() and np.array_equal(compact.argmax(1), reference.argmax(1))

    save_weights(network, info, tmp_path / "full.safetensors")
    save_weights(network, info, tmp_path / "half.safetensors", fp16=True)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (tmp_path / "full.safetensors").stat().st_size
    loaded, _ = load_model(tmp_path / "half.safetensors")
    for name, value in loaded.state_dict().items():
        original = network.state_dict()[name]
        assert value.dtype == original.dtype  # back in the float32 network
        if original.is_floating_point():
            assert torch.equal(value, original.half().float())
