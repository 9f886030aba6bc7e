"""Ship a trained model: ``python -m emolive.training.release RUN_DIR --data PATH --name NAME``.

Takes ``RUN_DIR/best.safetensors`` from ``emo-live train``, evaluates the exported ONNX model on
PublicTest and PrivateTest with the same engine and preprocessing as ``emo-live eval``, embeds the
figures in the model's metadata, writes ``NAME.onnx`` + ``NAME.safetensors`` + ``NAME.md`` (the model
card) into ``models/weights/`` and records the ONNX file's sha256 in ``manifest.json``.

``--ensemble A.safetensors B.safetensors ...`` ships the probability average of trained members instead
of one run (see :mod:`emolive.models.ensemble`); its card points at the members' cards for their training.

``--screen`` stops after the PublicTest comparison of the ``--tta`` modes: it prints one accuracy per mode, writes
nothing and leaves PrivateTest untouched, so a candidate that is not shipped is never scored on the test split.
With ``--against MODEL`` it also compares the candidate with MODEL image by image on PublicTest (exact McNemar test),
which tells a real gain from a few images' luck before anything is shipped.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emolive.calibration.temperature import expected_calibration_error, fit_temperature
from emolive.models.checkpoint import load_model, save_weights
from emolive.models.errors import EmoliveError, InputError
from emolive.models.info import TTA_MODES, ModelInfo
from emolive.models.labels import label_set_name
from emolive.models.onnx_io import export_onnx
from emolive.models.shipped import file_sha256, resolve_model_path, weights_dir
from emolive.models.temporal_info import temporal_head_path
from emolive.realtime.benchmark import engine_ms_per_face
from emolive.realtime.engines import OnnxRuntimeEngine, softmax
from emolive.training.data import FerSplit
from emolive.training.evaluate import evaluate_model, ground_truth, predict_split

if TYPE_CHECKING:
    from torch import nn

_TRAIN_RUN_ONLY = {"resume", "no_export", "output", "threads", "margin"}  # how a run was driven, not what it learned
_TRAIN_ALWAYS = {"data", "model", "epochs", "lr"}
PROG = "python -m emolive.training.release"
FP16_NOTE = ("\n- Both files store the weights as float16 (half the size); inference computes in float32, and every figure above "
             "was measured on these files.")


def cpu_name() -> str:
    """The CPU model and core count of this machine, for model cards."""
    import os

    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"


def train_command(args: dict[str, Any]) -> str:
    """The ``emo-live train`` command that reproduces a run: data, model, epochs, learning rate and every
    setting that differs from its default, shell-quoted (``args`` as recorded in the run's summary.json)."""
    from emolive.training.train import get_args_parser

    defaults = vars(get_args_parser().parse_args(["--data", "-"]))
    parts = ["emo-live", "train"]
    for key, value in args.items():
        if key in _TRAIN_RUN_ONLY or value is None or value is False:
            continue
        if key not in _TRAIN_ALWAYS and key in defaults and defaults[key] == value:
            continue
        flag = "--" + key.replace("_", "-")
        parts += [flag] if value is True else [flag, json.dumps(value) if isinstance(value, (dict, list)) else str(value)]
    return shlex.join(parts)


def choose_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float, dict[str, float]]:
    """The NLL-fitted temperature, kept only if it also lowers ECE on the same (PublicTest) split.

    Label smoothing bends a network's confidences in a way one scalar cannot undo: fitting T by NLL can
    then make the reported calibration error worse, and T = 1 is the better choice.
    Returns T and a record: the fitted T, the split's ECE at T = 1 and at the fitted T.
    """
    fitted = fit_temperature(logits, labels)
    record = {"fitted_temperature": round(fitted, 4),
              "public_test_ece_t1": round(expected_calibration_error(softmax(logits), labels), 4),
              "public_test_ece_fitted": round(expected_calibration_error(softmax(logits, fitted), labels), 4)}
    keep = record["public_test_ece_fitted"] < record["public_test_ece_t1"]
    return (fitted if keep else 1.0), record


