"""Every registered architecture (CNNs, MLP, torchvision transfer models, ensembles) builds, runs,
round-trips safetensors and ONNX, and ImageNet weights load from a local file with the stem folded."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from emolive.models.checkpoint import load_model, save_weights  # noqa: E402
from emolive.models.errors import ModelError  # noqa: E402
from emolive.models.info import ModelInfo  # noqa: E402
from emolive.models.labels import EMOTIONS  # noqa: E402
from emolive.models.onnx_io import export_onnx, read_onnx_info  # noqa: E402
from emolive.models.registry import create_model, list_models  # noqa: E402

# Small but real configurations: transfer models keep their torchvision layout and skip the upsampling.
TINY: dict[str, dict] = {
    "baseline_cnn": {"widths": [4, 8, 8], "hidden": 16},
    "baseline_cnn_wide": {"widths": [4, 8, 8], "hidden": 16},
    "face_resnet_s": {"widths": [4, 8], "depths": [1, 1], "stem": 4},
    "face_resnet_m": {"widths": [4, 8], "depths": [1, 1], "stem": 4},
    "mlp": {"hidden": [32, 16]},
    "resnet18": {"resize": 48},
    "resnet34": {"resize": 48},
    "mobilenet_v3_small": {"resize": 48},
    "mobilenet_v3_large": {"resize": 48},
    "efficientnet_b0": {"resize": 48},
    "ensemble": {"members": [{"arch": "baseline_cnn", "arch_kwargs": {"widths": [4, 8, 8], "hidden": 16}, "temperature": 1.5},
                             {"arch": "mlp", "arch_kwargs": {"hidden": [16]}, "temperature": 1.0}]},
}


def test_every_registered_model_has_a_test_configuration():
    assert set(list_models()) <= set(TINY), f"add a tiny configuration for {set(list_models()) - set(TINY)}"
    assert {"mlp", "resnet18", "resnet34", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "ensemble"} <= set(list_models())


@pytest.mark.parametrize("name", list_models())
def test_model_classifies_a_batch_and_exposes_features(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=7, **TINY[name]).eval()
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        assert logits.shape == (2, 7) and torch.isfinite(logits).all()
        assert features.shape == (2, model.num_features)
        torch.testing.assert_close(model.forward_head(features), logits)


@pytest.mark.parametrize("name", list_models())
def test_model_round_trips_safetensors_and_onnx(name, tmp_path):
    import onnxruntime as ort

    torch.manual_seed(0)
    model = create_model(name, num_classes=7, **TINY[name]).eval()
    info = ModelInfo(arch=name, labels=EMOTIONS, arch_kwargs=TINY[name])
    save_weights(model, info, tmp_path / "m.safetensors")
    loaded, loaded_info = load_model(tmp_path / "m.safetensors")
    assert loaded_info == info
    x = torch.randn(3, 1, 48, 48)
    with torch.no_grad():
        expected = model(x).numpy()
        np.testing.assert_allclose(loaded(x).numpy(), expected, atol=1e-5)
        expected_features = model.forward_features(x).numpy()
    path = export_onnx(loaded, loaded_info, tmp_path / "m.onnx")
    assert read_onnx_info(path) == info
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": x.numpy()})
    np.testing.assert_allclose(outputs[0], expected, atol=1e-4, rtol=1e-4)
    if len(outputs) > 1:  # the penultimate-features output, where the export provides it
        np.testing.assert_allclose(outputs[1], expected_features, atol=1e-4, rtol=1e-4)


def test_transfer_model_upsamples_inside_the_graph():
    model = create_model("mobilenet_v3_small", num_classes=7).eval()
    seen = []
    model.backbone.register_forward_pre_hook(lambda _module, inputs: seen.append(inputs[0].shape))
    with torch.no_grad():
        model(torch.randn(1, 1, 48, 48))
    assert seen == [(1, 1, 96, 96)]


def test_folded_stem_sees_gray_input_as_imagenet_rgb():
    from emolive.models.preprocess import PreprocessSpec
    from emolive.models.transfer import IMAGENET_MEAN, IMAGENET_STD, fold_stem

    torch.manual_seed(0)
    rgb = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=False)
    gray = torch.rand(2, 1, 40, 40)
    spec = PreprocessSpec()
    ours = (gray - spec.mean) / spec.std
    imagenet = (gray.expand(-1, 3, -1, -1) - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        got, want = fold_stem(rgb, spec)(ours), rgb(imagenet)
    interior = (slice(None), slice(None), slice(2, -2), slice(2, -2))  # away from the zero padding
    torch.testing.assert_close(got[interior], want[interior], atol=1e-5, rtol=1e-5)


def test_imagenet_weights_load_from_a_local_state_dict(tmp_path):
    from torchvision.models import mobilenet_v3_small

    from emolive.models.transfer import load_imagenet_weights

    torch.manual_seed(1)
    donor = mobilenet_v3_small(weights=None)
    torch.save(donor.state_dict(), tmp_path / "mnv3s.pth")
    model = create_model("mobilenet_v3_small", num_classes=7, resize=48)
    head_before = model.head[1].weight.clone()
    load_imagenet_weights(model, tmp_path / "mnv3s.pth")
    backbone = dict(model.backbone.named_parameters())
    torch.testing.assert_close(backbone["0.1.block.0.0.weight"], donor.features[1].block[0][0].weight)
    torch.testing.assert_close(backbone["0.12.0.weight"], donor.features[12][0].weight)
    torch.testing.assert_close(backbone["0.0.0.weight"], (donor.features[0][0].weight * (0.25 / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))).sum(1, keepdim=True))
    torch.testing.assert_close(model.head[1].weight, head_before)  # the new head stays as initialised

    torch.save(create_model("resnet18").state_dict(), tmp_path / "other.pth")
    with pytest.raises(ModelError, match=r"not a torchvision mobilenet_v3_small state dict \(Missing key"):
        load_imagenet_weights(model, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="do not exist"):
        load_imagenet_weights(model, tmp_path / "missing.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ModelError, match="not a loadable"):
        load_imagenet_weights(model, tmp_path / "junk.pth")
    with pytest.raises(ModelError, match="needs a transfer model"):
        load_imagenet_weights(create_model("mlp", **TINY["mlp"]), tmp_path / "mnv3s.pth")
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(ModelError, match="not a loadable"):
        load_imagenet_weights(model, tmp_path / "empty.pth")
    torch.save({1: torch.zeros(3)}, tmp_path / "int_keys.pth")
    with pytest.raises(ModelError, match="not a torchvision mobilenet_v3_small state dict"):
        load_imagenet_weights(model, tmp_path / "int_keys.pth")


class _Planted:
    """What a hostile file in torch's download cache could hold: unpickling it runs code."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_cached_imagenet_weights_load_without_unpickling_code(tmp_path, monkeypatch):
    from torchvision.models import get_model_weights

    from emolive.models.transfer import imagenet_state_dict

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    url = get_model_weights("resnet18").DEFAULT.url
    cached = tmp_path / "torch" / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.save({"conv1.weight": _Planted(tmp_path / "PWNED")}, cached)  # what a planted cache file could hold
    with pytest.raises(ModelError, match="cached ImageNet weights for resnet18 are unusable"):
        imagenet_state_dict("resnet18")
    assert not (tmp_path / "PWNED").exists()


def test_a_transfer_model_needs_a_whole_number_resize():
    with pytest.raises(ValueError, match="whole number of pixels"):
        create_model("mobilenet_v3_small", resize=96.0)
