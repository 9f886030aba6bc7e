"""Reports people can look at: summary.json/.csv, timeline and distribution plots, one HTML file.

Everything is derived from the per-frame records (see :mod:`.summary`). Colours per emotion are the
overlay's, so a label looks the same in the video, the plots and the report.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emolive.models.errors import OutputError

from .overlay import color_for
from .sinks import atomic_path
from .summary import RunSummary, summarize, summary_csv

MIN_TIMELINE_FRAMES = 3  # faces seen for fewer frames get a table row but no timeline plot


@dataclass(frozen=True)
class ReportFiles:
    """Paths of a written report."""

    folder: Path
    summary_json: Path
    summary_csv: Path
    html: Path
    plots: tuple[Path, ...]


def rgb(label: str) -> tuple[float, float, float]:
    b, g, r = color_for(label)
    return r / 255.0, g / 255.0, b / 255.0


def _write_atomic(path: Path, data: bytes) -> None:
    with atomic_path(path, "--report") as tmp:
        tmp.write_bytes(data)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    with atomic_path(path, "--report") as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    return path


def plot_timeline(records: Sequence[dict[str, Any]], face_id: int, labels: tuple[str, ...], path: Path) -> Path:
    """Probabilities of one face over time (one line per emotion) under a band of its label per frame."""
    plt = _pyplot()
    rows = [(r["time"], f) for r in records for f in r["faces"] if int(f["id"]) == face_id]
    times = np.array([t for t, _ in rows])
    probs = np.array([[f["probs"][name] for name in labels] for _, f in rows])
    fig, (band, ax) = plt.subplots(2, 1, figsize=(9, 3.8), sharex=True, gridspec_kw={"height_ratios": [1, 7], "hspace": 0.05})
    colors = np.array([[rgb(f["label"]) for _, f in rows]])
    step = float(np.median(np.diff(times))) if len(times) > 1 else 1.0
    band.imshow(colors, aspect="auto", extent=(times[0], times[-1] + step, 0, 1), interpolation="nearest")
    band.set_yticks([])
    band.set_ylabel("label", rotation=0, ha="right", va="center")
    for k, name in enumerate(labels):
        ax.plot(times, probs[:, k], color=rgb(name), label=name, linewidth=1.6 if name == max(labels, key=lambda n: probs[:, labels.index(n)].mean()) else 1.1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("probability")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    band.set_title(f"Face #{face_id}: emotion probabilities over time ({len(rows)} frames)")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def plot_distribution(summary: RunSummary, path: Path, *, counts: bool = False) -> Path:
    """Share of face-frames per emotion for the whole run (or, for image folders, face counts per label)."""
    plt = _pyplot()
    assert summary.overall is not None
    values = [summary.overall.share[name] * (summary.overall.frames if counts else 100.0) for name in summary.labels]
    fig, ax = plt.subplots(figsize=(7, 3.4))
    bars = ax.bar(summary.labels, values, color=[rgb(name) for name in summary.labels], edgecolor="black", linewidth=0.5)
    ax.bar_label(bars, labels=[f"{v:.0f}" if counts else f"{v:.1f}%" for v in values], fontsize=8)
    ax.set_ylabel("faces" if counts else "share of face-frames (%)")
    ax.set_xlabel("emotion")
    ax.set_title("Label histogram" if counts else "Emotion distribution over the whole video")
    ax.grid(axis="y", alpha=0.3)
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def _text(value: str) -> str:
    """HTML-escaped text; bytes of file names that are not valid UTF-8 show as U+FFFD."""
    return html.escape(value.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))


def _img(path_or_bytes: Path | bytes, mime: str, alt: str) -> str:
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else path_or_bytes.read_bytes()
    return f'<img alt="{html.escape(alt)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'


def render_html(summary: RunSummary, plots: dict[str, Path], thumbnails: dict[int, bytes] | None) -> str:
    """One self-contained HTML page: summary table, plots and optional thumbnails, all embedded."""
    labels = summary.labels
    head = "".join(f"<th>{html.escape(n)}</th>" for n in labels)
    rows = []
    items = [(f"#{k}", k, v) for k, v in summary.faces.items()]
    if summary.overall is not None:
        items.append(("all", None, summary.overall))
    for name, face_id, stats in items:
        thumb = _img(thumbnails[face_id], "image/jpeg", f"face {name}") if thumbnails and face_id in thumbnails else ""
        shares = "".join(f"<td>{stats.share[n] * 100:.1f}%</td>" for n in labels)
        rows.append(f'<tr class="face"><td>{name}</td><td>{thumb}</td><td>{stats.frames}</td><td>{stats.seconds:.2f}</td>'
                    f"<td>{stats.first_seen:.2f}</td><td>{stats.last_seen:.2f}</td>"
                    f'<td style="color:rgb{tuple(int(c * 255) for c in rgb(stats.dominant))}"><b>{html.escape(stats.dominant)}</b></td>'
                    f"<td>{stats.mean_confidence:.2f}</td>{shares}</tr>")
    figures = "".join(f'<figure>{_img(path, "image/png", title)}<figcaption>{html.escape(title)}</figcaption></figure>'
                      for title, path in plots.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>emolive report: {_text(summary.source)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;font-size:14px}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}th{{background:#f3f3f3}}img{{max-width:100%}}
td img{{height:64px}}figure{{margin:1.5em 0}}figcaption{{color:#666;font-size:13px}}</style></head>
<body><h1>emolive report</h1>
<p>Source: <code>{_text(summary.source)}</code> &middot; {summary.frames} frames, faces in {summary.frames_with_faces}
&middot; {len(summary.faces)} tracked face id(s)</p>
<h2>Summary</h2>
<table id="summary"><tr><th>id</th><th>face</th><th>frames</th><th>seconds on screen</th><th>first seen (s)</th>
<th>last seen (s)</th><th>dominant</th><th>mean confidence</th>{head}</tr>
{''.join(rows)}</table>
<h2>Plots</h2>{figures}
<p style="color:#888">Expressions, not feelings: labels describe faces as a FER2013-trained model sees them.</p>
</body></html>
"""


def write_report(records: Sequence[dict[str, Any]], folder: str | Path, *, kind: str | None = None,
                 thumbnails: dict[int, bytes] | None = None) -> ReportFiles:
    """Write summary.json, summary.csv, the plots and report.html into ``folder``."""
    folder = Path(folder)
    summary = summarize(records, kind=kind)  # bad records fail before anything is created
    try:
        (folder / "plots").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create report folder {folder} ({exc.strerror}); choose another --report") from None
    json_path, csv_path, html_path = folder / "summary.json", folder / "summary.csv", folder / "report.html"
    _write_atomic(json_path, json.dumps(summary.to_dict(), indent=1).encode())
    _write_atomic(csv_path, summary_csv(summary).encode())
    plots: dict[str, Path] = {}
    if summary.overall is not None:
        if summary.kind == "images":
            plots["Label histogram"] = plot_distribution(summary, folder / "plots" / "label_histogram.png", counts=True)
        else:
            plots["Emotion distribution"] = plot_distribution(summary, folder / "plots" / "distribution.png")
            for face_id, stats in summary.faces.items():
                if stats.frames >= MIN_TIMELINE_FRAMES:
                    plots[f"Face #{face_id} timeline"] = plot_timeline(records, face_id, summary.labels,
                                                                       folder / "plots" / f"timeline_id{face_id}.png")
    _write_atomic(html_path, render_html(summary, plots, thumbnails).encode())
    return ReportFiles(folder, json_path, csv_path, html_path, tuple(plots.values()))
