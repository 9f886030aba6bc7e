"""``emo-live export`` formats: onnx, onnx-int8, engine (GPU only) and a Triton model repository."""

import re

import numpy as np
import pytest

from emolive.realtime.cli import main
from emolive.realtime.tensorrt_engine import tensorrt_status
from conftest import learnable_fer_csv  # noqa: E402

onnx = pytest.importorskip("onnx")
TRT_OK, _ = tensorrt_status()


def _config_tensors(text, section):
    block = re.search(section + r" \[\n(.*?)\n\]", text, re.S).group(1)
    return [(m.group(1), m.group(2), tuple(int(d) for d in m.group(3).split(",")))
            for m in re.finditer(r'name: "([^"]+)"\s+data_type: (\w+)\s+dims: \[ ([^\]]+) \]', block)]


def test_onnx_from_safetensors_and_from_onnx(tmp_path, tiny_model):
    pytest.importorskip("torch")
    from emolive.models.checkpoint import save_weights
    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.onnx_io import read_onnx_info
    from emolive.models.registry import create_model

    kwargs = {"widths": [4, 8, 8], "hidden": 16}
    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=kwargs)
    save_weights(create_model("baseline_cnn", num_classes=7, **kwargs), info, tmp_path / "w.safetensors")
    assert main(["export", str(tmp_path / "w.safetensors"), "-o", str(tmp_path / "a.onnx")]) == 0
    assert read_onnx_info(tmp_path / "a.onnx") == info
    assert min(o.version for o in onnx.load(str(tmp_path / "a.onnx")).opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert main(["export", str(tiny_model), "--format", "onnx", "-o", str(tmp_path / "b.onnx")]) == 0
    assert (tmp_path / "b.onnx").read_bytes() == tiny_model.read_bytes()


def test_onnx_export_can_store_the_weights_as_float16(tmp_path, capsys):
    pytest.importorskip("torch")
    from emolive.models.checkpoint import save_weights
    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.registry import create_model
    from emolive.realtime.engines import OnnxRuntimeEngine

    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS)
    save_weights(create_model("baseline_cnn", num_classes=7), info, tmp_path / "w.safetensors")
    full, half, copied = tmp_path / "full.onnx", tmp_path / "half.onnx", tmp_path / "copied.onnx"
    assert main(["export", str(tmp_path / "w.safetensors"), "-o", str(full)]) == 0
    assert main(["export", str(tmp_path / "w.safetensors"), "-o", str(half), "--weights-fp16"]) == 0
    assert main(["export", str(full), "-o", str(copied), "--weights-fp16"]) == 0  # from an FP32 ONNX file too
    x = np.random.default_rng(0).random((8, 1, 48, 48), dtype=np.float32)
    with OnnxRuntimeEngine(full) as engine:
        expected = engine.classify(x)
    for path in (half, copied):
        assert path.stat().st_size < 0.6 * full.stat().st_size
        assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in onnx.load(str(path)).graph.initializer)
        with OnnxRuntimeEngine(path) as engine:
            np.testing.assert_allclose(engine.classify(x), expected, atol=2e-3)
    capsys.readouterr()
    assert main(["export", str(full), "--format", "onnx-int8", "-o", str(tmp_path / "q.onnx"), "--weights-fp16"]) == 2
    assert "--weights-fp16 stores an FP32 model's weights as float16 and applies to --format onnx, not onnx-int8" in capsys.readouterr().err
    assert not (tmp_path / "q.onnx").exists()


