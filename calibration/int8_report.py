"""FP32 vs INT8 side by side: FER2013 accuracy and CPU ms/face at batch 8, as a markdown table.

    python -m emolive.calibration.int8_report --data PATH [--model default] [--calibration-size 1000] [-o OUT_DIR]

quantizes the model with every calibration method (MinMax, Entropy, Percentile), keeps the best on
PublicTest as ``OUT_DIR/<stem>.int8.onnx`` and prints one row per model. Timing runs the models in
interleaved rounds on the same real faces, so background load hits every row alike.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emolive.models.errors import EmoliveError

from .int8 import CALIBRATION_METHODS, QUANTIZATION_KEY, build_int8_model, preprocess_images, split_accuracy

if TYPE_CHECKING:
    from emolive.training.data import FerSplit


@dataclass(frozen=True)
class PrecisionRow:
    """One model's figures: accuracy on both test splits and median ms/face at ``batch``."""

    name: str
    path: str
    size_mb: float
    public_accuracy: float
    private_accuracy: float
    ms_per_face: float
    batch: int
    speedup: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def interleaved_ms_per_face(models: dict[str, Path], faces: np.ndarray, *, threads: int = 0, rounds: int = 10,
                            calls: int = 20, warmup: int = 10, clock: str = "wall") -> dict[str, float]:
    """Median ms/face of each model on ``faces`` (one batch), models alternating round by round.

    ``clock="wall"`` times wall-clock; ``clock="cpu"`` times the calling thread's CPU time, which other
    processes on a busy machine do not inflate; it needs ``threads=1`` (ORT then runs in this thread).
    """
    from emolive.realtime.engines import OnnxRuntimeEngine

    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock must be 'wall' or 'cpu', got {clock!r}")
    if clock == "cpu" and threads != 1:
        raise ValueError("clock='cpu' measures the calling thread only; use threads=1")
    now = time.thread_time if clock == "cpu" else time.perf_counter
    engines = {name: OnnxRuntimeEngine(path, threads=threads) for name, path in models.items()}
    try:
        for engine in engines.values():
            for _ in range(warmup):
                engine.logits(faces)
        times: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(rounds):
            for name, engine in engines.items():
                for _ in range(calls):
                    tic = now()
                    engine.logits(faces)
                    times[name].append(now() - tic)
    finally:
        for engine in engines.values():
            engine.close()
    return {name: float(np.median(values) * 1000.0 / len(faces)) for name, values in times.items()}


def compare_models(models: dict[str, Path], data: str | os.PathLike[str], *, batch: int = 8, threads: int = 0,
                   rounds: int = 10, calls: int = 20, clock: str = "wall") -> list[PrecisionRow]:
    """Accuracy (PublicTest, PrivateTest) and ms/face at ``batch`` of every model; speedup against the first.

    Each model is scored against the labels it predicts, as ``emo-live eval`` scores it (FER+ majority labels
    for a FER+ model, see :func:`scored_split`). ``threads`` and ``clock`` apply to the timing (see
    :func:`interleaved_ms_per_face`).
    """
    from .int8 import read_model_info, scored_split

    infos = {name: read_model_info(path) for name, path in models.items()}
    truth: dict[tuple[str, ...], dict[str, FerSplit]] = {}
    for info in infos.values():  # once per label set: the FP32 model and its INT8 versions share theirs
        if info.labels not in truth:
            truth[info.labels] = {split: scored_split(info, data, split) for split in ("PublicTest", "PrivateTest")}
    first = next(iter(infos.values()))
    faces = preprocess_images(truth[first.labels]["PrivateTest"].images[:batch], first.preprocess)
    speed = interleaved_ms_per_face(models, faces, threads=threads, rounds=rounds, calls=calls, clock=clock)
    base = next(iter(speed.values()))
    return [PrecisionRow(name=name, path=str(path), size_mb=round(path.stat().st_size / 1e6, 2),
                         public_accuracy=_accuracy(path, truth[infos[name].labels]["PublicTest"]),
                         private_accuracy=_accuracy(path, truth[infos[name].labels]["PrivateTest"]),
                         ms_per_face=speed[name], batch=batch, speedup=base / speed[name])
            for name, path in models.items()]


def _accuracy(model: Path, split: FerSplit) -> float:
    """Top-1 accuracy of ``model`` on ``split``'s images against its labels."""
    return split_accuracy(model, split.images, split.labels)


def format_markdown(rows: Sequence[PrecisionRow]) -> str:
    """The rows as a markdown table; accuracy deltas are in points against the first (FP32) row."""
    base = rows[0]
    lines = [f"| model | size MB | PublicTest acc | PrivateTest acc | Δ PrivateTest (points) | ms/face @ batch {base.batch} | speedup |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        delta = (row.private_accuracy - base.private_accuracy) * 100
        lines.append(f"| {row.name} | {row.size_mb:.2f} | {row.public_accuracy:.4f} | {row.private_accuracy:.4f} | "
                     f"{delta:+.2f} | {row.ms_per_face:.3f} | {row.speedup:.2f}x |")
    return "\n".join(lines)


def _quantization_note(path: Path) -> dict[str, object]:
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return json.loads(meta.get(QUANTIZATION_KEY, "{}"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emolive.calibration.int8_report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="FER2013 (csv, image tarball or folder)")
    parser.add_argument("--model", default="default", help="shipped model name or FP32 .onnx path (default: %(default)s)")
    parser.add_argument("-o", "--output", type=Path, default=Path("int8"), help="folder for the INT8 models (default: %(default)s)")
    parser.add_argument("--calibration-size", type=int, default=1000, help="Training faces for calibration (default: %(default)s)")
    parser.add_argument("--methods", default=",".join(CALIBRATION_METHODS), help="comma-separated calibration methods")
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads for timing; 0 = all cores")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="time wall-clock, or this thread's CPU time (needs --threads 1; robust on a busy machine)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=10, help="interleaved timing rounds (default: %(default)s)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    try:
        from emolive.models.shipped import resolve_model_path

        source = resolve_model_path(args.model)
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        best, candidates = build_int8_model(source, args.output / f"{source.stem}.int8.onnx", args.data,
                                            calibration_size=args.calibration_size, methods=methods, keep_candidates=args.output,
                                            progress=lambda m: print(m, file=sys.stderr))
        models = {"fp32": source, **{f"int8 {c.method}": c.path for c in candidates}}
        rows = compare_models(models, args.data, batch=args.batch, threads=args.threads, rounds=args.rounds, clock=args.clock)
    except EmoliveError as exc:
        print(f"int8_report: error: {exc}", file=sys.stderr)
        return exc.exit_code
    chosen = _quantization_note(best).get("method")
    print(format_markdown(rows))
    print(f"\ntiming: {args.clock} clock, {args.threads or 'all'} ORT thread(s), median over {args.rounds} interleaved rounds")
    print(f"\nkept: {best} (calibration {chosen}, best PublicTest accuracy)")
    if args.json:
        args.json.write_text(json.dumps([row.to_dict() for row in rows], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
