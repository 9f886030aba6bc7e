"""Static INT8 quantization: stratified calibration, QDQ model with emolive metadata, accuracy kept."""

import json

import numpy as np
import pytest

from emolive.models.errors import DataError, ModelError

onnx = pytest.importorskip("onnx")

from emolive.calibration.int8 import (  # noqa: E402
    CPU_SETTINGS, QUANTIZATION_KEY, TENSORRT_SETTINGS, QuantizationSettings, even_batch_size, quantize_int8,
    read_model_info, stratified_indices,
)
from emolive.realtime.engines import OnnxRuntimeEngine  # noqa: E402
from conftest import int8_weight_range, learnable_fer_csv  # noqa: E402


def _faces(n, seed=0):
    return np.random.default_rng(seed).normal(0, 1, (n, 1, 48, 48)).astype(np.float32)


def test_calibration_sample_is_stratified_by_class():
    labels = np.repeat(np.arange(7), [400, 40, 500, 900, 600, 400, 620])
    picked = stratified_indices(labels, 100, seed=1)
    assert len(picked) == 100 == len(set(picked.tolist()))
    counts = np.bincount(labels[picked], minlength=7)
    expected = np.bincount(labels, minlength=7) / len(labels) * 100
    assert np.all(np.abs(counts - expected) <= 1) and counts.min() >= 1  # the rare class is present
    assert np.array_equal(picked, stratified_indices(labels, 100, seed=1))  # reproducible
    with pytest.raises(DataError, match="larger than"):
        stratified_indices(labels, len(labels) + 1)


def test_even_batches_for_histogram_calibrators():
    assert even_batch_size(1000) == 50 and even_batch_size(37) == 37 and even_batch_size(101) == 1
    assert even_batch_size(999) == 37  # 999 = 27 * 37: the largest divisor up to 50


@pytest.mark.parametrize("settings", [CPU_SETTINGS, TENSORRT_SETTINGS, QuantizationSettings(method="entropy")])
def test_quantized_model_keeps_metadata_and_runs_in_the_engine(tmp_path, tiny_model, settings):
    out = quantize_int8(tiny_model, tmp_path / "tiny.int8.onnx", _faces(37), settings)  # 37: one uneven-free batch
    fp32, int8 = read_model_info(tiny_model), read_model_info(out)
    assert int8.precision == "int8" and fp32.precision == "fp32"
    assert (int8.labels, int8.preprocess, int8.temperature, int8.arch) == (fp32.labels, fp32.preprocess, fp32.temperature, fp32.arch)
    proto = onnx.load(str(out))
    ops = {node.op_type for node in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    note = json.loads({p.key: p.value for p in proto.metadata_props}[QUANTIZATION_KEY])
    assert note["method"] == settings.method and note["calibration_faces"] == 37 and note["per_channel"]
    x = _faces(16, seed=3)
    with OnnxRuntimeEngine(tiny_model) as reference, OnnxRuntimeEngine(out) as quantized:
        assert quantized.info == int8
        expected, got = reference.logits(x), quantized.logits(x)
    spread = expected.max() - expected.min()
    assert np.abs(got - expected).max() < 0.1 * spread  # close to FP32, not merely the right shape


def test_cpu_files_keep_weights_in_seven_bits_and_tensorrt_files_in_eight(tmp_path, tiny_model):
    """ONNX Runtime's U8S8 kernels on x86 CPUs without VNNI (AVX2) add pairs of uint8 x int8 products in 16 bits,
    which full-range weights overflow; weights in [-64, 64] cannot (255 * 64 * 2 < 2**15)."""
    low, high = int8_weight_range(quantize_int8(tiny_model, tmp_path / "cpu.onnx", _faces(20), CPU_SETTINGS))
    assert -64 <= low and high <= 64 and max(-low, high) == 64  # the whole 7-bit range in use
    low, high = int8_weight_range(quantize_int8(tiny_model, tmp_path / "trt.onnx", _faces(20), TENSORRT_SETTINGS))
    assert max(-low, high) == 127  # TensorRT computes in 32 bits: symmetric 8-bit weights


def test_conv_layers_run_as_int8_kernels(tmp_path, tiny_model):
    import onnxruntime as ort

    out = quantize_int8(tiny_model, tmp_path / "q.onnx", _faces(20), CPU_SETTINGS)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(out), options, providers=["CPUExecutionProvider"])
    ops = [node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node]
    assert "Conv" not in ops and ops.count("QLinearConv") == 6  # every conv of the tiny CNN


def test_bad_quantization_inputs_fail_clearly(tmp_path, tiny_model):
    with pytest.raises(DataError, match="calibration faces must be"):
        quantize_int8(tiny_model, tmp_path / "q.onnx", _faces(4)[:, :, :40, :40])
    out = quantize_int8(tiny_model, tmp_path / "q.onnx", _faces(8))
    with pytest.raises(ModelError, match="already int8"):
        quantize_int8(out, tmp_path / "qq.onnx", _faces(8))
    assert not (tmp_path / "qq.onnx").exists()


def test_build_keeps_the_best_method_on_public_test(tmp_path, tiny_model, monkeypatch):
    from emolive.calibration.int8 import build_int8_model

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=140)
    path, candidates = build_int8_model(tiny_model, tmp_path / "best.onnx", data, calibration_size=70, keep_candidates=tmp_path / "all")
    assert [c.method for c in candidates] == ["minmax", "entropy", "percentile"]
    best = max(candidates, key=lambda c: c.public_accuracy)
    info = read_model_info(path)
    assert info.precision == "int8" and info.metrics == {"public_test_accuracy": round(best.public_accuracy, 4)}
    assert all(c.path.is_file() for c in candidates)


