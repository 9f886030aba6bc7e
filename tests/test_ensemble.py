"""``emo-live ensemble``: one ONNX graph whose probabilities are the average of its members'."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emolive.models.checkpoint import load_model, save_weights  # noqa: E402
from emolive.models.info import ModelInfo  # noqa: E402
from emolive.models.labels import EMOTIONS, FERPLUS_EMOTIONS  # noqa: E402
from emolive.models.onnx_io import export_onnx, read_onnx_info  # noqa: E402
from emolive.models.registry import create_model  # noqa: E402
from emolive.realtime.cli import main  # noqa: E402
from emolive.realtime.engines import OnnxRuntimeEngine  # noqa: E402

MEMBERS = [("baseline_cnn", {"widths": [4, 8, 8], "hidden": 16}, 1.7), ("mlp", {"hidden": [32]}, 1.0),
           ("face_resnet_s", {"widths": [4, 8], "depths": [1, 1], "stem": 4}, 0.8)]


def _members(folder, labels=EMOTIONS):
    paths = []
    for i, (arch, kwargs, temperature) in enumerate(MEMBERS):
        torch.manual_seed(i)
        model = create_model(arch, num_classes=len(labels), **kwargs).eval()
        with torch.no_grad():  # spread the logits so members disagree noticeably
            model.head[-1].weight.mul_(20)
        info = ModelInfo(arch=arch, labels=labels, arch_kwargs=kwargs, temperature=temperature, training_data=f"member {i}")
        paths.append(save_weights(model, info, folder / f"m{i}.safetensors"))
    return paths


def test_ensemble_onnx_equals_the_average_of_its_members(tmp_path):
    paths = _members(tmp_path)
    out = tmp_path / "ens.onnx"
    assert main(["ensemble", *map(str, paths), "-o", str(out), "--weights", str(tmp_path / "ens.safetensors")]) == 0
    x = np.random.default_rng(0).normal(size=(4, 1, 48, 48)).astype(np.float32)

    member_probs = []
    for path in paths:  # each member as users would run it alone: its own ONNX file, its own temperature
        model, info = load_model(path)
        with OnnxRuntimeEngine(export_onnx(model, info, path.with_suffix(".onnx"))) as engine:
            member_probs.append(engine.classify(x))
    expected = np.mean(member_probs, axis=0)
    assert np.abs(member_probs[0] - member_probs[1]).max() > 0.05  # the test would notice a wrong mix

    with OnnxRuntimeEngine(out) as engine:
        got = engine.classify(x)
        probs, _ = engine.infer(x)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    np.testing.assert_allclose(probs, expected, atol=1e-5)

    info = read_onnx_info(out)
    assert info.arch == "ensemble" and info.labels == EMOTIONS and info.temperature == 1.0
    assert [(m["arch"], m["arch_kwargs"], m["temperature"]) for m in info.arch_kwargs["members"]] == MEMBERS
    assert "m0.safetensors" in info.training_data

    rebuilt, rebuilt_info = load_model(tmp_path / "ens.safetensors")  # rebuilt from its metadata alone
    assert rebuilt_info == info
    with torch.no_grad():
        np.testing.assert_allclose(torch.softmax(rebuilt(torch.from_numpy(x)), 1).numpy(), expected, atol=1e-5)
    assert rebuilt.num_features == sum(create_model(a, **k).num_features for a, k, _ in MEMBERS)


def test_eight_class_members_make_an_eight_class_ensemble(tmp_path):
    paths = _members(tmp_path, FERPLUS_EMOTIONS)[:2]
    assert main(["ensemble", *map(str, paths), "-o", str(tmp_path / "e.onnx"), "--tta", "hflip"]) == 0
    info = read_onnx_info(tmp_path / "e.onnx")
    assert info.labels == FERPLUS_EMOTIONS and info.test_time_augmentation == "hflip"
    with OnnxRuntimeEngine(tmp_path / "e.onnx") as engine:
        probs = engine.classify(np.zeros((2, 1, 48, 48), np.float32))
    assert probs.shape == (2, 8)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)


def test_ensemble_refuses_mismatched_or_too_few_members(tmp_path, capsys):
    seven = _members(tmp_path / "a")[0]
    eight = _members(tmp_path / "b", FERPLUS_EMOTIONS)[0]
    assert main(["ensemble", str(seven), str(eight), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "same label set" in capsys.readouterr().err
    assert main(["ensemble", str(seven), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "at least 2" in capsys.readouterr().err
    assert main(["ensemble", str(seven), str(tmp_path / "missing.safetensors"), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["ensemble", str(seven), str(seven), "-o", str(tmp_path / "x.txt")]) == 2
    assert "not an .onnx file" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_ensemble_can_store_its_weights_as_float16(tmp_path):
    from safetensors import safe_open

    paths = _members(tmp_path)
    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    assert main(["ensemble", *map(str, paths), "-o", str(full)]) == 0
    assert main(["ensemble", *map(str, paths), "-o", str(half), "--weights", str(tmp_path / "half.safetensors"), "--weights-fp16"]) == 0
    assert half.stat().st_size < full.stat().st_size
    with safe_open(str(tmp_path / "half.safetensors"), framework="pt") as handle:
        assert {handle.get_tensor(k).dtype for k in handle.keys() if handle.get_tensor(k).is_floating_point()} == {torch.float16}
    x = np.random.default_rng(0).normal(size=(4, 1, 48, 48)).astype(np.float32)
    with OnnxRuntimeEngine(full) as a, OnnxRuntimeEngine(half) as b:
        np.testing.assert_allclose(b.classify(x), a.classify(x), atol=5e-3)


def test_ensemble_checks_both_outputs_before_writing_either(tmp_path, capsys):
    seven = _members(tmp_path / "a")[0]
    (tmp_path / "taken").mkdir()
    assert main(["ensemble", str(seven), str(seven), "-o", str(tmp_path / "e.onnx"), "--weights", str(tmp_path / "taken")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err
    assert not (tmp_path / "e.onnx").exists() and not list(tmp_path.glob("*.part"))
    (tmp_path / "d.onnx").mkdir()
    assert main(["ensemble", str(seven), str(seven), "-o", str(tmp_path / "d.onnx")]) == 2
    assert "d.onnx is a folder" in capsys.readouterr().err and not list(tmp_path.glob("*.part"))
