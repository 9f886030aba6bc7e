"""The one command-line tool, ``emo-live``, with modes.

    emo-live --camera 0                         live window (the default mode)
    emo-live annotate [INPUT] -o OUTPUT         annotate a video, image or folder (no INPUT: sample photo)
    emo-live eval --data PATH --split PrivateTest [--report DIR [--run RUN_DIR]]
    emo-live compare RUN_OR_MODEL... --data PATH -o TABLE.md
    emo-live audit --data PATH [-o DIR] [--suspects FILE]
    emo-live train --data PATH ...              (data-parallel: torchrun --nproc-per-node N -m emolive.realtime.cli train ...)
    emo-live search --data PATH --trials N --epochs-per-trial E -o DIR   Optuna hyperparameter search (resumable)
    emo-live export WEIGHTS.safetensors -o MODEL.onnx
    emo-live export SRC --format onnx|onnx-int8|engine|triton [--precision fp32|fp16|int8] [--data FER2013] -o OUT
    emo-live train-temporal --data PATH -o DIR [--install]   LSTM head for --smooth lstm
    emo-live eval-temporal --data PATH [--media DIR] [--json FILE]
    emo-live ensemble A.safetensors B.safetensors ... -o ENSEMBLE.onnx
    emo-live benchmark [--source VIDEO | --camera N | --synthetic] [--json FILE]
    emo-live report RECORDS.jsonl -o REPORT_DIR
    emo-live info [--model NAME|PATH]

User errors print one line ``emo-live: error: ...`` and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from emolive.models.errors import EmoliveError, require
from emolive.models.info import TTA_MODES

from .detectors import DETECTORS
from .engines import ENGINES
from .schedule import DEFAULT_SCHEDULE, DetectSchedule
from .smoothing import DEFAULT_DWELL, DEFAULT_HYSTERESIS, DEFAULT_SMOOTH, SMOOTHERS

COMMANDS = ("live", "annotate", "eval", "train", "search", "export", "info", "benchmark", "report", "ensemble", "train-temporal", "eval-temporal",
            "compare", "audit")


def _add_recognizer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="shipped model name or path to an .onnx file (default: %(default)s)")
    parser.add_argument("--detector", choices=DETECTORS, default="auto",
                        help="face detector; auto = MediaPipe BlazeFace, or Haar if MediaPipe cannot load (default: %(default)s)")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="inference engine (default: %(default)s)")
    parser.add_argument("--threads", type=thread_count, default=0, help="inference threads; 0 = automatic")
    parser.add_argument("--blur", action="store_true", help="blur every face in the annotated output (privacy)")
    parser.add_argument("--smooth", choices=SMOOTHERS, default=DEFAULT_SMOOTH,
                        help="temporal smoothing of each tracked face's probabilities; auto = the model's LSTM head if it has one, "
                             "else ema (default: %(default)s)")
    parser.add_argument("--smooth-alpha", type=float, help="EMA weight of the past, in [0, 1) (default: 0.7; EMA smoothing only)")
    parser.add_argument("--hysteresis", type=float, default=DEFAULT_HYSTERESIS, metavar="MARGIN",
                        help="label hysteresis: a face's displayed label changes only when another label's smoothed probability "
                             "beats it by more than MARGIN (for --dwell frames); 0 = off (default: %(default)s)")
    parser.add_argument("--dwell", type=int, default=DEFAULT_DWELL, metavar="FRAMES",
                        help="frames in a row a challenger must lead (by the --hysteresis margin) before the displayed label changes (default: %(default)s)")
    parser.add_argument("--detect-every", default=str(DEFAULT_SCHEDULE), metavar="N[:M]",
                        help="run the face detector every N video frames and follow faces in between; N:M stretches the gap up to M "
                             "frames while detections only confirm the followed faces; 1 = every frame (default: %(default)s)")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")


class _Parser(argparse.ArgumentParser):
    """argparse with the CLI's one-line error format."""

    def error(self, message: str):
        self.exit(2, f"emo-live: error: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="emo-live", description="Real-time facial emotion recognition.",
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n")[1])
    sub = parser.add_subparsers(dest="command", metavar="MODE")

    live = sub.add_parser("live", help="recognize emotions live in a window (default mode)")
    group = live.add_mutually_exclusive_group()
    group.add_argument("--camera", type=int, default=0, help="camera index (default: %(default)s)")
    group.add_argument("--source", help="a video file or stream URL to play instead of a camera")
    live.add_argument("--jsonl", type=Path, help="also write per-frame records here")
    live.add_argument("--record", type=Path, help="also write the annotated video here")
    live.add_argument("--snapshot-dir", type=Path, default=Path("."), help="where the s key saves snapshots (default: here)")
    _add_recognizer_args(live)
    _add_common(live)

    annotate = sub.add_parser("annotate", help="annotate a video, an image or a folder of images")
    annotate.add_argument("input", nargs="?", help="video, image or folder (omit to annotate the built-in sample photo)")
    annotate.add_argument("-o", "--output", required=True, type=Path, help="annotated video/image file, or a folder")
    annotate.add_argument("--jsonl", type=Path, help="per-frame records (default: next to the output, .jsonl)")
    annotate.add_argument("--quiet", action="store_true", help="no progress bar")
    annotate.add_argument("--report", type=Path, help="summary, plots and HTML report folder (default for videos and folders: next to the output)")
    annotate.add_argument("--no-report", action="store_true", help="do not write a report")
    annotate.add_argument("--thumbnails", action="store_true", help="put one face thumbnail per id in the HTML report")
    _add_recognizer_args(annotate)
    _add_common(annotate)

    evaluate = sub.add_parser("eval", help="accuracy, macro-F1, per-class metrics and confusion matrix on FER2013")
    evaluate.add_argument("--data", required=True, help="fer2013.csv(.gz), the image tarball, or a folder with train/ and test/")
    evaluate.add_argument("--split", choices=("PublicTest", "PrivateTest", "Training"), default="PrivateTest")
    evaluate.add_argument("--model", default="default", help="shipped model name or .onnx path (default: %(default)s)")
    evaluate.add_argument("--engine", choices=ENGINES, default="auto")
    evaluate.add_argument("--threads", type=thread_count, default=0)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    evaluate.add_argument("--labels", choices=("auto", "fer2013", "ferplus-majority"), default="auto",
                          help="ground truth: FER2013 labels, or FER+ majority labels (rows without one dropped); auto: the model's label set")
    evaluate.add_argument("--ferplus", help="FER+ fer2013new.csv (default: found beside --data)")
    evaluate.add_argument("--report", type=Path, help="also write report.md, metrics.json and plots (confusion, ROC, valence, reliability, training curves) here; "
                          "--model may then also be a .safetensors file or a training run folder")
    evaluate.add_argument("--run", type=Path, help="training run folder (history.json) for the training curves (default: the model's folder, if it is one)")
    _add_common(evaluate)

    compare = sub.add_parser("compare", help="one markdown table row per model: size, MFLOPs, CPU ms/face, PublicTest/PrivateTest accuracy, training time")
    compare.add_argument("models", nargs="+", help="run folders, .onnx / .safetensors files or shipped model names")
    compare.add_argument("--data", required=True, help="FER2013 for the accuracies")
    compare.add_argument("-o", "--output", type=Path, help="markdown file to write (the table is also printed)")
    compare.add_argument("--threads", type=thread_count, default=0, help="ONNX Runtime threads; 0 = automatic")
    compare.add_argument("--ferplus", type=Path, help="FER+ fer2013new.csv for FER+ models (default: found beside --data)")
    _add_common(compare)

    audit = sub.add_parser("audit", help="FER2013 data audit: class balance, exact/near duplicates, conflicting labels, split leakage, blank images")
    audit.add_argument("--data", required=True, help="fer2013.csv(.gz), the image tarball, or a folder with train/ and test/")
    audit.add_argument("-o", "--output", type=Path, default=Path("audit"), help="folder for audit.md, audit.json, class_balance.png (default: %(default)s)")
    audit.add_argument("--suspects", type=Path, help="also write the suspects CSV here (for emo-live train --exclude)")
    audit.add_argument("--max-hamming", type=int, default=6, help="near-duplicate DCT-hash distance in bits (default: %(default)s)")
    audit.add_argument("--min-correlation", type=float, default=0.85, help="pixel correlation a near-duplicate needs (default: %(default)s)")
    audit.add_argument("--blank-std", type=float, default=5.0, help="pixel standard deviation below which an image is near-blank (default: %(default)s)")
    _add_common(audit)

    train = sub.add_parser("train", help="train a model on FER2013 (needs emolive[train])", add_help=False)
    train.add_argument("-h", "--help", action="store_true")
    _add_common(train)

    from emolive.training.search import add_search_args  # no heavy imports: optuna and torch load when it runs

    search = sub.add_parser("search", help="search learning rate, batch size, weight decay, augmentation with Optuna (needs emolive[train])",
                            description="Optuna search over emo-live train; options it does not know are passed to every trial's training.")
    add_search_args(search)
    _add_common(search)

    for mode, text in (("train-temporal", "train the CNN's LSTM temporal head for --smooth lstm (needs emolive[train])"),
                       ("eval-temporal", "compare smoothing none / EMA / LSTM: accuracy, latency, flicker, cost")):
        temporal = sub.add_parser(mode, help=text, add_help=False)
        temporal.add_argument("-h", "--help", action="store_true")
        _add_common(temporal)

    export = sub.add_parser("export", help="export a checkpoint or model to ONNX, INT8 ONNX, a TensorRT engine or a Triton repository")
    export.add_argument("weights", help="a .safetensors checkpoint (needs emolive[train]), an .onnx model or a shipped model name")
    export.add_argument("-o", "--output", required=True, type=Path, help="the file to write (a folder for --format triton)")
    export.add_argument("--format", dest="export_format", choices=("onnx", "onnx-int8", "engine", "triton"), default="onnx",
                        help="onnx: FP32; onnx-int8: static INT8 (QDQ); engine: TensorRT plan (GPU); triton: model repository (default: %(default)s)")
    export.add_argument("--precision", choices=("fp32", "fp16", "int8"),
                        help="engine: fp16 (default), fp32 or int8; triton: fp32 (default) or fp16/int8 to add a TensorRT model")
    export.add_argument("--max-batch", type=int, default=64, help="largest batch for engines and Triton (default: %(default)s)")
    export.add_argument("--data", help="FER2013 (csv, image tarball or folder) for INT8 calibration")
    export.add_argument("--calibration-size", type=int, default=1000, help="Training faces for INT8 calibration (default: %(default)s)")
    export.add_argument("--target", choices=("cpu", "tensorrt"), default="cpu",
                        help="onnx-int8 flavour: cpu (ONNX Runtime: uint8 activations, 7-bit weights, which CPUs without VNNI sum without overflow) or tensorrt (symmetric int8) (default: %(default)s)")
    export.add_argument("--name", help="Triton model name (default: the model file's name)")
    export.add_argument("--weights-fp16", action="store_true",
                        help="--format onnx: store the weights as float16 (half the file; inference still computes in float32)")
    export.add_argument("--tta", choices=TTA_MODES,
                        help="the test-time views to build into the graph, none (fastest), hflip or hflip_zoom, rebuilt from the "
                             ".safetensors weights behind WEIGHTS (default: the views WEIGHTS has)")
    _add_common(export)

    ensemble = sub.add_parser("ensemble", help="average several trained models' probabilities in one ONNX graph (needs emolive[train])")
    ensemble.add_argument("members", nargs="+", type=Path, help="two or more .safetensors files with the same labels and preprocessing")
    ensemble.add_argument("-o", "--output", required=True, type=Path, help="the .onnx file to write")
    ensemble.add_argument("--weights", type=Path, help="also write the ensemble's .safetensors here (rebuilds it for re-export)")
    ensemble.add_argument("--tta", choices=TTA_MODES, default="none",
                          help="test-time augmentation around the whole ensemble: the mirror image (hflip), plus a zoomed-in view and its mirror (hflip_zoom)")
    ensemble.add_argument("--weights-fp16", action="store_true",
                          help="store the weights as float16 in both files (half the size; inference still computes in float32)")
    _add_common(ensemble)

    bench = sub.add_parser("benchmark", help="FPS, latency and per-stage time per inference engine")
    where = bench.add_mutually_exclusive_group()
    where.add_argument("--source", help="a video file (default: synthetic frames with 3 faces)")
    where.add_argument("--camera", type=int, help="a camera index")
    where.add_argument("--synthetic", action="store_true", help="synthetic frames with 3 faces (the default)")
    bench.add_argument("--engines", default="all", help="all, or a comma-separated list of engines")
    bench.add_argument("--frames", type=int, default=300, help="frames to run (default: %(default)s)")
    bench.add_argument("--json", type=Path, help="also write the results here as JSON")
    bench.add_argument("--model", default="default")
    bench.add_argument("--detector", choices=DETECTORS, default="auto")
    bench.add_argument("--threads", type=thread_count, default=0)
    bench.add_argument("--repeat", type=int, default=3, help="time each configuration this many times, report the median run (default: %(default)s)")
    bench.add_argument("--detect-every", default=None,
                       help="detection schedules to compare, e.g. 1,3,3:12 (default: the pipeline's default); 1 is the reference for agreement")
    _add_common(bench)

    report = sub.add_parser("report", help="summary, plots and HTML report from a JSONL written by annotate")
    report.add_argument("jsonl", type=Path, help="per-frame records from emo-live annotate")
    report.add_argument("-o", "--output", required=True, type=Path, help="report folder")
    _add_common(report)

    info = sub.add_parser("info", help="print a model's metadata")
    info.add_argument("--model", default="default")
    _add_common(info)
    return parser


def thread_count(text: str) -> int:
    """``--threads``: 0 (automatic) or a positive count."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number (0 = automatic), got '{text}'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (automatic) or a positive count, got {value}")
    return value


def _quiet_opencv() -> None:
    """Keep OpenCV's and FFmpeg's own log lines out of the CLI's output; emo-live reports problems itself."""
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    set_level = getattr(cv2, "setLogLevel", None)
    if set_level is not None:
        set_level(0)  # cv::utils::logging::LOG_LEVEL_SILENT


def _route(argv: list[str]) -> list[str]:
    """``emo-live --camera 0`` (no mode) means ``emo-live live --camera 0``."""
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help")):
        return ["live", *argv]
    return argv


def main(argv: Sequence[str] | None = None) -> int:
    argv = _route(list(sys.argv[1:] if argv is None else argv))
    parser = build_parser()
    if argv[0] in ("train", "search", "train-temporal", "eval-temporal"):
        args, rest = parser.parse_known_args(argv)
    else:
        args, rest = parser.parse_args(argv), []
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING, format="emo-live: %(levelname)s: %(message)s")
    if not args.debug:
        _quiet_opencv()
    try:
        return _dispatch(args, rest)
    except EmoliveError as exc:
        if args.debug:
            raise
        sys.stderr.write(f"emo-live: error: {exc}\n")  # one write: under torchrun the ranks share this pipe
        return exc.exit_code
    except KeyboardInterrupt:
        print("emo-live: interrupted", file=sys.stderr)
        return 130


