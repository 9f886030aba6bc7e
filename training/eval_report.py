"""Evaluation report: ``emo-live eval --report DIR``.

Writes ``report.md`` and ``metrics.json`` with accuracy, macro-F1 and per-class precision, recall,
F1, support and one-vs-rest ROC AUC (scikit-learn), the positive/negative valence view, calibration
before and after the model's temperature, and the PNGs: confusion matrix (counts and row-normalized),
ROC curves per class, valence ROC, reliability diagram, and training curves when the run is known.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score, roc_curve

from emolive.calibration.reliability import plot_reliability_diagram
from emolive.calibration.temperature import expected_calibration_error
from emolive.models.errors import OutputError
from emolive.models.info import ModelInfo
from emolive.realtime.engines import create_engine, softmax
from emolive.realtime.report import _pyplot, _save, rgb
from emolive.training.data import find_source
from emolive.training.evaluate import classification_metrics, ground_truth, predict_split
from emolive.training.runs import ModelFiles, open_model_files, read_history

POSITIVE: tuple[str, ...] = ("happy", "surprise")
NEGATIVE: tuple[str, ...] = ("angry", "disgust", "fear", "sad", "contempt")  # contempt exists only in FER+ models


def one_vs_rest_roc(labels: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Per class: ROC curve (fpr, tpr) and AUC of its probability against all other classes; None when the class is absent."""
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(names):
        positive = labels == k
        if positive.all() or not positive.any():
            out[name] = {"auc": None, "fpr": [], "tpr": []}
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        out[name] = {"auc": float(roc_auc_score(positive, probs[:, k])), "fpr": fpr.tolist(), "tpr": tpr.tolist()}
    return out


def valence(labels: np.ndarray, probs: np.ndarray, names: tuple[str, ...]) -> dict[str, Any]:
    """Positive (happy, surprise) vs negative (angry, disgust, fear, sad) on the images with such a label.

    The score is P(positive) / (P(positive) + P(negative)), the summed class probabilities with the
    rest (neutral) left out; it predicts positive above 0.5.
    """
    pos = [names.index(n) for n in POSITIVE if n in names]
    neg = [names.index(n) for n in NEGATIVE if n in names]
    keep = np.isin(labels, pos + neg)
    truth = np.isin(labels[keep], pos)
    p_pos, p_neg = probs[keep][:, pos].sum(axis=1), probs[keep][:, neg].sum(axis=1)
    score = p_pos / np.maximum(p_pos + p_neg, 1e-12)
    result: dict[str, Any] = {"positive": [names[i] for i in pos], "negative": [names[i] for i in neg],
                              "n": int(keep.sum()), "n_positive": int(truth.sum()),
                              "accuracy": float(((score > 0.5) == truth).mean()) if keep.any() else None,
                              "auc": None, "fpr": [], "tpr": []}
    if 0 < truth.sum() < len(truth):
        fpr, tpr, _ = roc_curve(truth, score)
        result.update(auc=float(roc_auc_score(truth, score)), fpr=fpr.tolist(), tpr=tpr.tolist())
    return result


