"""Compare temporal smoothing (none / EMA / LSTM, each with or without label hysteresis): ``emo-live eval-temporal --data FER2013 [--media DIR] [--json FILE]``.

(a) per-frame accuracy and (b) transition latency of the displayed label on synthetic PrivateTest (or, to choose a setting, PublicTest)
sequences (jittered views of the stills through the CNN, labelled in its label order: FER+ majority labels for a FER+ CNN,
as ``emo-live eval``; then each smoother exactly as the runtime runs it: one ``update`` per frame for all sequences as tracks); (c) flicker, label switches per second per
track, on real videos: they go once through :class:`~emolive.realtime.pipeline.Recognizer` (detector,
tracker, CNN), its smoother's calls are recorded, and every smoothing is replayed on exactly those calls
(the pipeline never feeds smoothed output back, so this equals running it with that smoothing); (d) the
smoother's own cost in ms per face per frame; (e) the flicker floor of the real videos: how many of their raw label
switches separate labels the CNN holds for ``--sustained-frames`` frames or more, which any smoother that follows
such changes keeps. Prints one markdown table and the floor; ``--json`` writes every figure.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emolive.models.errors import InputError
from emolive.models.shipped import file_sha256, resolve_model_path
from emolive.realtime.engines import OnnxRuntimeEngine
from emolive.realtime.sinks import atomic_path, prepare_output
from emolive.realtime.smoothing import NoSmoothing, Smoother, create_smoother
from emolive.training.data import find_source
from emolive.training.evaluate import ground_truth
from emolive.training.ferplus import FERPLUS_FILE
from emolive.training.sequences import (SequencePlan, ViewJitter, check_counts, gather, plan_sequences, require_two_classes,
                                        view_features)
from emolive.training.temporal_metrics import flicker_rate, label_switches, latency_summary, sustained_switches, transition_latencies

VIDEO_SUFFIXES = (".mp4", ".mov")


@dataclass(frozen=True)
class SmoothingSetting:
    """One row of the comparison: a smoother name, for EMA its alpha, and the label hysteresis on top (margin, dwell)."""

    name: str
    alpha: float = 0.7
    margin: float = 0.0
    dwell: int = 1

    @property
    def hysteresis(self) -> bool:
        return self.margin != 0.0 or self.dwell != 1

    @property
    def label(self) -> str:
        base = f"ema (alpha {self.alpha:g})" if self.name == "ema" else self.name
        return f"{base} + hysteresis {self.margin:g}, dwell {self.dwell}" if self.hysteresis else base

    def create(self, cnn_path: Path) -> Smoother:
        return create_smoother(self.name, alpha=self.alpha if self.name == "ema" else None, margin=self.margin, dwell=self.dwell, cnn_path=cnn_path)


def get_args_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="emo-live eval-temporal", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="FER2013 (for the synthetic sequences)")
    parser.add_argument("--split", choices=("PrivateTest", "PublicTest"), default="PrivateTest",
                        help="stills of the synthetic sequences: PrivateTest to report, PublicTest to choose a setting (default: %(default)s)")
    parser.add_argument("--model", default="default", help="the CNN (shipped name or .onnx path); its temporal head must sit beside it")
    parser.add_argument("--ferplus", type=Path,
                        help=f"FER+ votes ({FERPLUS_FILE}) labelling the stills for a CNN with FER+ labels (default: looked for beside --data)")
    parser.add_argument("--media", type=Path, help="folder of real videos (*.mp4, *.mov) for the flicker figures")
    parser.add_argument("--json", type=Path, help="write every figure here as JSON")
    parser.add_argument("--alphas", default="0.5,0.7,0.85", help="EMA alphas to compare (default: %(default)s)")
    parser.add_argument("--hysteresis", default="0.2:1,0.2:2,0.25:2,0.3:2",
                        help="label hysteresis settings MARGIN:DWELL to compare, comma-separated, '' = none (default: %(default)s)")
    parser.add_argument("--hysteresis-on", default="lstm,ema", help="smoothers that get each hysteresis setting: none, ema, lstm (default: %(default)s)")
    parser.add_argument("--hysteresis-alpha", type=float, default=0.7, help="EMA alpha under hysteresis (default: %(default)s)")
    parser.add_argument("--images", type=int, default=0, help="stills of --split to use (0 = all; default: %(default)s)")
    parser.add_argument("--views", type=int, default=4, help="clean jittered views per still (default: %(default)s)")
    parser.add_argument("--occluded-views", type=int, default=2, help="occluded views per still (default: %(default)s)")
    parser.add_argument("--sequences", type=int, default=400, help="synthetic sequences (default: %(default)s)")
    parser.add_argument("--length", type=int, default=150, help="frames per synthetic sequence (default: %(default)s)")
    parser.add_argument("--fps", type=float, default=30.0, help="frame rate the synthetic sequences stand for (default: %(default)s)")
    parser.add_argument("--detector", default="auto", help="face detector for the real videos (default: %(default)s)")
    parser.add_argument("--sustained-frames", type=int, default=6,
                        help="for the flicker floor: a change the CNN holds this many frames is one a smoother should follow (default: %(default)s)")
    parser.add_argument("--cost-frames", type=int, default=2000, help="frames timed per smoother for the cost figure (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def settings_from(alphas: str, hysteresis: str = "", on: str = "lstm,ema", hysteresis_alpha: float = 0.7) -> list[SmoothingSetting]:
    """The rows: none, EMA at each alpha, LSTM, then each smoother of ``on`` with each MARGIN:DWELL of ``hysteresis``."""
    try:
        values = [float(a) for a in alphas.split(",") if a.strip()]
    except ValueError:
        raise InputError(f"--alphas must be comma-separated numbers in [0, 1), got '{alphas}'") from None
    if any(not 0.0 <= a < 1.0 for a in values) or not 0.0 <= hysteresis_alpha < 1.0:
        raise InputError(f"--alphas and --hysteresis-alpha must be in [0, 1), got '{alphas}' and {hysteresis_alpha}")
    pairs: list[tuple[float, int]] = []
    for item in (part.strip() for part in hysteresis.split(",")):
        if not item:
            continue
        try:
            margin, dwell = item.split(":")
            pairs.append((float(margin), int(dwell)))
        except ValueError:
            raise InputError(f"--hysteresis takes MARGIN:DWELL pairs separated by commas (e.g. 0.1:1,0:4), got '{hysteresis}'") from None
        if not 0.0 <= pairs[-1][0] < 1.0 or pairs[-1][1] < 1:
            raise InputError(f"--hysteresis margins must be in [0, 1) and dwells at least 1, got '{item}'")
    bases = [name.strip() for name in on.split(",") if name.strip()]
    if any(name not in ("none", "ema", "lstm") for name in bases):
        raise InputError(f"--hysteresis-on takes none, ema and/or lstm separated by commas, got '{on}'")
    settings = [SmoothingSetting("none"), *(SmoothingSetting("ema", a) for a in values), SmoothingSetting("lstm")]
    for name in bases:
        for margin, dwell in pairs:
            setting = SmoothingSetting(name, hysteresis_alpha if name == "ema" else 0.7, margin, dwell)
            if setting.hysteresis and setting not in settings:
                settings.append(setting)
    return settings


def shown_labels(smoother: Smoother, ids: list[int], smoothed: np.ndarray) -> np.ndarray:
    """The class index displayed for each face: the label hysteresis holds, else the argmax."""
    held = smoother.held_labels(ids)
    return smoothed.argmax(1) if held is None else held


def smooth_sequences(smoother: Smoother, plans: list[SequencePlan], probs: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Run ``smoother`` over the sequences as if each were one tracked face of the same video: (B, T) class ids."""
    smoother.reset()
    p, f = gather(plans, probs), gather(plans, features)
    ids = list(range(1, len(plans) + 1))
    predicted = np.empty(p.shape[:2], dtype=np.int64)
    for t in range(p.shape[1]):
        predicted[:, t] = shown_labels(smoother, ids, smoother.update(ids, p[:, t], ids, features=f[:, t]))
    smoother.reset()
    return predicted