def _schedules(text: str) -> list[DetectSchedule]:
    """``"1,3,3:12"`` -> detection schedules, or a one-line error naming the option."""
    schedules = [DetectSchedule.parse(part) for part in text.split(",") if part.strip()]
    if not schedules:
        from emolive.models.errors import InputError

        raise InputError(f"--detect-every takes schedules separated by commas (e.g. 1,3,3:12), got '{text}'")
    return schedules


def _recognizer(args: argparse.Namespace):
    from .pipeline import Recognizer

    return Recognizer(args.model, detector=args.detector, engine=args.engine, threads=args.threads, smooth=args.smooth,
                      smooth_alpha=args.smooth_alpha, hysteresis=args.hysteresis, dwell=args.dwell, detect_every=args.detect_every)


def _dispatch(args: argparse.Namespace, rest: list[str]) -> int:
    if args.command == "live":
        from .live import run_live
        from .sources import open_source

        source = open_source(args.source if args.source else args.camera)
        with _recognizer(args) as recognizer:
            stats = run_live(recognizer, source, jsonl=args.jsonl, record=args.record, snapshot_dir=args.snapshot_dir, blur=args.blur)
        print(stats.describe(), file=sys.stderr)
        return 0
    if args.command == "annotate":
        from .annotate import annotate, open_input

        source = open_input(args.input)
        with _recognizer(args) as recognizer:
            report = False if args.no_report else (args.report or True)
            summary = annotate(recognizer, source, args.output, jsonl=args.jsonl, progress=not args.quiet,
                               report=report, thumbnails=args.thumbnails, blur=args.blur)
        print(summary.describe(), file=sys.stderr)
        return 130 if summary.interrupted else 0
    if args.command == "eval" and args.report is not None:
        from emolive.training.eval_report import evaluation_report
        from emolive.training.evaluate import format_report

        metrics = evaluation_report(args.model, args.data, args.split, args.report, run=args.run, engine=args.engine, threads=args.threads,
                                    labels=args.labels, ferplus=args.ferplus, progress=sys.stderr.isatty())
        print(json.dumps({k: v for k, v in metrics.items() if k != "training"}) if args.json else format_report(metrics))
        print(f"report: {args.report / 'report.md'} ({len(metrics['plots'])} plots, metrics.json)", file=sys.stderr)
        return 0
    if args.command == "eval":
        from emolive.training.evaluate import evaluate_model, format_report

        metrics = evaluate_model(args.model, args.data, args.split, engine=args.engine, threads=args.threads, progress=sys.stderr.isatty(),
                                 labels=args.labels, ferplus=args.ferplus)
        print(json.dumps(metrics) if args.json else format_report(metrics))
        return 0
    if args.command == "train":
        require("torch", "train", "training")
        from emolive.training.train import get_args_parser, main as train_main

        train_parser = get_args_parser(argparse.ArgumentParser(prog="emo-live train", description="Train a FER2013 emotion classifier."))
        if args.help:
            train_parser.print_help()
            return 0
        train_args = train_parser.parse_args(rest)
        from emolive.training.distributed import process_group

        with process_group():  # under torchrun: one data-parallel rank; otherwise plain training
            summary = train_main(train_args)
            print(json.dumps({k: v for k, v in summary.items() if k != "args"}, indent=1))
        return 0
    if args.command == "search":
        require("torch", "train", "hyperparameter search")
        from emolive.training.search import format_result, run_search

        print(format_result(run_search(args, rest)))
        return 0
    if args.command in ("train-temporal", "eval-temporal"):
        if args.command == "train-temporal":
            require("torch", "train", "training the temporal head")
            from emolive.training.temporal_train import get_args_parser as temporal_parser, main as temporal_main
        else:
            from emolive.training.temporal_eval import get_args_parser as temporal_parser, main as temporal_main
        mode_parser = temporal_parser(_Parser(prog=f"emo-live {args.command}", description=f"emo-live {args.command}"))
        if args.help:
            mode_parser.print_help()
            return 0
        result = temporal_main(mode_parser.parse_args(rest))
        if args.command == "eval-temporal":
            print(result["table"])
        else:
            print(json.dumps({k: v for k, v in result.items() if k not in ("args", "history")}, indent=1))
        return 0
    if args.command == "export":
        from .deploy import export_model

        result = export_model(args.weights, args.output, fmt=args.export_format, precision=args.precision, max_batch=args.max_batch,
                              data=args.data, calibration_size=args.calibration_size, target=args.target, name=args.name,
                              progress=lambda message: print(f"emo-live: {message}", file=sys.stderr), weights_fp16=args.weights_fp16,
                              tta=args.tta)
        for note in result.notes:
            print(f"emo-live: note: {note}", file=sys.stderr)
        for path in result.paths:
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.is_dir() else path.stat().st_size
            print(f"exported {args.weights} -> {path} ({args.export_format}, {size / 1e6:.1f} MB)", file=sys.stderr)
        return 0
    if args.command == "ensemble":
        require("torch", "train", "ensemble export")
        from dataclasses import replace

        from emolive.models.checkpoint import save_weights
        from emolive.models.ensemble import ensemble_from_files
        from emolive.models.onnx_io import export_onnx

        from emolive.models.errors import OutputError

        from .sinks import prepare_output

        if args.output.suffix.lower() != ".onnx":
            raise OutputError(f"output '{args.output.name}' is not an .onnx file; pass -o NAME.onnx")
        for target, option in ((args.output, "-o"), (args.weights, "--weights")):  # both writable before the export starts
            if target is not None:
                prepare_output(target, option)
        model, info = ensemble_from_files(args.members)
        info = replace(info, test_time_augmentation=args.tta)
        path = export_onnx(model, info, args.output, weights_fp16=args.weights_fp16)
        if args.weights:
            try:
                save_weights(model, info, args.weights, fp16=args.weights_fp16)
            except OutputError:
                path.unlink(missing_ok=True)  # the pair is written whole or not at all
                raise
        print(f"ensemble of {len(args.members)} ({', '.join(m['arch'] for m in info.arch_kwargs['members'])}) -> {path} "
              f"({os.path.getsize(path) / 1e6:.1f} MB)", file=sys.stderr)
        return 0
    if args.command == "benchmark":
        from .benchmark import benchmark, engine_names, format_table

        source = args.source if args.source else args.camera
        if args.json:
            from .sinks import prepare_output

            prepare_output(args.json, "--json")  # a bad --json fails now, not after the benchmark
        rows = benchmark(source, engines=engine_names(args.engines), frames=args.frames, model=args.model,
                         detector=args.detector, threads=args.threads, progress=sys.stderr.isatty(), repeat=args.repeat,
                         detect_every=_schedules(args.detect_every) if args.detect_every else (DEFAULT_SCHEDULE,))
        print(format_table(rows))
        if args.json:
            from emolive.models.errors import OutputError

            try:
                args.json.write_text(json.dumps([row.to_dict() for row in rows], indent=1))
            except OSError as exc:
                raise OutputError(f"cannot write {args.json} ({exc.strerror}); choose another --json") from None
        return 0 if any(row.status == "ok" for row in rows) else 2
    if args.command == "report":
        from emolive.models.errors import InputError

        from .report import write_report
        from .summary import read_jsonl

        if not args.jsonl.is_file():
            raise InputError(f"{args.jsonl} does not exist; pass the .jsonl written by emo-live annotate")
        files = write_report(read_jsonl(args.jsonl), args.output)
        print(f"report: {files.html} ({len(files.plots)} plots, {files.summary_json.name}, {files.summary_csv.name})", file=sys.stderr)
        return 0
    if args.command == "compare":
        from emolive.training.compare import compare_models, format_table, write_table

        if args.output:
            from .sinks import prepare_output

            prepare_output(args.output)  # a bad -o fails now, not after minutes of measuring
        rows = compare_models(args.models, args.data, threads=args.threads, progress=sys.stderr.isatty(), ferplus=args.ferplus)
        print(format_table(rows), end="")
        if args.output:
            write_table(rows, args.output)
        return 0
    if args.command == "audit":
        from emolive.training.audit import AuditSettings, audit, check_outputs, format_summary, write_audit
        from emolive.training.data import find_source

        settings = AuditSettings(blank_std=args.blank_std, max_hamming=args.max_hamming, min_correlation=args.min_correlation)
        find_source(Path(args.data))
        check_outputs(args.output, args.suspects)  # with the data found, unusable output paths fail before the audit runs
        result = audit(args.data, settings)
        files = write_audit(result, args.output, args.suspects)
        print(format_summary(result))
        print(f"audit: {files['md']}, {files['json'].name}, {files['png'].name}" + (f"; suspects: {files['suspects']}" if "suspects" in files else ""), file=sys.stderr)
        return 0
    if args.command == "info":
        from emolive.models.onnx_io import read_onnx_info
        from emolive.models.shipped import resolve_model_path

        path = resolve_model_path(args.model)
        print(json.dumps({"path": str(path), **json.loads(read_onnx_info(path).to_json())}, indent=1))
        return 0
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
