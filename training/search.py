"""Hyperparameter search over ``emo-live train`` with Optuna: ``emo-live search``.

Each trial is one short training run (``--epochs-per-trial``) in its own folder ``DIR/trial_NNNN``,
scored by its best PublicTest accuracy; the PublicTest accuracy of every epoch is reported to the
pruner, which stops unpromising trials early. The study lives in an Optuna storage (default
``sqlite:///DIR/study.db``), so running the same command again resumes it: ``--trials`` is the total
number of finished (complete or pruned) trials wanted. ``DIR/trials.csv`` lists every trial with its
parameters, value, state and duration after each one; ``DIR/best.json`` holds the best parameters
and the ``emo-live train`` command that reproduces them.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shlex
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emolive.models.errors import InputError, require

# name (the training option's dest) -> (kind, arguments); "float"/"log" ranges and "choice" lists
SEARCH_SPACE: dict[str, tuple[str, tuple[Any, ...]]] = {
    "lr": ("log", (3e-4, 1e-2)),
    "batch_size": ("choice", (32, 64, 128, 256)),
    "weight_decay": ("log", (1e-4, 0.2)),
    "augment_strength": ("float", (0.0, 1.5)),
    "label_smoothing": ("float", (0.0, 0.2)),
    "mixup": ("choice", (0.0, 0.2, 0.4)),
}
DEFAULT_PARAMS = ("lr", "batch_size", "weight_decay", "augment_strength", "label_smoothing")
# options the search sets itself, so they may not be passed through to training
_RESERVED = {"data", "model", "output", "epochs", "limit", "seed", "resume"}


@dataclass(frozen=True)
class SearchResult:
    """Where a finished search left its study and what it found."""

    study_name: str
    storage: str
    finished_trials: int
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    command: str
    trials_csv: Path


def add_search_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="FER2013: fer2013.csv(.gz), the image tarball, or a folder with train/ and test/")
    parser.add_argument("--model", default="baseline_cnn", help="registered architecture to tune (default: %(default)s)")
    parser.add_argument("--trials", type=int, default=20, help="finished trials wanted in the study, counting earlier runs (default: %(default)s)")
    parser.add_argument("--epochs-per-trial", type=int, default=5, help="training epochs of each trial (default: %(default)s)")
    parser.add_argument("--limit", type=int, default=0, help="train each trial on only this many images; 0 = all")
    parser.add_argument("--params", default=",".join(DEFAULT_PARAMS),
                        help=f"comma-separated hyperparameters to search, from {', '.join(SEARCH_SPACE)} (default: %(default)s)")
    parser.add_argument("--pruner", choices=("median", "hyperband", "none"), default="median",
                        help="stop trials whose PublicTest accuracy lags (default: %(default)s)")
    parser.add_argument("--storage", help="Optuna storage URL (default: sqlite:///OUTPUT/study.db); the same storage resumes the search")
    parser.add_argument("--study-name", help="study name in the storage (default: <model>-search)")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting new trials after this many seconds")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every trial's training (default: %(default)s)")
    parser.add_argument("--output", "-o", required=True, type=Path, help="search folder: trial folders, trials.csv, best.json, study.db")


def _param_names(spec: str) -> list[str]:
    names = [n.strip().replace("-", "_") for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in SEARCH_SPACE]
    if unknown or not names:
        raise InputError(f"--params {spec!r}: unknown {', '.join(unknown) or 'empty list'}; choose from {', '.join(SEARCH_SPACE)}")
    return names


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def suggest(trial: Any, names: Sequence[str]) -> dict[str, Any]:
    """Draw one value per searched hyperparameter from :data:`SEARCH_SPACE`."""
    values: dict[str, Any] = {}
    for name in names:
        kind, bounds = SEARCH_SPACE[name]
        if kind == "choice":
            values[name] = trial.suggest_categorical(name, list(bounds))
        else:
            values[name] = trial.suggest_float(name, bounds[0], bounds[1], log=kind == "log")
    return values


def _train_argv(base: Sequence[str], params: dict[str, Any]) -> list[str]:
    argv = list(base)
    for name, value in params.items():
        argv += [_flag(name), f"{value:.6g}" if isinstance(value, float) else str(value)]
    return argv


def _validate_passthrough(train_parser: argparse.ArgumentParser, base: list[str], passthrough: Sequence[str], names: Sequence[str]) -> None:
    """Refuse training options the search owns, and any the training parser does not know, before trial 0."""
    actions = train_parser._option_string_actions  # argparse has no public option-string -> action map
    given = {actions[token.split("=", 1)[0]].dest for token in passthrough if token.split("=", 1)[0] in actions}
    owned = given & (_RESERVED | set(names))
    if owned:
        raise InputError(f"{', '.join(_flag(n) for n in sorted(owned))} is set by the search; drop it from the extra training options")
    _, unknown = train_parser.parse_known_args(base)  # a malformed value exits here with argparse's message, not in a trial
    if unknown:
        raise InputError(f"unknown training option(s) {' '.join(unknown)}; see 'emo-live train --help'")


def _pruner(optuna: Any, kind: str, epochs: int) -> Any:
    if kind == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if kind == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def write_trials_csv(study: Any, path: Path, names: Sequence[str]) -> Path:
    """Every trial of ``study`` (all sessions) as one CSV row, written atomically."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial", "state", "value", "duration_s", "epochs_reported", "publictest_per_epoch", *names, "started", "output"])
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else ""
        steps = sorted(t.intermediate_values)
        writer.writerow([t.number, t.state.name, "" if t.value is None else f"{t.value:.4f}",
                         f"{duration:.1f}" if duration != "" else "", len(steps),
                         " ".join(f"{t.intermediate_values[s]:.4f}" for s in steps),
                         *[t.params.get(n, "") for n in names],
                         t.datetime_start.isoformat(timespec="seconds") if t.datetime_start else "", t.user_attrs.get("output", "")])
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(buffer.getvalue())
    os.replace(tmp, path)
    return path


