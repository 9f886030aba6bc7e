"""Engine selection, the PyTorch engine, and TensorRT (GPU tests skip without an NVIDIA GPU + TensorRT)."""

import numpy as np
import pytest

from emolive.models.errors import EngineUnavailableError, ModelError
from emolive.realtime import engines as engines_module
from emolive.realtime.engines import OnnxRuntimeEngine, available_engines, create_engine
from emolive.realtime.tensorrt_engine import EngineKey, check_tensorrt_int8, profile_shapes, resolve_precision, tensorrt_source, tensorrt_status

TRT_OK, TRT_REASON = tensorrt_status()
gpu = pytest.mark.skipif(not TRT_OK, reason=f"TensorRT engine cannot run here: {TRT_REASON}")


@pytest.fixture(scope="module", params=["hflip", "hflip_zoom"])
def tiny_pair(tmp_path_factory, request):
    """A tiny model as .safetensors + .onnx side by side (test-time views, temperature 1.7), as emo-live release writes them."""
    pytest.importorskip("torch")
    import torch

    from emolive.models.checkpoint import save_weights
    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.onnx_io import export_onnx
    from emolive.models.registry import create_model

    torch.manual_seed(1)
    kwargs = {"widths": [4, 8, 8], "hidden": 16}
    model = create_model("baseline_cnn", num_classes=7, **kwargs).eval()
    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=kwargs, temperature=1.7, test_time_augmentation=request.param)
    folder = tmp_path_factory.mktemp("pair")
    save_weights(model, info, folder / "m.safetensors")
    return export_onnx(model, info, folder / "m.onnx")


def _faces(n=6):
    return np.random.default_rng(0).normal(0, 1, (n, 1, 48, 48)).astype(np.float32)


def test_available_engines_say_why_not():
    statuses = {s.name: s for s in available_engines()}
    assert set(statuses) == {"onnxruntime", "tensorrt", "torch"}
    assert statuses["onnxruntime"].available
    assert statuses["tensorrt"].available == TRT_OK and statuses["tensorrt"].reason
    if not TRT_OK:
        assert "GPU" in statuses["tensorrt"].reason or "tensorrt" in statuses["tensorrt"].reason


def test_auto_picks_onnxruntime_without_tensorrt(tiny_model, monkeypatch):
    import emolive.realtime.tensorrt_engine as trt_module

    monkeypatch.setattr(trt_module, "tensorrt_status", lambda: (False, "no NVIDIA GPU is visible"))
    with create_engine("auto", tiny_model) as engine:
        assert isinstance(engine, OnnxRuntimeEngine)
    with pytest.raises(EngineUnavailableError, match="engine 'tensorrt' is not available: no NVIDIA GPU is visible; use --engine onnxruntime"):
        create_engine("tensorrt", tiny_model)


def test_auto_picks_tensorrt_when_present(tiny_model, monkeypatch):
    import emolive.realtime.tensorrt_engine as trt_module

    built = []

    class FakeTensorRT(OnnxRuntimeEngine):
        def __init__(self, path, **kwargs):
            built.append(path)
            super().__init__(path)

    monkeypatch.setattr(trt_module, "tensorrt_status", lambda: (True, "TensorRT 10 on a test GPU"))
    monkeypatch.setattr(trt_module, "TensorRTEngine", FakeTensorRT)
    assert engines_module.auto_engine_name() == "tensorrt"
    create_engine("auto", tiny_model).close()
    assert built == [tiny_model]


def test_onnxruntime_uses_cpu_without_gpu_providers(monkeypatch):
    monkeypatch.setattr(engines_module, "_onnxruntime_gpu_providers", lambda: [])
    assert engines_module.onnxruntime_providers() == ["CPUExecutionProvider"]
    monkeypatch.setattr(engines_module, "_onnxruntime_gpu_providers", lambda: ["CUDAExecutionProvider"])
    assert engines_module.onnxruntime_providers() == ["CUDAExecutionProvider", "CPUExecutionProvider"]