def tta_candidates(text: str) -> tuple[str, ...]:
    """The test-time augmentation modes ``--tta`` compares: ``auto`` is none and hflip (the two within the fast model's budget)."""
    modes = ("none", "hflip") if text == "auto" else tuple(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    unknown = [m for m in modes if m not in TTA_MODES]
    if unknown or not modes:
        raise argparse.ArgumentTypeError(f"unknown test-time augmentation {', '.join(unknown) or repr(text)}; choose from auto, {', '.join(TTA_MODES)} "
                                         "(several separated by commas)")
    return modes


def read_run(run: Path) -> dict[str, Any]:
    """A finished training run's ``summary.json``, after checking the folder also holds ``best.safetensors``."""
    fix = "pass the --output folder of a finished 'emo-live train' run"
    for name in ("summary.json", "best.safetensors"):
        if not (run / name).is_file():
            raise InputError(f"{run} is not a finished training run: it has no {name}; {fix}")
    try:
        summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{run / 'summary.json'} is unreadable ({exc}); {fix}") from None
    missing = {"args", "wall_seconds", "epochs_run"} - set(summary if isinstance(summary, dict) else ())
    if missing:
        raise InputError(f"{run / 'summary.json'} lacks {', '.join(sorted(missing))}; {fix}")
    return summary


def load_candidate(args: argparse.Namespace) -> tuple[nn.Module, ModelInfo, dict[str, Any] | None]:
    """The model to ship (a run's best checkpoint or an ensemble of members), its info with ``--margin`` applied, and
    the run's summary (None for an ensemble)."""
    if args.ensemble:
        from emolive.models.ensemble import ensemble_from_files

        summary = None
        model, info = ensemble_from_files(args.ensemble)
    else:
        summary = read_run(args.run)
        model, info = load_model(args.run / "best.safetensors")
    if args.margin is not None:
        info = replace(info, preprocess=replace(info.preprocess, margin=args.margin))
    return model, info, summary


def accuracy_by_tta(logits: dict[str, np.ndarray], labels: np.ndarray) -> dict[str, float]:
    """Top-1 accuracy of each test-time augmentation's logits."""
    return {tta: float((values.argmax(1) == labels).mean()) for tta, values in logits.items()}


def public_logits_by_tta(model: nn.Module, info: ModelInfo, public_split: FerSplit, modes: Sequence[str], staging: Path,
                         weights_fp16: bool) -> dict[str, np.ndarray]:
    """PublicTest logits of ``model`` exported with each test-time augmentation in ``modes`` (at T = 1)."""
    logits: dict[str, np.ndarray] = {}
    for tta in modes:
        export_onnx(model, replace(info, temperature=1.0, test_time_augmentation=tta), staging, weights_fp16=weights_fp16)
        with OnnxRuntimeEngine(staging) as engine:
            logits[tta] = predict_split(engine, public_split, logits=True, progress=False)
    return logits


def paired_comparison(ours: np.ndarray, theirs: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Two classifiers' predicted classes on the same images, compared image by image.

    Counts the images only one of them gets right and tests whether that split could be chance: the exact McNemar
    test, a two-sided binomial test on those discordant images (p = 1 when there are none).
    """
    from scipy.stats import binomtest

    ours_right, theirs_right = ours == labels, theirs == labels
    only_ours, only_theirs = int((ours_right & ~theirs_right).sum()), int((theirs_right & ~ours_right).sum())
    p_value = binomtest(only_ours, only_ours + only_theirs).pvalue if only_ours + only_theirs else 1.0
    return {"right_only_here": only_ours, "right_only_there": only_theirs, "mcnemar_p": round(float(p_value), 4)}


def reference_predictions(model: str, info: ModelInfo, split: FerSplit) -> np.ndarray:
    """``--against``: the predicted class of the reference ``model`` (a shipped name or an ONNX path) for each image."""
    with OnnxRuntimeEngine(resolve_model_path(model)) as engine:
        if engine.info.labels != info.labels:
            raise InputError(f"--against {model} predicts {', '.join(engine.info.labels)}, the candidate "
                             f"{', '.join(info.labels)}; compare with a model of the same labels")
        return predict_split(engine, split, progress=False).argmax(1)


def screen(args: argparse.Namespace) -> dict[str, Any]:
    """``--screen``: PublicTest accuracy of the candidate under each ``--tta`` mode, and with ``--against`` its paired
    comparison with that model; nothing written, PrivateTest unread."""
    import tempfile

    model, info, _ = load_candidate(args)
    public_split = ground_truth(info, args.data, "PublicTest")[0]
    theirs = reference_predictions(args.against, info, public_split) if args.against else None
    with tempfile.TemporaryDirectory() as tmp:
        logits = public_logits_by_tta(model, info, public_split, args.tta, Path(tmp) / "screen.onnx", args.weights_fp16)
    accuracy = {tta: round(acc, 4) for tta, acc in accuracy_by_tta(logits, public_split.labels).items()}
    result: dict[str, Any] = {"public_test_accuracy_by_tta": accuracy}
    if theirs is not None:
        their_accuracy = float((theirs == public_split.labels).mean())
        paired = {tta: paired_comparison(values.argmax(1), theirs, public_split.labels) for tta, values in logits.items()}
        result["against"] = {"model": args.against, "public_test_accuracy": round(their_accuracy, 4), "paired": paired}
    for tta, acc in accuracy.items():
        line = f"PublicTest {tta}: {acc:.4f}"
        if theirs is not None:
            pair = result["against"]["paired"][tta]
            line += (f"  vs {args.against} {their_accuracy:.4f}: right only here {pair['right_only_here']}, "
                     f"only there {pair['right_only_there']}, McNemar p = {pair['mcnemar_p']:.3f}")
        print(line)
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, nargs="?", help="training run folder (best.safetensors, summary.json, history.json)")
    parser.add_argument("--ensemble", type=Path, nargs="+", metavar="SAFETENSORS",
                        help="ship the ensemble of these trained members instead of a run folder")
    parser.add_argument("--data", required=True, help="FER2013 data for the PublicTest/PrivateTest figures")
    parser.add_argument("--name", help="file stem of the shipped model (required unless --screen)")
    parser.add_argument("--alias", action="append", default=[], help="also ship under this name (e.g. default)")
    parser.add_argument("--dest", type=Path, default=None, help="weights folder (default: the package's models/weights)")
    parser.add_argument("--tta", type=tta_candidates, default="auto",
                        help="test-time augmentation: one of none, hflip, hflip_zoom, or several separated by commas to keep the "
                             "best on PublicTest (ties go to the cheaper); auto = none,hflip (default: %(default)s)")
    parser.add_argument("--weights-fp16", action="store_true",
                        help="store the weights as float16 in both files (half the size; inference still computes in float32)")
    parser.add_argument("--margin", type=float, default=None,
                        help="detector-box crop margin to record (FER2013 images are whole crops, so training does not use it)")
    parser.add_argument("--screen", action="store_true",
                        help="only print PublicTest accuracy for each --tta mode: write nothing, do not evaluate PrivateTest")
    parser.add_argument("--against", metavar="MODEL",
                        help="with --screen: also compare each mode with MODEL (a shipped name such as accurate, or an ONNX "
                             "file) image by image on PublicTest, with the exact McNemar test")
    args = parser.parse_args(argv)

    if (args.run is None) == (args.ensemble is None):
        parser.error("give a training run folder or --ensemble MEMBER.safetensors ..., not both")
    if args.name is None and not args.screen:
        parser.error("--name is required to ship a model (or pass --screen to compare on PublicTest only)")
    if args.against and not args.screen:
        parser.error("--against compares candidates on PublicTest only; add --screen")
    if args.screen:
        return screen(args)
    dest = args.dest or weights_dir()
    model, info, summary = load_candidate(args)
    staging = dest / f".{args.name}.staging.onnx"
    public_split, private_split = ground_truth(info, args.data, "PublicTest")[0], ground_truth(info, args.data, "PrivateTest")[0]

    # Model selection on PublicTest only: which of the --tta modes (argparse has parsed even the default into a tuple).
    public_logits = public_logits_by_tta(model, info, public_split, args.tta, staging, args.weights_fp16)
    public_by_tta = accuracy_by_tta(public_logits, public_split.labels)
    chosen = max(public_by_tta, key=lambda tta: (public_by_tta[tta], -TTA_MODES.index(tta)))
    temperature, calibration = choose_temperature(public_logits[chosen], public_split.labels)

    # The chosen final model, evaluated once on PrivateTest.
    info = replace(info, temperature=round(temperature, 4), test_time_augmentation=chosen)
    export_onnx(model, replace(info, temperature=1.0), staging, weights_fp16=args.weights_fp16)
    with OnnxRuntimeEngine(staging) as engine:
        private_logits = predict_split(engine, private_split, logits=True, progress=False)
    ece_before = expected_calibration_error(softmax(private_logits), private_split.labels)
    export_onnx(model, info, staging, weights_fp16=args.weights_fp16)
    public = evaluate_model(staging, args.data, "PublicTest", progress=False)
    private = evaluate_model(staging, args.data, "PrivateTest", progress=False)
    staging.unlink()
    metrics = {"public_test_accuracy": round(public["accuracy"], 4), "private_test_accuracy": round(private["accuracy"], 4),
               "private_test_macro_f1": round(private["macro_f1"], 4), "private_test_ece": round(private["ece"], 4),
               "private_test_ece_uncalibrated": round(ece_before, 4), "epoch": int(info.metrics.get("epoch", 0)),
               **calibration,
               **{f"public_test_accuracy_tta_{tta}": round(acc, 4) for tta, acc in public_by_tta.items()}}
    info = replace(info, metrics=metrics)
    onnx_path = export_onnx(model, info, dest / f"{args.name}.onnx", weights_fp16=args.weights_fp16)
    save_weights(model, info, dest / f"{args.name}.safetensors", fp16=args.weights_fp16)
    with OnnxRuntimeEngine(onnx_path) as engine:
        ms = engine_ms_per_face(engine)
    sha = file_sha256(onnx_path)

    manifest_path = dest / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"models": {}, "aliases": {}}
    manifest["models"][args.name] = {"onnx": onnx_path.name, "safetensors": f"{args.name}.safetensors", "card": f"{args.name}.md", "sha256": sha,
                                     "safetensors_sha256": file_sha256(dest / f"{args.name}.safetensors")}
    for alias in args.alias:
        manifest["aliases"][alias] = args.name
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    if temporal_head_path(onnx_path).is_file():  # its features changed: the old temporal head no longer fits
        print(f"note: {temporal_head_path(onnx_path).name} belongs to the previous {onnx_path.name}; retrain it with "
              f"'emo-live train-temporal --data PATH --model {args.name} -o RUN_DIR --install'")

    params = sum(p.numel() for p in model.parameters())
    card = _card(args.name, info, summary, public, private, metrics, ms, params, sha, args)
    (dest / f"{args.name}.md").write_text(card, encoding="utf-8")
    print(card)
    return {"metrics": metrics, "ms_per_face": ms, "sha256": sha}


def _card(name: str, info, summary: dict[str, Any] | None, public: dict[str, Any], private: dict[str, Any], metrics: dict[str, float], ms: float,
          params: int, sha: str, args: argparse.Namespace) -> str:
    rows = "\n".join(f"| {label} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
                     for label, v in private["per_class"].items())
    source = f"--ensemble {' '.join(p.name for p in args.ensemble)}" if args.ensemble else "RUN_DIR"
    return f"""# Model card: {name}

Facial emotion classifier ({', '.join(info.labels)}) for emolive, architecture `{info.arch}`
({params:,} parameters), input {info.preprocess.size}x{info.preprocess.size} grayscale face crops
(margin {info.preprocess.margin} around the detector box, normalized with mean {info.preprocess.mean},
std {info.preprocess.std}; all recorded in the model's metadata and applied by `preprocess_faces`).

## Figures ({'FER+ majority labels of FER2013' if label_set_name(info.labels) == 'ferplus' else 'FER2013'}, this exact file)
| split | images | accuracy | macro-F1 |
|---|---|---|---|
| PublicTest (model selection) | {public['n']} | {metrics['public_test_accuracy']:.4f} | |
| PrivateTest (reported once) | {private['n']} | {metrics['private_test_accuracy']:.4f} | {metrics['private_test_macro_f1']:.4f} |

PrivateTest per class:

| class | precision | recall | F1 | support |
|---|---|---|---|---|
{rows}

Test-time augmentation: {info.test_time_augmentation} (chosen on PublicTest: {', '.join(f"{k.removeprefix('public_test_accuracy_tta_')} {v:.4f}" for k, v in metrics.items() if k.startswith('public_test_accuracy_tta_'))}).

{_calibration_text(info.temperature, metrics)}

CPU inference: {ms:.3f} ms per face at batch 8 (ONNX Runtime, {cpu_name()}, median of 200 runs).

Reproduce the figures: `emo-live eval --data PATH/TO/fer2013 --split PrivateTest --model {name}`

## Training
{_training_text(info, summary, metrics)}
- Released with: `python -m emolive.training.release {source} --data PATH --name {name}{''.join(' --alias ' + a for a in args.alias)}{'' if args.margin is None else f' --margin {args.margin}'} --tta {','.join(args.tta)}{' --weights-fp16' if args.weights_fp16 else ''}`

## Files
- `{name}.onnx` (runtime; sha256 `{sha}`, checked at load), `{name}.safetensors` (weights for fine-tuning/export).{FP16_NOTE if args.weights_fp16 else ''}

## Limits
FER2013 is small, low-resolution, web-scraped and label-noisy (human agreement is about 65%); faces are
mostly frontal adults. Expect lower accuracy on profile views, children, occlusion and poor light. Emotion
labels describe facial expressions, not inner states: do not use the output for decisions about people.
Data: FER2013 (Goodfellow et al., 2013), research use.
"""


def _calibration_text(temperature: float, metrics: dict[str, Any]) -> str:
    ece = (f"expected calibration error on PrivateTest (15 bins) {metrics['private_test_ece_uncalibrated']:.4f} at T = 1, "
           f"{metrics['private_test_ece']:.4f} as shipped")
    if temperature != 1.0:
        return f"Confidences are temperature-scaled (T = {temperature:.3f}, fitted by NLL on PublicTest): {ece}."
    return (f"Confidences are the network's own (T = 1): the NLL-fitted T = {metrics['fitted_temperature']:.3f} raised "
            f"PublicTest ECE from {metrics['public_test_ece_t1']:.4f} to {metrics['public_test_ece_fitted']:.4f}, so it is not applied; {ece}.")


def _training_text(info, summary: dict[str, Any] | None, metrics: dict[str, Any]) -> str:
    if summary is None:  # an ensemble: its members were trained (and carry cards) on their own
        members = ", ".join(f"`{m['arch']}` (T = {float(m.get('temperature', 1.0)):.3f})" for m in info.arch_kwargs["members"])
        return (f"- Members: {members}; {info.training_data}.\n"
                f"- The average of the members' probabilities, one ONNX graph; each member's own card gives its training "
                f"command and wall time. No training beyond the members'.")
    return (f"- Data: {info.training_data}; PublicTest for checkpoint selection (best epoch {int(metrics.get('epoch', 0))}); "
            f"PrivateTest untouched until release.\n"
            f"- Command: `{train_command(summary['args'])}`\n"
            f"- Wall time: {summary['wall_seconds'] / 60:.1f} min for {summary['epochs_run']} epochs on {summary.get('threads')} CPU threads\n"
            f"  ({cpu_name()}; torch {summary.get('torch')}, device {summary.get('device')}).{_starting_weights_text(summary)}")


def _starting_weights_text(summary: dict[str, Any]) -> str:
    """For a run started with ``--init``: how its starting weights were trained (following ``--init`` back to the first
    run), so the card reproduces the whole model and counts all its training time."""
    from emolive.models.shipped import shipped_models
    from emolive.training.runs import read_summary

    steps, total, complete, seen = [], summary["wall_seconds"] / 60, True, set()
    init = summary["args"].get("init")
    while init:
        if init in shipped_models():
            steps.append(f"the shipped model `{init}` (its card gives its training command and wall time)")
            complete = False
            break
        path = Path(init)
        folder = path if path.is_dir() else path.parent
        run = folder.resolve()
        donor = read_summary(run)
        if run in seen or not donor.get("args"):
            steps.append(f"`{init}`, whose training run is not recorded")
            complete = False
            break
        seen.add(run)
        minutes = donor["wall_seconds"] / 60
        total += minutes
        steps.append(f"the run `{train_command(donor['args'])} -o {folder}`, "
                     f"{minutes:.1f} min for {donor['epochs_run']} epochs")
        init = donor["args"].get("init")
    if not steps:
        return ""
    return ("\n- Starting weights (`--init`): " + "; which started from ".join(steps)
            + (f"; {total:.1f} min of training in all." if complete else "."))


def cli(argv: Sequence[str] | None = None) -> int:
    """``python -m emolive.training.release``: ship; a user's error is one line on stderr and its exit code."""
    try:
        main(None if argv is None else list(argv))
    except EmoliveError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(cli())