def plot_confusion(matrix: np.ndarray, names: tuple[str, ...], path: Path, title: str) -> Path:
    """Counts and row-normalized (recall per true class) confusion matrices side by side."""
    plt = _pyplot()
    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, rows, out=np.zeros(matrix.shape, dtype=float), where=rows > 0)
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4), layout="constrained")
    for ax, values, label, fmt in ((axes[0], matrix, "images", "d"), (axes[1], normalized, "share of the true class", ".2f")):
        shown = ax.imshow(values, cmap="Blues", vmin=0)
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label=label)
        limit = values.max() / 2 if values.size else 0
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=8, color="white" if v > limit else "black")
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        ax.set_yticks(range(len(names)), names)
        for tick in ax.get_yticklabels():
            tick.set_color(rgb(tick.get_text()))
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
    axes[0].set_title("counts")
    axes[1].set_title("row-normalized")
    fig.suptitle(title)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_roc(curves: dict[str, dict[str, Any]], path: Path, title: str) -> Path:
    """One ROC curve per entry, coloured by emotion, AUC in the legend."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 5.4))
    for name, curve in curves.items():
        if curve["auc"] is not None:
            ax.plot(curve["fpr"], curve["tpr"], color=curve.get("color", rgb(name)), linewidth=1.5, label=f"{name} (AUC {curve['auc']:.3f})")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_training_curves(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Loss and accuracy per epoch, Training vs PublicTest."""
    plt = _pyplot()
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, label in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
        ax.plot(epochs, [h.get(f"train_{key}") for h in history], marker=".", label="Training (augmented)")
        ax.plot(epochs, [h.get(f"val_{key}") for h in history], marker=".", label="PublicTest")
        ax.set_xlabel("epoch")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _write_text(path: Path, text: str) -> Path:
    tmp = path.with_name(f".{path.name}.part{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def dataset_title(label_set: str) -> str:
    """The name a report title gives the labels it was scored on: FER+ relabelling or the original FER2013."""
    return "FER+" if label_set.startswith("ferplus") else "FER2013"


def format_markdown(m: dict[str, Any], plots: dict[str, str]) -> str:
    """report.md from the metrics and the plot file names."""
    names = m["labels"]
    lines = [f"# Evaluation: {m['name']} on {dataset_title(m['label_set'])} {m['split']}", "",
             f"Model `{m['model']}`{' (exported to ONNX on the fly)' if m['exported'] else ''}, "
             f"architecture `{m['arch']}`; data `{m['data']}`, {m['n']} images, {m['label_set']} labels.", "",
             "| accuracy | macro-F1 | macro one-vs-rest AUC | ECE (T=1) | ECE (T={:.3f}) |".format(m["temperature"]), "|---|---|---|---|---|",
             f"| {m['accuracy']:.4f} | {m['macro_f1']:.4f} | {_fmt(m['macro_auc'])} | {m['ece_uncalibrated']:.4f} | {m['ece']:.4f} |", "",
             "## Per class", "", "| class | precision | recall | F1 | support | ROC AUC |", "|---|---|---|---|---|---|"]
    for name in names:
        row = m["per_class"][name]
        lines.append(f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} | {_fmt(m['roc_auc'][name], 3)} |")
    lines += ["", "## Confusion matrix (rows: true, columns: predicted)", "", "| | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    lines += [f"| **{name}** | " + " | ".join(str(v) for v in row) + " |" for name, row in zip(names, m["confusion_matrix"])]
    v = m["valence"]
    lines += ["", f"![confusion matrix]({plots['confusion']})", "", "## ROC curves (one class vs the rest)", "", f"![ROC]({plots['roc']})", "",
              "## Valence: positive vs negative", "",
              f"Positive = {' + '.join(v['positive'])}; negative = {' + '.join(v['negative'])}; other classes (neutral) left out. "
              "Score = summed positive probability / (summed positive + summed negative); positive above 0.5.", "",
              "| images | positive | accuracy | ROC AUC |", "|---|---|---|---|",
              f"| {v['n']} | {v['n_positive']} | {_fmt(v['accuracy'])} | {_fmt(v['auc'])} |", "", f"![valence ROC]({plots['valence']})", "",
              "## Calibration", "",
              f"Temperature recorded in the model: T = {m['temperature']:.4f}. Expected calibration error (15 bins): "
              f"{m['ece_uncalibrated']:.4f} at T = 1, {m['ece']:.4f} at T = {m['temperature']:.4f}.", ""]
    if "reliability" in plots:
        lines += [f"![reliability diagram]({plots['reliability']})", ""]
    if "training" in plots:
        h = m["training"]
        lines += ["## Training", "", f"Run `{h['run']}`: {h['epochs']} epochs, best PublicTest accuracy {h['best_val_accuracy']:.4f} "
                  f"at epoch {h['best_epoch']}. Training loss and accuracy are measured on augmented batches.", "",
                  f"![training curves]({plots['training']})", ""]
    lines += [f"Reproduce: `{m['command']}`", ""]
    return "\n".join(lines)


def evaluation_report(model: str | os.PathLike[str], data: str | os.PathLike[str], split: str, folder: str | os.PathLike[str], *,
                      run: str | os.PathLike[str] | None = None, engine: str = "auto", threads: int = 0, labels: str = "auto",
                      ferplus: str | os.PathLike[str] | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate ``model`` on ``split`` and write report.md, metrics.json and the PNGs into ``folder``; returns the metrics."""
    find_source(Path(data))  # a wrong data path is reported before any model loads
    folder = Path(folder)
    with open_model_files(model, run) as files:
        with create_engine(engine, files.onnx, threads=threads) as runner:
            info = runner.info
            fer, label_set = ground_truth(info, data, split, labels, ferplus)
            logits = predict_split(runner, fer, progress=progress, logits=True)
        history = read_history(files.run)
    metrics = _metrics(fer.labels, logits, info, files)
    metrics.update({"split": split, "data": str(Path(data)), "label_set": label_set,
                    "command": f"emo-live eval --model {model} --data {data} --split {split} --report {folder}" + (f" --run {run}" if run else "")
                               + (f" --labels {labels}" if labels != "auto" else "") + (f" --ferplus {ferplus}" if ferplus else "")})
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create report folder {folder} ({exc.strerror}); choose another --report") from None
    names, title = info.labels, f"{metrics['name']}, {dataset_title(label_set)} {split}"
    plots = {"confusion": plot_confusion(np.array(metrics["confusion_matrix"]), names, folder / "confusion_matrix.png", title).name,
             "roc": plot_roc(metrics.pop("_roc"), folder / "roc_per_class.png", f"One-vs-rest ROC, {title}").name}
    curve = metrics.pop("_valence_curve")
    plots["valence"] = plot_roc({"positive vs negative": {**curve, "color": rgb("happy")}}, folder / "roc_valence.png", f"Valence ROC, {title}").name
    probs_before, probs_after = softmax(logits, 1.0), softmax(logits, info.temperature)
    plots["reliability"] = plot_reliability_diagram(probs_before, probs_after, fer.labels, folder / "reliability.png", n_bins=15).name
    if history:
        best = max(history, key=lambda h: h.get("val_accuracy", -1.0))
        metrics["training"] = {"run": str(files.run), "epochs": len(history), "best_epoch": best["epoch"],
                               "best_val_accuracy": best.get("val_accuracy"), "history": history}
        plots["training"] = plot_training_curves(history, folder / "training_curves.png", f"Training run {files.run.name}").name
    metrics["plots"] = plots
    _write_text(folder / "metrics.json", json.dumps(metrics, indent=1))
    _write_text(folder / "report.md", format_markdown(metrics, plots))
    return metrics


def _shown_path(path: Path | None) -> str:
    """A shipped file by its name inside the package (not this machine's install path); others as given."""
    from emolive.models.shipped import is_shipped_file

    if path is not None and is_shipped_file(path):
        return f"emolive/models/weights/{path.name}"
    return str(path)


def _metrics(labels: np.ndarray, logits: np.ndarray, info: ModelInfo, files: ModelFiles) -> dict[str, Any]:
    names = info.labels
    probs, probs_before = softmax(logits, info.temperature), softmax(logits, 1.0)
    metrics = classification_metrics(labels, probs, names)
    roc = one_vs_rest_roc(labels, probs, names)
    aucs = [c["auc"] for c in roc.values() if c["auc"] is not None]
    val = valence(labels, probs, names)
    metrics.update({
        "name": files.name, "model": _shown_path(files.safetensors if files.exported else files.onnx),
        "weights": str(files.safetensors) if files.safetensors else None, "exported": files.exported, "arch": info.arch,
        "temperature": info.temperature, "test_time_augmentation": info.test_time_augmentation,
        "ece_uncalibrated": expected_calibration_error(probs_before, labels, bins=15),
        "roc_auc": {name: c["auc"] for name, c in roc.items()}, "macro_auc": float(np.mean(aucs)) if aucs else None,
        "valence": {k: v for k, v in val.items() if k not in ("fpr", "tpr")},
        "_roc": roc, "_valence_curve": {"auc": val["auc"], "fpr": val["fpr"], "tpr": val["tpr"]},
    })
    return metrics
