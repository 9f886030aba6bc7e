"""ONNX export (needs torch + onnx) and ONNX metadata reading (needs only ONNX Runtime)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ModelError, OutputError
from .info import METADATA_KEY, ModelInfo

if TYPE_CHECKING:
    from torch import nn

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
FEATURES_NAME = "features"
OPSET = 18
FP16_STORAGE_MIN_ELEMENTS = 1024
"""Float weights with at least this many elements are what ``weights_fp16`` stores as float16 (small ones stay float32)."""
_FP16_SUFFIX = "__fp16"  # the stored initializer's name; the Cast's output keeps the original name


def export_onnx(model: nn.Module, info: ModelInfo, path: str | os.PathLike[str], *, opset: int = OPSET, weights_fp16: bool = False) -> Path:
    """Export ``model`` to ONNX with a dynamic batch axis and ``info`` embedded as metadata.

    The graph maps ``input`` (N, 1, S, S) float32, preprocessed by :func:`preprocess_faces`, to
    ``logits`` (N, num_classes) and, for networks with ``forward_features``, a second output
    ``features`` (N, F): the penultimate vector a temporal head consumes.
    ``info.test_time_augmentation`` (``hflip``, ``hflip_zoom``) builds the averaging over views into the graph
    (of the logits and of the features). ``weights_fp16`` stores the large weights as float16 (half the
    file; see :func:`store_weights_fp16`). Written to a temporary name and renamed when complete.
    """
    import onnx
    import torch

    from .networks import LogitsAndFeatures, has_features, with_test_time_views

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the folder of {path} ({exc.strerror}); choose another output path") from None
    size = info.preprocess.size
    model = model.eval().to(memory_format=torch.contiguous_format)
    model = with_test_time_views(model, info.test_time_augmentation).eval()
    output_names = [OUTPUT_NAME]
    if has_features(model):
        model, output_names = LogitsAndFeatures(model).eval(), [OUTPUT_NAME, FEATURES_NAME]
    example = torch.zeros(2, 1, size, size)
    tmp = path.with_name(path.name + ".part")
    program = torch.onnx.export(
        model, (example,), dynamo=True, opset_version=opset,
        input_names=[INPUT_NAME], output_names=output_names,
        dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=4096)},), verbose=False,
    )
    proto = program.model_proto
    if weights_fp16:
        store_weights_fp16(proto)
    set_metadata(proto, info)
    onnx.checker.check_model(proto)
    try:
        onnx.save_model(proto, str(tmp))
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path} ({exc.strerror}); choose another output path") from None
    return path


def store_weights_fp16(proto) -> int:
    """Store the graph's large float32 weights as float16, each followed by a Cast back to float32; returns how many.

    The computation stays float32: ONNX Runtime folds the casts once when it loads the model, so the
    file is about half the size and inference runs at the same speed, with outputs rounded only by the
    weights' float16 storage. INT8 quantization folds the casts too (its pre-processing runs ONNX Runtime's optimizer).
    """
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph, casts = proto.graph, []
    for initializer in list(graph.initializer):
        if initializer.data_type != TensorProto.FLOAT or int(np.prod(initializer.dims)) < FP16_STORAGE_MIN_ELEMENTS:
            continue
        half = numpy_helper.from_array(numpy_helper.to_array(initializer).astype(np.float16), f"{initializer.name}{_FP16_SUFFIX}")
        graph.initializer.remove(initializer)
        graph.initializer.append(half)
        casts.append(helper.make_node("Cast", [half.name], [initializer.name], to=TensorProto.FLOAT, name=f"{initializer.name}{_FP16_SUFFIX}_cast"))
    for cast in reversed(casts):  # first in the graph, so every consumer comes after its weight
        graph.node.insert(0, cast)
    return len(casts)


def set_metadata(proto, info: ModelInfo, extra: dict[str, str] | None = None, variant: str = "") -> None:
    """Replace an ONNX model proto's metadata with ``info`` (plus ``extra`` entries); ``variant`` goes in the doc string."""
    entries = {METADATA_KEY: info.to_json(), "labels": ",".join(info.labels), **(extra or {})}
    del proto.metadata_props[:]
    for key, value in entries.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "emolive"
    proto.doc_string = f"emolive {info.arch}{f' ({variant})' if variant else ''}: facial emotion classifier ({', '.join(info.labels)})"


def read_onnx_info(session_or_path) -> ModelInfo:
    """Read the :class:`ModelInfo` of an ONNX model from an ONNX Runtime session or a path."""
    import onnxruntime as ort

    if isinstance(session_or_path, ort.InferenceSession):
        session, source = session_or_path, "the ONNX model"
    else:
        session, source = open_onnx_session(session_or_path), str(session_or_path)
    meta = session.get_modelmeta().custom_metadata_map
    return ModelInfo.from_json(meta.get(METADATA_KEY), source)


def open_onnx_session(path: str | os.PathLike[str], *, threads: int = 0, providers: list[str] | None = None, spinning: bool = True):
    """Open an ONNX Runtime session, turning missing or broken files into a one-line ModelError.

    ``spinning=False`` lets idle intra-op threads sleep instead of busy-waiting for the next call: slower
    for back-to-back batches, but it leaves the cores to the other threads of a video pipeline.
    """
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist; pass --model with an existing .onnx file")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers or ["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises Fail/InvalidProtobuf/... without a shared base class
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path} is not a loadable ONNX model ({reason}); re-export it with 'emo-live export'") from None