def test_torch_engine_agrees_with_onnxruntime(tiny_pair):
    x = _faces()
    with create_engine("torch", tiny_pair) as torch_engine, OnnxRuntimeEngine(tiny_pair) as ort_engine:
        assert torch_engine.name == "torch" and torch_engine.info == ort_engine.info
        np.testing.assert_allclose(torch_engine.logits(x), ort_engine.logits(x), atol=1e-4)
        np.testing.assert_allclose(torch_engine.classify(x), ort_engine.classify(x), atol=1e-5)  # same temperature
    with create_engine("torch", tiny_pair.with_suffix(".safetensors")) as from_weights:
        assert from_weights.logits(x).shape == (6, 7)


def test_torch_engine_missing_checkpoint_or_torch(tiny_model, monkeypatch):
    pytest.importorskip("torch")
    with pytest.raises(ModelError, match=r"needs the PyTorch weights .*tiny.safetensors.*--engine onnxruntime"):
        create_engine("torch", tiny_model)
    real = engines_module.importlib.util.find_spec
    monkeypatch.setattr(engines_module.importlib.util, "find_spec", lambda name: None if name == "torch" else real(name))
    with pytest.raises(EngineUnavailableError, match="PyTorch is not installed"):
        create_engine("torch", tiny_model)
    assert not {s.name: s for s in available_engines()}["torch"].available


def test_unknown_engine_and_cli_message(tiny_model, tmp_path, sample_bgr):
    import cv2

    from emolive.realtime.cli import main

    with pytest.raises(EngineUnavailableError, match="unknown engine 'vulkan'"):
        create_engine("vulkan", tiny_model)
    if TRT_OK:
        return
    cv2.imwrite(str(tmp_path / "in.png"), sample_bgr)
    assert main(["annotate", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(tiny_model), "--engine", "tensorrt", "--quiet"]) == 2
    assert not (tmp_path / "out.png").exists()


def test_engine_cache_key_covers_everything_it_depends_on(tmp_path):
    base = EngineKey("a" * 64, "10.3.0", "NVIDIA H100", "fp16", 64)
    variants = [EngineKey("b" * 64, "10.3.0", "NVIDIA H100", "fp16", 64), EngineKey("a" * 64, "10.4.0", "NVIDIA H100", "fp16", 64),
                EngineKey("a" * 64, "10.3.0", "NVIDIA L4", "fp16", 64), EngineKey("a" * 64, "10.3.0", "NVIDIA H100", "int8", 64),
                EngineKey("a" * 64, "10.3.0", "NVIDIA H100", "fp16", 32)]
    assert len({base.digest(), *(v.digest() for v in variants)}) == 6
    assert base.path("m", tmp_path).parent == tmp_path and base.path("m", tmp_path) == EngineKey(*base.__dict__.values()).path("m", tmp_path)
    assert profile_shapes(48, 64) == ((1, 1, 48, 48), (8, 1, 48, 48), (64, 1, 48, 48))
    assert profile_shapes(48, 4)[1] == (4, 1, 48, 48)


def test_precision_rules():
    assert resolve_precision(None, "fp32") == "fp16" and resolve_precision("fp32", "fp32") == "fp32"
    assert resolve_precision(None, "int8") == "int8"
    with pytest.raises(ModelError, match="needs an INT8 QDQ model"):
        resolve_precision("int8", "fp32")
    with pytest.raises(ModelError, match="builds only as an int8 engine"):
        resolve_precision("fp16", "int8")
    with pytest.raises(ModelError, match="quantized for ONNX Runtime on CPU"):
        check_tensorrt_int8({"emolive_quantization": '{"activations": "uint8"}'}, "m.onnx")
    check_tensorrt_int8({"emolive_quantization": '{"activations": "int8", "symmetric_activations": true}'}, "m.onnx")


def test_tensorrt_builds_a_shipped_cpu_int8_model_from_its_fp32_source(tiny_model):
    """TensorRT refuses CPU-flavoured (asymmetric) INT8; a shipped INT8 default must still run on a GPU."""
    from emolive.models.shipped import resolve_model_path

    int8, fp32 = resolve_model_path("fer2013_face_resnet_s_views4_int8"), resolve_model_path("fer2013_face_resnet_s_views4")
    assert tensorrt_source(int8, None) == fp32 and tensorrt_source(int8, "fp16") == fp32
    assert tensorrt_source(int8, "int8") == int8  # asked for int8 explicitly: refused later, with the fix named
    assert tensorrt_source(fp32, None) == fp32 and tensorrt_source(tiny_model, None) == tiny_model