@pytest.mark.data
def test_int8_quantized_shipped_network_keeps_its_accuracy(tmp_path, fer_tarball):
    from emolive.calibration.int8 import calibration_set, split_accuracy
    from emolive.models.shipped import resolve_model_path
    from emolive.training.data import load_fer2013

    source = resolve_model_path("fer2013_face_resnet_s")  # the FP32 network behind the INT8 default
    faces = calibration_set(fer_tarball, read_model_info(source).preprocess, size=300)
    out = quantize_int8(source, tmp_path / "face_resnet_s.int8.onnx", faces)
    private = load_fer2013(fer_tarball, "PrivateTest")
    images, labels = private.images[:600], private.labels[:600]
    fp32, int8 = split_accuracy(source, images, labels), split_accuracy(out, images, labels)
    assert int8 >= fp32 - 0.015, (fp32, int8)


def test_a_ferplus_model_is_calibrated_and_compared_on_ferplus_labels(tmp_path, monkeypatch):
    """The INT8 choice and the FP32/INT8 table score a FER+ model as 'emo-live eval' does: on FER+ majority labels."""
    pytest.importorskip("torch")
    from test_ferplus import _ferplus_dataset

    from emolive.calibration.int8 import build_int8_model
    from emolive.calibration.int8_report import compare_models
    from emolive.models.labels import FERPLUS_EMOTIONS
    from emolive.training.evaluate import evaluate_model
    from emolive.training.train import get_args_parser, main as train

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data, _ = _ferplus_dataset(tmp_path)
    lines = data.read_text().splitlines()  # FER2013's own labels made to disagree with the FER+ votes the model learns
    data.write_text("\n".join([lines[0]] + [f"{(int(line.split(',', 1)[0]) + 3) % 7},{line.split(',', 1)[1]}" for line in lines[1:]]) + "\n")
    run = tmp_path / "run"
    train(get_args_parser().parse_args(["--data", str(data), "--labels", "ferplus-majority",
                                        "--epochs", "4", "--batch-size", "32", "--augment-strength", "0", "--ema-decay", "0",
                                        "--schedule", "cosine", "--threads", "1", "-o", str(run)]))
    fp32 = run / "best.onnx"
    assert read_model_info(fp32).labels == FERPLUS_EMOTIONS
    public = evaluate_model(fp32, data, "PublicTest", progress=False)
    assert public["label_set"] == "ferplus-majority" and public["accuracy"] > 0.5  # the stripes are learnt

    path, [candidate] = build_int8_model(fp32, tmp_path / "int8.onnx", data, calibration_size=70, methods=["minmax"])
    assert candidate.public_accuracy == pytest.approx(evaluate_model(path, data, "PublicTest", progress=False)["accuracy"])
    assert candidate.public_accuracy > 0.5
    rows = compare_models({"fp32": fp32, "int8": path}, data, batch=4, rounds=1, calls=1)
    private = evaluate_model(fp32, data, "PrivateTest", progress=False)
    assert rows[0].public_accuracy == pytest.approx(public["accuracy"]) and rows[0].private_accuracy == pytest.approx(private["accuracy"])
    assert rows[1].public_accuracy == pytest.approx(candidate.public_accuracy)


def test_a_model_with_unknown_labels_is_refused_before_calibrating(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from emolive.calibration.int8 import build_int8_model
    from emolive.models.info import ModelInfo
    from emolive.models.onnx_io import export_onnx
    from emolive.models.registry import create_model

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=70)
    kwargs = {"widths": [4, 8, 8], "hidden": 16}
    source = export_onnx(create_model("baseline_cnn", num_classes=3, **kwargs), ModelInfo(arch="baseline_cnn", labels=("a", "b", "c"), arch_kwargs=kwargs),
                         tmp_path / "abc.onnx")
    with pytest.raises(ModelError, match="the model predicts a, b, c"):
        build_int8_model(source, tmp_path / "abc.int8.onnx", data, calibration_size=20, methods=["minmax"])
    assert not (tmp_path / "abc.int8.onnx").exists()


def test_a_model_with_float16_stored_weights_quantizes_like_its_float32_source(tmp_path):
    import torch

    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.onnx_io import export_onnx
    from emolive.models.registry import create_model

    torch.manual_seed(0)
    kwargs = {"widths": [8, 16, 16], "hidden": 32}
    network = create_model("baseline_cnn", num_classes=7, **kwargs)
    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=kwargs)
    compact = export_onnx(network, info, tmp_path / "compact.onnx", weights_fp16=True)
    out = quantize_int8(compact, tmp_path / "compact.int8.onnx", _faces(20), CPU_SETTINGS)
    ops = [node.op_type for node in onnx.load(str(out)).graph.node]
    assert "Cast" not in ops and ops.count("Conv") == 6  # every conv's weight quantized, as from a float32 file
    x = _faces(16, seed=3)
    with OnnxRuntimeEngine(compact) as reference, OnnxRuntimeEngine(out) as quantized:
        expected, got = reference.logits(x), quantized.logits(x)
    assert np.abs(got - expected).max() < 0.1 * (expected.max() - expected.min())
