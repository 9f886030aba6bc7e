"""The one command-line tool, ``emo-live``, with modes.

    emo-live --camera 0                         live window (the default mode)
    emo-live annotate [INPUT] -o OUTPUT         annotate a video, image or folder (no INPUT: sample photo)
    emo-live eval --data PATH --split PrivateTest
    emo-live train --data PATH ...
    emo-live export WEIGHTS.safetensors -o MODEL.onnx
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

from .detectors import DETECTORS
from .engines import ENGINES
from .smoothing import SMOOTHERS

COMMANDS = ("live", "annotate", "eval", "train", "export", "info", "benchmark", "report")


def _add_recognizer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="default", help="shipped model name or path to an .onnx file (default: %(default)s)")
    parser.add_argument("--detector", choices=DETECTORS, default="auto",
                        help="face detector; auto = MediaPipe BlazeFace, or Haar if MediaPipe cannot load (default: %(default)s)")
    parser.add_argument("--engine", choices=ENGINES, default="auto", help="inference engine (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0, help="inference threads; 0 = automatic")
    parser.add_argument("--blur", action="store_true", help="blur every face in the annotated output (privacy)")
    parser.add_argument("--smooth", choices=SMOOTHERS, default="none",
                        help="temporal smoothing of each tracked face's probabilities (default: %(default)s)")
    parser.add_argument("--smooth-alpha", type=float, default=0.7, help="EMA weight of the past, in [0, 1) (default: %(default)s)")


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
    evaluate.add_argument("--threads", type=int, default=0)
    evaluate.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    _add_common(evaluate)

    train = sub.add_parser("train", help="train a model on FER2013 (needs emolive[train])", add_help=False)
    train.add_argument("-h", "--help", action="store_true")
    _add_common(train)

    export = sub.add_parser("export", help="export a .safetensors checkpoint to ONNX (needs emolive[train])")
    export.add_argument("weights", type=Path, help="a .safetensors file written by emo-live train")
    export.add_argument("-o", "--output", required=True, type=Path, help="the .onnx file to write")
    _add_common(export)

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
    bench.add_argument("--threads", type=int, default=0)
    _add_common(bench)

    report = sub.add_parser("report", help="summary, plots and HTML report from a JSONL written by annotate")
    report.add_argument("jsonl", type=Path, help="per-frame records from emo-live annotate")
    report.add_argument("-o", "--output", required=True, type=Path, help="report folder")
    _add_common(report)

    info = sub.add_parser("info", help="print a model's metadata")
    info.add_argument("--model", default="default")
    _add_common(info)
    return parser


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
    if argv[0] == "train":
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
        print(f"emo-live: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("emo-live: interrupted", file=sys.stderr)
        return 130


def _recognizer(args: argparse.Namespace):
    from .pipeline import Recognizer

    return Recognizer(args.model, detector=args.detector, engine=args.engine, threads=args.threads,
                      smooth=args.smooth, smooth_alpha=args.smooth_alpha)


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
    if args.command == "eval":
        from emolive.training.evaluate import evaluate_model, format_report

        metrics = evaluate_model(args.model, args.data, args.split, engine=args.engine, threads=args.threads, progress=sys.stderr.isatty())
        print(json.dumps(metrics) if args.json else format_report(metrics))
        return 0
    if args.command == "train":
        require("torch", "train", "training")
        from emolive.training.train import get_args_parser, main as train_main

        train_parser = get_args_parser(argparse.ArgumentParser(prog="emo-live train", description="Train a FER2013 emotion classifier."))
        if args.help:
            train_parser.print_help()
            return 0
        summary = train_main(train_parser.parse_args(rest))
        print(json.dumps({k: v for k, v in summary.items() if k != "args"}, indent=1))
        return 0
    if args.command == "export":
        require("torch", "train", "ONNX export")
        from emolive.models.checkpoint import load_model
        from emolive.models.onnx_io import export_onnx

        model, info = load_model(args.weights)
        path = export_onnx(model, info, args.output)
        print(f"exported {args.weights} -> {path} ({os.path.getsize(path) / 1e6:.1f} MB)", file=sys.stderr)
        return 0
    if args.command == "benchmark":
        from .benchmark import benchmark, engine_names, format_table

        source = args.source if args.source else args.camera
        rows = benchmark(source, engines=engine_names(args.engines), frames=args.frames, model=args.model,
                         detector=args.detector, threads=args.threads, progress=sys.stderr.isatty())
        print(format_table(rows))
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps([row.to_dict() for row in rows], indent=1))
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
    if args.command == "info":
        from emolive.models.onnx_io import read_onnx_info
        from emolive.models.shipped import resolve_model_path

        path = resolve_model_path(args.model)
        print(json.dumps({"path": str(path), **json.loads(read_onnx_info(path).to_json())}, indent=1))
        return 0
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