def synthetic_scores(plans: list[SequencePlan], predicted: np.ndarray, fps: float) -> dict[str, float]:
    true = np.stack([p.label for p in plans])
    latencies = [lat for plan, pred in zip(plans, predicted) for lat in transition_latencies(plan.label, pred)]
    return {"accuracy": float((predicted == true).mean()), **latency_summary(latencies),
            "flicker_synthetic": flicker_rate(predicted, fps)[0]}


class SmootherCalls(Smoother):
    """Passes probabilities through and keeps every ``update`` and ``reset`` call, to replay other smoothers on them."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], np.ndarray, list[int], np.ndarray | None] | None] = []  # None = reset

    def update(self, ids: Sequence[int], probs: np.ndarray, active_ids: Iterable[int], features: np.ndarray | None = None) -> np.ndarray:
        self.calls.append((list(ids), probs.copy(), list(active_ids), None if features is None else features.copy()))
        return probs

    def reset(self) -> None:
        self.calls.append(None)


@dataclass(frozen=True)
class VideoCalls:
    """The smoother calls the pipeline made on one video, and its frame rate."""

    video: Path
    fps: float
    calls: list[tuple[list[int], np.ndarray, list[int], np.ndarray | None] | None]


def record_videos(cnn_path: Path, videos: list[Path], detector: str, threads: int) -> list[VideoCalls]:
    """Run each video once through the real pipeline and keep its smoother calls."""
    from emolive.realtime.pipeline import Recognizer
    from emolive.realtime.sources import open_source

    recorded = []
    with Recognizer(cnn_path, detector=detector, threads=threads, smooth=SmootherCalls()) as recognizer:
        for video in videos:
            recorder = recognizer.smoother
            assert isinstance(recorder, SmootherCalls)
            recorder.calls = []
            source = open_source(video)
            for _ in recognizer.stream(source):
                pass
            recorded.append(VideoCalls(video, source.info.fps or 30.0, recorder.calls))
    return recorded


def replay_tracks(smoother: Smoother, recorded: list[VideoCalls]) -> list[tuple[VideoCalls, list[list[int]], int, int]]:
    """Replay ``smoother`` on each video's recorded calls: per video, each track's displayed labels, frame after frame,
    and the frames and faces it saw."""
    replayed = []
    for video in recorded:
        smoother.reset()
        per_track: dict[int, list[int]] = {}
        frames = faces = 0
        for call in video.calls:
            if call is None:
                smoother.reset()
                continue
            ids, probs, active_ids, features = call
            frames += 1
            faces += len(ids)
            shown = shown_labels(smoother, ids, smoother.update(ids, probs, active_ids, features=features)) if ids else []
            for track_id, label in zip(ids, shown):
                per_track.setdefault(track_id, []).append(int(label))
        replayed.append((video, list(per_track.values()), frames, faces))
    smoother.reset()
    return replayed


def video_flicker(smoother: Smoother, recorded: list[VideoCalls]) -> dict[str, Any]:
    """Label switches per second per track of the displayed labels, replaying ``smoother`` on the recorded calls."""
    seconds, switches, tracks, faces, frames = 0.0, 0, 0, 0, 0
    for video, labels, video_frames, video_faces in replay_tracks(smoother, recorded):
        _, n, s = flicker_rate(labels, video.fps)
        switches, seconds, tracks = switches + n, seconds + s, tracks + len(labels)
        frames, faces = frames + video_frames, faces + video_faces
    return {"flicker": switches / seconds if seconds else 0.0, "switches": switches, "track_seconds": seconds,
            "tracks": tracks, "faces": faces, "frames": frames}


def flicker_floor(recorded: list[VideoCalls], min_run: int) -> dict[str, Any]:
    """How far smoothing can cut real-video flicker while following every label the CNN holds for ``min_run`` frames.

    Of the raw (unsmoothed) label switches, ``sustained_switches`` separate runs of at least ``min_run`` frames;
    any smoother that shows each such run makes at least that many, so ``max_cut`` bounds its flicker cut.
    """
    per_video: dict[str, dict[str, int]] = {}
    for video, labels, _, _ in replay_tracks(NoSmoothing(), recorded):
        per_video[video.video.name] = {"raw_switches": sum(label_switches(track) for track in labels),
                                       "sustained_switches": sum(sustained_switches(track, min_run) for track in labels)}
    raw = sum(v["raw_switches"] for v in per_video.values())
    sustained = sum(v["sustained_switches"] for v in per_video.values())
    return {"min_run_frames": min_run, "raw_switches": raw, "sustained_switches": sustained,
            "max_cut": raw / sustained if sustained else None, "videos": per_video}  # None: no bound (valid JSON, unlike inf)


def format_floor(floor: dict[str, Any]) -> str:
    bound = "without limit" if floor["max_cut"] is None else f"at most {floor['max_cut']:.1f}x"
    return (f"Real videos: {floor['raw_switches']} label switches without smoothing; {floor['sustained_switches']} of them separate labels "
            f"the CNN holds for {floor['min_run_frames']} frames or more, so a smoother that follows every such change cuts flicker "
            f"{bound}. Per video, held / raw switches: "
            + ", ".join(f"{name} {v['sustained_switches']} / {v['raw_switches']}" for name, v in floor["videos"].items()) + ".")


def smoother_cost(smoother: Smoother, probs: np.ndarray, features: np.ndarray, faces: int, frames: int, seed: int) -> float:
    """Median ms per face per frame of ``smoother.update`` with ``faces`` tracked faces (real CNN outputs)."""
    rng = np.random.default_rng(seed)
    ids = list(range(1, faces + 1))
    rows = rng.integers(len(probs), size=(frames, faces))
    smoother.reset()
    times = np.empty(frames)
    for t in range(frames):
        p, f = probs[rows[t]], features[rows[t]]
        tic = time.perf_counter()
        shown_labels(smoother, ids, smoother.update(ids, p, ids, features=f))
        times[t] = time.perf_counter() - tic
    smoother.reset()
    return float(np.median(times) * 1000.0 / faces)


def format_table(rows: list[dict[str, Any]], has_video: bool) -> str:
    none = rows[0]
    head = ["smoothing", "per-frame acc (synthetic)", "vs none", "median / mean latency (frames)", "transitions followed",
            "flicker synthetic (switches/s)"]
    if has_video:
        head += ["flicker real videos (switches/s/track)", "flicker cut vs none"]
    head += ["cost ms/face/frame (1 face / 4 faces)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [row["smoothing"], f"{row['accuracy']:.4f}", f"{100 * (row['accuracy'] - none['accuracy']):+.1f} pt",
                 f"{row['median_latency']:.1f} / {row['mean_latency']:.2f}", f"{100 * row['followed']:.1f}%", f"{row['flicker_synthetic']:.2f}"]
        if has_video:
            cut = none["flicker"] / row["flicker"] if row["flicker"] > 0 else float("inf")
            cells += [f"{row['flicker']:.3f}", f"{cut:.1f}x"]
        cells += [f"{row['cost_ms_1']:.4f} / {row['cost_ms_4']:.4f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def check_args(args: argparse.Namespace) -> list[SmoothingSetting]:
    """The settings to compare; out-of-range numbers and an unusable --json or --media are one-line errors before any work."""
    settings = settings_from(args.alphas, args.hysteresis, args.hysteresis_on, args.hysteresis_alpha)
    check_counts(args, {"images": 0, "views": 1, "occluded_views": 0, "sequences": 1, "length": 1, "cost_frames": 1, "sustained_frames": 1})
    if not args.fps > 0:
        raise InputError(f"--fps must be above 0 (the frame rate the synthetic sequences stand for), got {args.fps}")
    if args.json is not None:
        prepare_output(args.json, "--json")
    return settings


def media_videos(media: Path | None) -> list[Path]:
    """The .mp4/.mov videos of the --media folder (none without --media)."""
    if media is None:
        return []
    if not media.is_dir():
        raise InputError(f"--media {media} is not a folder; pass a folder of .mp4/.mov videos")
    videos = sorted(p for p in media.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    if not videos:
        raise InputError(f"--media {media} has no .mp4 or .mov videos")
    return videos


def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = check_args(args)
    find_source(Path(args.data))  # a wrong data path is reported before any model loads
    cnn_path = resolve_model_path(args.model)
    videos = media_videos(args.media)
    smoothers = {s: s.create(cnn_path) for s in settings}  # a missing head fails here, early
    with OnnxRuntimeEngine(cnn_path, threads=args.threads) as engine:
        split, label_set = ground_truth(engine.info, args.data, args.split, ferplus=args.ferplus)
        images, labels = split.images, split.labels
        if 0 < args.images < len(split):
            order = np.random.default_rng(args.seed).permutation(len(split))[:args.images]
            images, labels = images[order], labels[order]
        require_two_classes(labels, f"{args.split} at {args.data} ({label_set} labels)", "raise --images (0 = all) or pass data with more classes")
        features, probs = view_features(engine, images, clean_views=args.views, occluded_views=args.occluded_views, seed=args.seed + 7,
                                        jitter=ViewJitter(), progress=not args.quiet, desc=f"{args.split} views")
    plans = plan_sequences(labels, args.sequences, args.length, seed=20_000 + args.seed,
                           clean_views=args.views, occluded_views=args.occluded_views)
    flat_probs, flat_features = probs.reshape(-1, probs.shape[-1]), features.reshape(-1, features.shape[-1])
    recorded = record_videos(cnn_path, videos, args.detector, args.threads) if videos else []
    rows: list[dict[str, Any]] = []
    for setting, smoother in smoothers.items():
        row: dict[str, Any] = {"smoothing": setting.label, "name": setting.name, "alpha": setting.alpha if setting.name == "ema" else None,
                               "margin": setting.margin, "dwell": setting.dwell}
        row.update(synthetic_scores(plans, smooth_sequences(smoother, plans, probs, features), args.fps))
        row["cost_ms_1"] = smoother_cost(smoother, flat_probs, flat_features, 1, args.cost_frames, args.seed)
        row["cost_ms_4"] = smoother_cost(smoother, flat_probs, flat_features, 4, args.cost_frames, args.seed)
        if recorded:
            row.update(video_flicker(smoother, recorded))
        rows.append(row)
    true_flicker = flicker_rate(np.stack([p.label for p in plans]), args.fps)[0]
    result = {"model": str(cnn_path), "cnn_sha256": file_sha256(cnn_path), "synthetic": {
        "split": args.split, "label_set": label_set, "stills": int(len(labels)), "sequences": args.sequences, "length": args.length, "fps": args.fps,
        "views": args.views, "occluded_views": args.occluded_views, "true_label_switches_per_s": true_flicker},
        "videos": [str(v) for v in videos], "rows": rows, "table": format_table(rows, bool(videos))}
    if recorded:
        result["flicker_floor"] = flicker_floor(recorded, args.sustained_frames)
        result["table"] += "\n\n" + format_floor(result["flicker_floor"])
    if args.json:
        write_json(result, args.json)
    return result


def write_json(result: dict[str, Any], path: Path) -> Path:
    """Write ``result`` to ``path`` atomically; a path that cannot be written is a one-line OutputError."""
    with atomic_path(path, "--json") as tmp:
        tmp.write_text(json.dumps(result, indent=1))
    return path


if __name__ == "__main__":
    print(main(get_args_parser().parse_args())["table"])