def run_search(args: argparse.Namespace, passthrough: Sequence[str] = ()) -> SearchResult:
    """Run (or resume) the study described by ``args``; ``passthrough`` are fixed extra training options."""
    optuna = require("optuna", "train", "hyperparameter search")
    from emolive.training.data import find_source
    from emolive.realtime.sinks import make_folder
    from emolive.training.train import check_inputs, get_args_parser, main as train_main

    if args.trials < 1 or args.epochs_per_trial < 1:
        raise InputError("--trials and --epochs-per-trial must be at least 1")
    names = _param_names(args.params)
    find_source(Path(args.data))  # a wrong data path fails before the study is created
    out = make_folder(args.output, "-o")
    train_parser = get_args_parser(argparse.ArgumentParser(prog="emo-live train"))
    missing = [n for n in names if _flag(n) not in train_parser._option_string_actions]  # e.g. --mixup on an older train
    if missing:
        raise InputError(f"this emo-live train has no {', '.join(_flag(n) for n in missing)}; drop it from --params")
    fixed = ["--data", str(args.data), "--model", args.model, "--epochs", str(args.epochs_per_trial), "--seed", str(args.seed)]
    if args.limit:
        fixed += ["--limit", str(args.limit)]
    base = [*fixed, "--no-export", *passthrough]
    _validate_passthrough(train_parser, base, passthrough, names)
    check_inputs(train_parser.parse_args([*base, "--output", str(out / "trial_0000")]))  # e.g. a missing --exclude file: here, not in trial 0

    storage_url = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    storage: Any = storage_url
    if storage_url.startswith(("sqlite:", "postgresql", "mysql")):
        # heartbeats let a resumed search mark trials of a killed run as failed instead of running forever
        with warnings.catch_warnings():  # heartbeats are marked experimental in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage = optuna.storages.RDBStorage(storage_url, heartbeat_interval=30, grace_period=90)
    study_name = args.study_name or f"{args.model}-search"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=args.seed),
                                pruner=_pruner(optuna, args.pruner, args.epochs_per_trial))
    config = {"train_args": [*fixed, *passthrough], "params": names}
    recorded = study.user_attrs.get("config")
    if recorded is None:
        study.set_user_attr("config", config)
    elif recorded != config:
        raise InputError(f"study '{study_name}' in {storage_url} was run with {recorded}; resume it with the same options or pass a new --study-name")

    finished_states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    done = len(study.get_trials(deepcopy=False, states=finished_states))
    trials_csv = write_trials_csv(study, out / "trials.csv", names)
    if done:
        print(f"resuming study '{study_name}' ({storage_url}): {done} finished trial(s), {max(args.trials - done, 0)} to run")

    def objective(trial: Any) -> float:
        params = suggest(trial, names)
        folder = out / f"trial_{trial.number:04d}"
        trial.set_user_attr("output", str(folder))
        pruned: list[int] = []

        def on_epoch_end(record: dict[str, Any]) -> bool:
            trial.report(record["val_accuracy"], record["epoch"])
            if trial.should_prune():
                pruned.append(record["epoch"])
                return True
            return False

        print(f"trial {trial.number}: {' '.join(f'{_flag(k)} {v:.4g}' if isinstance(v, float) else f'{_flag(k)} {v}' for k, v in params.items())}", flush=True)
        summary = train_main(train_parser.parse_args([*_train_argv(base, params), "--output", str(folder)]), on_epoch_end=on_epoch_end)
        if pruned:
            raise optuna.TrialPruned(f"PublicTest accuracy after epoch {pruned[0]} is below the pruner's bar")
        return float(summary["best_public_test_accuracy"])

    def log_trial(study: Any, trial: Any) -> None:
        write_trials_csv(study, trials_csv, names)
        value = f"PublicTest {trial.value:.4f}" if trial.value is not None else "no value"
        if trial.state.name == "PRUNED":
            value += f" after {len(trial.intermediate_values)} epoch(s)"
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds() if trial.datetime_complete else 0.0
        print(f"trial {trial.number} {trial.state.name.lower()}: {value} in {duration:.0f} s", flush=True)

    tic = time.perf_counter()
    try:
        if args.trials > done:
            study.optimize(objective, n_trials=args.trials - done, timeout=args.timeout, callbacks=[log_trial], gc_after_trial=True)
    finally:  # a trial that raised is stored as FAIL but skips the callbacks: log it too before the error reaches the user
        write_trials_csv(study, trials_csv, names)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if not complete:
        raise InputError(f"no trial of study '{study_name}' completed (see {trials_csv}); raise --trials or use --pruner none")
    best = study.best_trial
    command = shlex.join(["emo-live", "train", *_train_argv([*fixed, *passthrough], best.params), "--output", f"runs/{study_name}-best"])
    result = SearchResult(study_name, storage_url, len(study.get_trials(deepcopy=False, states=finished_states)), best.number,
                          float(best.value), dict(best.params), command, trials_csv)
    tmp = out / "best.json.part"
    tmp.write_text(json.dumps({"study_name": study_name, "storage": storage_url, "trial": best.number, "public_test_accuracy": best.value,
                               "params": best.params, "output": best.user_attrs.get("output"), "command": command,
                               "finished_trials": result.finished_trials, "search_seconds_this_session": round(time.perf_counter() - tic, 1)}, indent=1))
    os.replace(tmp, out / "best.json")
    return result


def format_result(result: SearchResult) -> str:
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in result.best_params.items())
    return (f"best of {result.finished_trials} finished trial(s) in study '{result.study_name}': trial {result.best_trial}, "
            f"PublicTest {result.best_value:.4f} ({params})\ntrials: {result.trials_csv}\nreproduce and keep it with:\n  {result.command}")
