"""Triton Inference Server model repositories for emolive models.

``write_triton_repository`` lays out ``OUT/<name>/config.pbtxt``, ``OUT/<name>/1/model.onnx`` and
``OUT/<name>/labels.txt`` for Triton's onnxruntime backend (and ``OUT/<name>_trt`` with
``1/model.plan`` for the TensorRT backend when a serialized engine is given). Input/output names,
dims and data types are read from the ONNX graph itself, the batch axis becomes ``max_batch_size``,
and requests are merged by dynamic batching.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from emolive.models.errors import ModelError, OutputError

_ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 11: "TYPE_FP64", 16: "TYPE_BF16", 2: "TYPE_UINT8", 3: "TYPE_INT8",
                   6: "TYPE_INT32", 7: "TYPE_INT64", 9: "TYPE_BOOL"}


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as Triton sees it: name, data type and dims without the batch axis."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def onnx_io_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Inputs and outputs of an ONNX model with a leading (dynamic) batch axis, in Triton terms."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    initializers = {init.name for init in graph.initializer}

    def spec(value) -> TensorSpec:
        tensor = value.type.tensor_type
        if tensor.elem_type not in _ONNX_TO_TRITON:
            raise ModelError(f"{path}: tensor '{value.name}' has ONNX type {tensor.elem_type}, which Triton config here does not map")
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
        if not dims or dims[0] not in (-1, 0):
            raise ModelError(f"{path}: tensor '{value.name}' has no dynamic batch axis (shape {dims}); re-export with 'emo-live export'")
        if any(d < 1 for d in dims[1:]):
            raise ModelError(f"{path}: tensor '{value.name}' has dynamic dims {dims[1:]} besides the batch axis")
        return TensorSpec(value.name, _ONNX_TO_TRITON[tensor.elem_type], tuple(dims[1:]))

    inputs = [spec(v) for v in graph.input if v.name not in initializers]
    return inputs, [spec(v) for v in graph.output]


def render_config(name: str, backend: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], *, max_batch: int,
                  labels_output: str | None = None, instance_kind: str | None = None,
                  preferred_batch_sizes: Sequence[int] = (8, 16, 32), max_queue_delay_us: int = 2000) -> str:
    """A ``config.pbtxt`` (protobuf text format of Triton's ModelConfig)."""

    def tensor(t: TensorSpec, label: bool) -> str:
        lines = [f'    name: "{t.name}"', f"    data_type: {t.data_type}", f"    dims: [ {', '.join(str(d) for d in t.dims)} ]"]
        if label:
            lines.append('    label_filename: "labels.txt"')
        return "  {\n" + "\n".join(lines) + "\n  }"

    platform = {"onnxruntime": 'backend: "onnxruntime"', "tensorrt": 'platform: "tensorrt_plan"'}[backend]
    preferred = [b for b in preferred_batch_sizes if b <= max_batch] or [max_batch]
    parts = [f'name: "{name}"', platform, f"max_batch_size: {max_batch}",
             "input [\n" + ",\n".join(tensor(t, False) for t in inputs) + "\n]",
             "output [\n" + ",\n".join(tensor(t, t.name == labels_output) for t in outputs) + "\n]",
             "dynamic_batching {\n" + f"  preferred_batch_size: [ {', '.join(map(str, preferred))} ]\n"
             f"  max_queue_delay_microseconds: {max_queue_delay_us}\n" + "}"]
    if instance_kind:
        parts.append("instance_group [\n  {\n    count: 1\n" + f"    kind: {instance_kind}\n" + "  }\n]")
    return "\n".join(parts) + "\n"


def triton_model_name(text: str) -> str:
    """A Triton-safe model name (letters, digits, ``_``, ``-``)."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")
    if not name:
        raise OutputError(f"'{text}' gives an empty Triton model name; pass --name")
    return name


def write_triton_model(root: Path, name: str, backend: str, model_file: Path, onnx_for_io: Path, labels: Sequence[str], *,
                       max_batch: int, output_name: str = "logits", instance_kind: str | None = None) -> Path:
    """Write ``root/name`` (config, version 1 model, labels) via a temporary folder, then rename into place."""
    inputs, outputs = onnx_io_specs(onnx_for_io)
    if output_name not in {o.name for o in outputs}:
        raise ModelError(f"{onnx_for_io} has no output '{output_name}'; re-export it with 'emo-live export'")
    final = root / name
    tmp = root / f".{name}.part"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        (tmp / "1").mkdir(parents=True)
        shutil.copyfile(model_file, tmp / "1" / ("model.onnx" if backend == "onnxruntime" else "model.plan"))
        (tmp / "labels.txt").write_text("\n".join(labels) + "\n", encoding="utf-8")
        (tmp / "config.pbtxt").write_text(render_config(name, backend, inputs, outputs, max_batch=max_batch,
                                                        labels_output=output_name, instance_kind=instance_kind), encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write the Triton model {final} ({exc.strerror}); choose a writable -o folder") from None
    return final