# -- GPU: TensorRT -----------------------------------------------------------------------------------

@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_builds_caches_and_agrees_with_onnxruntime(tiny_model, tmp_path, precision):
    from emolive.realtime.tensorrt_engine import TensorRTEngine

    x = _faces(13)
    with TensorRTEngine(tiny_model, precision=precision, max_batch=8, cache_root=tmp_path) as first:
        assert not first.cache_hit and first.plan.parent == tmp_path
        got = first.logits(x)  # 13 faces: two chunks through a 1..8 profile
    with TensorRTEngine(tiny_model, precision=precision, max_batch=8, cache_root=tmp_path) as second:
        assert second.cache_hit and second.plan == first.plan
        np.testing.assert_allclose(second.logits(x), got, atol=1e-5)
        probs, features = second.infer(x)  # the LSTM smoother needs the exported features output too
    with OnnxRuntimeEngine(tiny_model) as reference:
        tolerance = 1e-4 if precision == "fp32" else 2e-2
        np.testing.assert_allclose(got, reference.logits(x), atol=tolerance)
        expected_probs, expected_features = reference.infer(x)
    assert expected_features is not None and features is not None
    np.testing.assert_allclose(features, expected_features, atol=tolerance * 10)
    np.testing.assert_allclose(probs, expected_probs, atol=tolerance)
    assert len(list(tmp_path.glob("*.plan"))) == 1 and not list(tmp_path.glob("*.part"))


@pytest.mark.gpu
@gpu
def test_tensorrt_int8_engine_from_qdq_model(tiny_model, tmp_path):
    from emolive.calibration.int8 import TENSORRT_SETTINGS, quantize_int8
    from emolive.realtime.tensorrt_engine import TensorRTEngine

    faces = _faces(40)
    qdq = quantize_int8(tiny_model, tmp_path / "tiny.int8-trt.onnx", faces, TENSORRT_SETTINGS)
    with TensorRTEngine(qdq, max_batch=16, cache_root=tmp_path) as engine, OnnxRuntimeEngine(tiny_model) as reference:
        assert engine.precision == "int8"
        expected, got = reference.logits(faces[:16]), engine.logits(faces[:16])
    assert np.abs(got - expected).max() < 0.1 * (expected.max() - expected.min())


def test_torch_engine_gives_the_same_features_as_the_onnx_graph():
    """The LSTM smoother reads penultimate features; both CPU engines must hand over the same ones."""
    pytest.importorskip("torch")
    from emolive.models.shipped import resolve_model_path
    from emolive.realtime.engines import create_engine

    batch = np.random.default_rng(1).standard_normal((3, 1, 48, 48)).astype(np.float32)
    fp32 = resolve_model_path("fer2013_face_resnet_s")
    with create_engine("onnxruntime", fp32) as onnx, create_engine("torch", fp32) as torch_engine:
        (p_onnx, f_onnx), (p_torch, f_torch) = onnx.infer(batch), torch_engine.infer(batch)
    assert f_onnx is not None and f_torch is not None and f_torch.shape == f_onnx.shape
    np.testing.assert_allclose(f_torch, f_onnx, atol=1e-3)
    np.testing.assert_allclose(p_torch, p_onnx, atol=1e-4)


def test_torch_engine_runs_the_fp32_network_behind_a_shipped_int8_model():
    """The four-view INT8 model names the default's weights in the manifest: torch runs them with its four views."""
    pytest.importorskip("torch")
    from emolive.models.shipped import resolve_model_path
    from emolive.realtime.engines import create_engine

    batch = np.random.default_rng(2).standard_normal((4, 1, 48, 48)).astype(np.float32)
    int8_path = resolve_model_path("fer2013_face_resnet_s_views4_int8")
    with create_engine("torch", int8_path) as torch_engine, create_engine("onnxruntime", resolve_model_path("fer2013_face_resnet_s_views4")) as fp32:
        assert torch_engine.info.precision == "fp32" and torch_engine.info.test_time_augmentation == "hflip_zoom"
        np.testing.assert_allclose(torch_engine.logits(batch), fp32.logits(batch), atol=1e-3)