def test_export_from_a_checkpoint_can_choose_the_test_time_views(tmp_path, tiny_model, capsys):
    torch = pytest.importorskip("torch")
    from emolive.models.checkpoint import save_weights
    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.registry import create_model
    from emolive.realtime.engines import OnnxRuntimeEngine

    torch.manual_seed(0)
    network = create_model("baseline_cnn", num_classes=7).eval()
    save_weights(network, ModelInfo(arch="baseline_cnn", labels=EMOTIONS, test_time_augmentation="hflip_zoom"), tmp_path / "w.safetensors")
    x = np.random.default_rng(0).random((4, 1, 48, 48), dtype=np.float32)
    with torch.no_grad():
        one_view = network(torch.from_numpy(x)).numpy()
    logits = {}
    for tta in ("recorded", "none", "hflip"):
        out = tmp_path / ("w.onnx" if tta == "recorded" else f"{tta}.onnx")
        assert main(["export", str(tmp_path / "w.safetensors"), "-o", str(out), *(["--tta", tta] if tta != "recorded" else [])]) == 0
        with OnnxRuntimeEngine(out) as engine:
            assert engine.info.test_time_augmentation == ("hflip_zoom" if tta == "recorded" else tta)
            logits[tta] = engine.logits(x)
    np.testing.assert_allclose(logits["none"], one_view, rtol=1e-4, atol=1e-5)  # the bare network, no views averaged
    assert not np.allclose(logits["hflip"], logits["none"]) and not np.allclose(logits["recorded"], logits["hflip"])
    assert main(["export", str(tmp_path / "w.onnx"), "-o", str(tmp_path / "from_onnx.onnx"), "--tta", "none"]) == 0
    assert (tmp_path / "from_onnx.onnx").read_bytes() == (tmp_path / "none.onnx").read_bytes()  # rebuilt from w.safetensors beside it
    capsys.readouterr()
    assert main(["export", str(tiny_model), "-o", str(tmp_path / "x.onnx"), "--tta", "none"]) == 2
    assert "has no tiny.safetensors beside it; pass the .safetensors checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.parametrize("where", ["a_file.onnx/sub.onnx", "a_folder.onnx"])
def test_export_to_an_unusable_path_is_one_line_and_leaves_nothing(tmp_path, tiny_model, capsys, where):
    pytest.importorskip("torch")
    from emolive.models.shipped import resolve_model_path

    (tmp_path / "a_file.onnx").write_text("x")
    (tmp_path / "a_folder.onnx").mkdir()
    weights = resolve_model_path("fer2013_baseline_cnn").with_suffix(".safetensors")
    for source in (str(tiny_model), "default", str(weights)):
        assert main(["export", source, "-o", str(tmp_path / where)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("emo-live: error:") and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file.onnx", "a_folder.onnx"] and not any((tmp_path / "a_folder.onnx").iterdir())


def test_export_takes_an_onnx_file_whatever_the_case_of_its_suffix(tmp_path, tiny_model):
    upper = tmp_path / "MODEL.ONNX"
    upper.write_bytes(tiny_model.read_bytes())
    assert main(["export", str(upper), "-o", str(tmp_path / "copy.onnx")]) == 0
    assert (tmp_path / "copy.onnx").read_bytes() == tiny_model.read_bytes()


def test_a_shipped_int8_model_exports_its_fp32_network_where_int8_cannot_go(tmp_path, capsys):
    """--format onnx (FP32) of the INT8 model writes the FP32 model it was quantized from; CPU INT8 copies it as is."""
    from emolive.models.shipped import resolve_model_path

    int8, fp32 = resolve_model_path("fer2013_face_resnet_s_views4_int8"), resolve_model_path("fer2013_face_resnet_s_views4")
    assert main(["export", "fer2013_face_resnet_s_views4_int8", "--format", "onnx", "-o", str(tmp_path / "a.onnx")]) == 0
    assert (tmp_path / "a.onnx").read_bytes() == fp32.read_bytes()
    assert main(["export", "fer2013_face_resnet_s_views4_int8", "--format", "onnx-int8", "--data", "unused.csv", "-o", str(tmp_path / "b.onnx")]) == 0
    assert (tmp_path / "b.onnx").read_bytes() == int8.read_bytes()


def test_triton_repository_matches_the_onnx_model(tmp_path, tiny_model, capsys):
    import onnxruntime as ort

    out = tmp_path / "repo"
    assert main(["export", str(tiny_model), "--format", "triton", "--max-batch", "32", "--name", "emo", "-o", str(out)]) == 0
    model = out / "emo"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["emo", "emo/1", "emo/1/model.onnx", "emo/config.pbtxt", "emo/labels.txt"]
    config = (model / "config.pbtxt").read_text()
    assert 'name: "emo"' in config and 'backend: "onnxruntime"' in config and "max_batch_size: 32" in config
    assert "dynamic_batching {" in config and "preferred_batch_size: [ 8, 16, 32 ]" in config
    session = ort.InferenceSession(str(model / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    expected_in = [(i.name, "TYPE_FP32", tuple(i.shape[1:])) for i in session.get_inputs()]
    expected_out = [(o.name, "TYPE_FP32", tuple(o.shape[1:])) for o in session.get_outputs()]
    assert _config_tensors(config, "input") == expected_in == [("input", "TYPE_FP32", (1, 48, 48))]
    assert _config_tensors(config, "output") == expected_out and expected_out[0] == ("logits", "TYPE_FP32", (7,))
    assert 'label_filename: "labels.txt"' in config
    assert (model / "labels.txt").read_text().split() == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    logits = session.run(["logits"], {"input": np.zeros((5, 1, 48, 48), np.float32)})[0]
    assert logits.shape == (5, 7)


@pytest.mark.skipif(TRT_OK, reason="checks the message shown where TensorRT cannot run")
def test_triton_fp16_without_gpu_writes_the_onnx_model_and_says_so(tmp_path, tiny_model, capsys):
    assert main(["export", str(tiny_model), "--format", "triton", "--precision", "fp16", "-o", str(tmp_path / "repo")]) == 0
    err = capsys.readouterr().err
    assert "TensorRT-backend model 'tiny_trt' not written" in err
    assert (tmp_path / "repo" / "tiny" / "1" / "model.onnx").is_file() and not (tmp_path / "repo" / "tiny_trt").exists()


@pytest.mark.skipif(TRT_OK, reason="checks the message shown where TensorRT cannot run")
def test_engine_without_gpu_is_a_one_line_error(tmp_path, tiny_model, capsys):
    assert main(["export", str(tiny_model), "--format", "engine", "-o", str(tmp_path / "m.plan")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("emo-live: error: a TensorRT engine can only be built on a machine with an NVIDIA GPU") and "\n" not in err
    assert not list(tmp_path.iterdir())


def test_int8_export_needs_data_and_calibrates_with_it(tmp_path, tiny_model, capsys, monkeypatch):
    from emolive.calibration.int8 import read_model_info
    from emolive.realtime.engines import OnnxRuntimeEngine

    assert main(["export", str(tiny_model), "--format", "onnx-int8", "-o", str(tmp_path / "q.onnx")]) == 2
    assert "pass --data" in capsys.readouterr().err and not (tmp_path / "q.onnx").exists()
    assert main(["export", str(tiny_model), "--format", "onnx", "--precision", "fp16", "-o", str(tmp_path / "h.onnx")]) == 2
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=140)
    assert main(["export", str(tiny_model), "--format", "onnx-int8", "--data", str(data), "--calibration-size", "70",
                 "-o", str(tmp_path / "q.onnx")]) == 0
    assert "(kept)" in capsys.readouterr().err
    assert read_model_info(tmp_path / "q.onnx").precision == "int8"
    with OnnxRuntimeEngine(tmp_path / "q.onnx") as engine:
        assert engine.classify(np.zeros((3, 1, 48, 48), np.float32)).shape == (3, 7)
    repo = tmp_path / "repo"
    assert main(["export", str(tmp_path / "q.onnx"), "--format", "triton", "-o", str(repo)]) == 0
    assert "QuantizeLinear" in {n.op_type for n in onnx.load(str(repo / "q" / "1" / "model.onnx")).graph.node}


@pytest.mark.gpu
@pytest.mark.skipif(not TRT_OK, reason="needs an NVIDIA GPU with TensorRT")
def test_engine_and_triton_tensorrt_model_on_gpu(tmp_path, tiny_model):
    assert main(["export", str(tiny_model), "--format", "engine", "--precision", "fp16", "--max-batch", "16", "-o", str(tmp_path / "m.plan")]) == 0
    assert (tmp_path / "m.plan").stat().st_size > 0
    assert main(["export", str(tiny_model), "--format", "triton", "--precision", "fp16", "--max-batch", "16", "-o", str(tmp_path / "repo")]) == 0
    config = (tmp_path / "repo" / "tiny_trt" / "config.pbtxt").read_text()
    assert 'platform: "tensorrt_plan"' in config and "max_batch_size: 16" in config
    assert (tmp_path / "repo" / "tiny_trt" / "1" / "model.plan").stat().st_size > 0
