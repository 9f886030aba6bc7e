"""Audit a FER2013 copy: ``emo-live audit --data PATH [-o DIR] [--suspects FILE]``.

Reports class balance per split, exact duplicates (same pixels), near-duplicates (see
:mod:`emolive.training.dedup`), duplicate groups whose labels disagree, duplicates shared between
Training, PublicTest and PrivateTest (leakage), and near-blank images. Writes ``audit.md``,
``audit.json`` and ``class_balance.png``; optionally a suspects CSV that ``emo-live train --exclude``
reads (Training rows duplicated in a test split, rows of conflicting-label groups, blank images).
"""

from __future__ import annotations

import csv
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emolive.models.errors import InputError
from emolive.models.labels import EMOTIONS
from emolive.realtime.sinks import atomic_path, make_folder, prepare_output
from emolive.training.data import SPLITS, find_source, load_fer2013
from emolive.training.dedup import HASH_BITS, connected_groups, exact_groups, near_duplicate_pairs
from emolive.training.ferplus import ROW_MAP_FILE, find_beside
from emolive.training.suspects import Suspect, write_suspects

@dataclass(frozen=True)
class AuditSettings:
    """Thresholds of the audit."""

    blank_std: float = 5.0  # pixel standard deviation below which an image counts as near-blank
    max_hamming: int = 6  # DCT-hash bits two near-duplicates may differ in
    min_correlation: float = 0.85  # pixel correlation a hash candidate needs to count as a near-duplicate

    def __post_init__(self) -> None:
        if not 0 <= self.max_hamming < HASH_BITS:
            raise InputError(f"--max-hamming must be from 0 to {HASH_BITS - 1} (bits of the {HASH_BITS}-bit hash), got {self.max_hamming}")


@dataclass(frozen=True)
class AuditResult:
    """Everything the audit found; ``summary`` and ``groups`` are JSON-ready."""

    source: str
    settings: AuditSettings
    summary: dict[str, Any]
    groups: list[dict[str, Any]]
    blank: list[dict[str, Any]]
    suspects: list[Suspect] = field(repr=False)
    seconds: float = 0.0


@dataclass(frozen=True)
class _Table:
    """All splits stacked: one entry per image."""

    images: np.ndarray
    labels: np.ndarray
    split: np.ndarray  # index into SPLITS
    keys: np.ndarray  # str
    rows: np.ndarray  # str, CSV row number ('' when unknown)
    names: np.ndarray  # str, image file name ('' when unknown)


def _row_map(source: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(row -> image, image -> row) from fer2013_row_to_image.csv beside the data, or empty maps."""
    path = find_beside(source, ROW_MAP_FILE)
    if path is None or not path.is_file():
        return {}, {}
    with path.open(newline="", encoding="utf-8") as handle:
        pairs = [(r["row"], r["image"]) for r in csv.DictReader(handle)]
    return dict(pairs), {image: row for row, image in pairs}


def _load(data: Path) -> tuple[Path, _Table]:
    source = find_source(data)
    splits = [load_fer2013(data, name) for name in SPLITS]
    keys = np.concatenate([s.keys.astype(str) for s in splits])
    to_image, to_row = _row_map(source)
    by_row = keys.size > 0 and keys[0].isdigit()
    rows = keys if by_row else np.array([to_row.get(k, "") for k in keys], dtype=str)
    names = np.array([to_image.get(k, "") for k in keys], dtype=str) if by_row else keys
    table = _Table(np.concatenate([s.images for s in splits]), np.concatenate([s.labels for s in splits]),
                   np.concatenate([np.full(len(s), k) for k, s in enumerate(splits)]), keys, rows, names)
    return source, table


def _member(t: _Table, i: int) -> dict[str, Any]:
    return {"split": SPLITS[t.split[i]], "key": str(t.keys[i]), "label": EMOTIONS[t.labels[i]]}


def audit(data: str | os.PathLike[str], settings: AuditSettings = AuditSettings()) -> AuditResult:
    """Run every check on the FER2013 copy at ``data``."""
    tic = time.perf_counter()
    source, t = _load(Path(data))
    n = len(t.labels)
    std = t.images.reshape(n, -1).std(axis=1)
    blank = std < settings.blank_std

    exact = exact_groups(t.images)
    _, representative = np.unique(exact, return_index=True)
    exact_pairs = np.stack([representative[exact], np.arange(n)], axis=1)
    near = near_duplicate_pairs(t.images, representative[~blank[representative]], max_distance=settings.max_hamming,
                                min_correlation=settings.min_correlation)
    group = connected_groups(n, np.concatenate([exact_pairs, near]))

    def grouped(ids: np.ndarray) -> list[np.ndarray]:
        order = np.argsort(ids, kind="stable")
        bounds = np.flatnonzero(np.diff(ids[order])) + 1
        return [m for m in np.split(order, bounds) if len(m) > 1]

    exact_sets, dup_sets = grouped(exact), grouped(group)
    is_exact_group = {int(group[m[0]]): bool((exact[m] == exact[m[0]]).all()) for m in dup_sets}

    def conflicting(sets: list[np.ndarray]) -> list[np.ndarray]:
        return [m for m in sets if len(np.unique(t.labels[m])) > 1]

    groups_json: list[dict[str, Any]] = []
    cross_pairs = {f"{a}-{b}": 0 for k, a in enumerate(SPLITS) for b in SPLITS[k + 1:]}
    leaked_rows = {name: 0 for name in SPLITS}
    reasons: dict[int, list[str]] = {}
    for members in dup_sets:
        splits_in = sorted(set(int(s) for s in t.split[members]))
        labels_in = sorted(set(int(y) for y in t.labels[members]))
        crosses, conflicts = len(splits_in) > 1, len(labels_in) > 1
        for k, a in enumerate(splits_in):
            for b in splits_in[k + 1:]:
                cross_pairs[f"{SPLITS[a]}-{SPLITS[b]}"] += 1
        if crosses:
            for s in splits_in:
                leaked_rows[SPLITS[s]] += int((t.split[members] == s).sum())
        for i in members:
            if conflicts:
                reasons.setdefault(int(i), []).append("conflicting_labels")
            if crosses and t.split[i] == 0 and (t.split[members] != 0).any():
                reasons.setdefault(int(i), []).append("duplicate_of_test_image")
        groups_json.append({"kind": "exact" if is_exact_group[int(group[members[0]])] else "near",
                            "size": len(members), "splits": [SPLITS[s] for s in splits_in],
                            "labels": [EMOTIONS[y] for y in labels_in], "conflicting_labels": conflicts, "cross_split": crosses,
                            "members": [_member(t, int(i)) for i in members]})
    for i in np.flatnonzero(blank):
        reasons.setdefault(int(i), []).append("blank")

    suspects = [Suspect(SPLITS[t.split[i]], str(t.keys[i]), str(t.rows[i]), str(t.names[i]), EMOTIONS[t.labels[i]], tuple(r))
                for i, r in sorted(reasons.items(), key=lambda item: (int(t.split[item[0]]), str(t.keys[item[0]])))]
    exact_conflicts, dup_conflicts = conflicting(exact_sets), conflicting(dup_sets)
    counts = {name: {EMOTIONS[c]: int(((t.split == k) & (t.labels == c)).sum()) for c in range(len(EMOTIONS))}
              for k, name in enumerate(SPLITS)}
    summary = {
        "images": n,
        "class_counts": counts,
        "exact_duplicates": {"groups": len(exact_sets), "images": int(sum(len(m) for m in exact_sets)),
                             "redundant_copies": int(sum(len(m) - 1 for m in exact_sets)),
                             "conflicting_label_groups": len(exact_conflicts),
                             "conflicting_label_images": int(sum(len(m) for m in exact_conflicts))},
        "near_or_exact_duplicates": {"groups": len(dup_sets), "images": int(sum(len(m) for m in dup_sets)),
                                     "groups_with_near_pairs": int(sum(not v for v in is_exact_group.values())),
                                     "near_pairs": int(len(near)),
                                     "conflicting_label_groups": len(dup_conflicts),
                                     "conflicting_label_images": int(sum(len(m) for m in dup_conflicts))},
        "cross_split": {"groups_by_split_pair": cross_pairs, "images_in_cross_split_groups": leaked_rows,
                        "training_images_duplicating_a_test_image": sum("duplicate_of_test_image" in r for r in reasons.values())},
        "blank_images": int(blank.sum()),
        "suspects": {"total": len(suspects), "training": sum(s.split == "Training" for s in suspects),
                     **{reason: sum(reason in s.reasons for s in suspects) for reason in ("conflicting_labels", "duplicate_of_test_image", "blank")}},
    }
    blank_json = [{**_member(t, int(i)), "std": round(float(std[i]), 2)} for i in np.flatnonzero(blank)]
    return AuditResult(str(source), settings, summary, groups_json, blank_json, suspects, round(time.perf_counter() - tic, 1))


def plot_class_balance(counts: dict[str, dict[str, int]], path: Path) -> Path:
    """One bar chart per split, bars in the overlay's emotion colours."""
    from emolive.realtime.report import _pyplot, _save, rgb

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(counts), figsize=(4.2 * len(counts), 3.6), layout="constrained")
    for ax, (split, by_class) in zip(np.atleast_1d(axes), counts.items()):
        bars = ax.bar(list(by_class), list(by_class.values()), color=[rgb(c) for c in by_class], edgecolor="black", linewidth=0.5)
        ax.bar_label(bars, fontsize=7)
        ax.set_title(f"{split} ({sum(by_class.values())} images)")
        ax.tick_params(axis="x", rotation=45)
        ax.grid(axis="y", alpha=0.3)
    np.atleast_1d(axes)[0].set_ylabel("images")
    fig.suptitle("Class balance per split")
    try:
        return _save(fig, path)
    finally:
        plt.close(fig)


def format_markdown(result: AuditResult, *, max_listed: int = 60) -> str:
    """audit.md: tables of every finding, and the conflicting / cross-split groups by key."""
    s, cfg = result.summary, result.settings
    classes = list(EMOTIONS)
    lines = ["# FER2013 data audit", "", f"Source: `{result.source}` ({s['images']} images, audited in {result.seconds:.1f} s).", "",
             "## Class balance", "", "| split | total | " + " | ".join(classes) + " |", "|---" * (len(classes) + 2) + "|"]
    for split, by_class in s["class_counts"].items():
        total = sum(by_class.values())
        lines.append(f"| {split} | {total} | " + " | ".join(f"{by_class[c]} ({by_class[c] / max(total, 1):.1%})" for c in classes) + " |")
    e, d, x = s["exact_duplicates"], s["near_or_exact_duplicates"], s["cross_split"]
    lines += ["", "![class balance](class_balance.png)", "", "## Duplicates", "",
              f"Exact: identical pixels (blake2b of the pixels). Near: DCT perceptual hash within {cfg.max_hamming} of 64 bits "
              f"and pixel correlation >= {cfg.min_correlation}; groups are connected components of both.", "",
              "| | groups | images | groups with conflicting labels | images in them |", "|---|---|---|---|---|",
              f"| exact duplicates | {e['groups']} | {e['images']} ({e['redundant_copies']} redundant copies) | {e['conflicting_label_groups']} | {e['conflicting_label_images']} |",
              f"| exact or near duplicates | {d['groups']} | {d['images']} | {d['conflicting_label_groups']} | {d['conflicting_label_images']} |",
              "", f"{d['groups_with_near_pairs']} groups hold at least one near (not pixel-identical) pair; {d['near_pairs']} near pairs confirmed.",
              "", "## Leakage between splits", "", "| splits | duplicate groups shared |", "|---|---|"]
    lines += [f"| {pair} | {count} |" for pair, count in x["groups_by_split_pair"].items()]
    lines += ["", "Images in cross-split groups: " + ", ".join(f"{k} {v}" for k, v in x["images_in_cross_split_groups"].items())
              + f"; Training images duplicating a test image: {x['training_images_duplicating_a_test_image']}.", "",
              "## Near-blank images", "", f"{s['blank_images']} images with pixel standard deviation < {cfg.blank_std}:", ""]
    lines += [f"- {b['split']} `{b['key']}` ({b['label']}, std {b['std']})" for b in result.blank[:max_listed]]
    sus = s["suspects"]
    lines += ["", "## Suspects", "", f"{sus['total']} images ({sus['training']} in Training): conflicting labels {sus['conflicting_labels']}, "
              f"Training duplicate of a test image {sus['duplicate_of_test_image']}, blank {sus['blank']}. "
              "Write them with `--suspects FILE`; `emo-live train --exclude FILE` leaves their Training rows out.", ""]
    for title, flag in (("Groups with conflicting labels", "conflicting_labels"), ("Groups across splits", "cross_split")):
        chosen = [g for g in result.groups if g[flag]]
        lines += [f"## {title} ({len(chosen)}{f', first {max_listed}' if len(chosen) > max_listed else ''})", "",
                  "| kind | members (split key label) |", "|---|---|"]
        lines += [f"| {g['kind']} | " + "; ".join(f"{m['split']} `{m['key']}` {m['label']}" for m in g["members"]) + " |" for g in chosen[:max_listed]]
        lines.append("")
    return "\n".join(lines)


def format_summary(result: AuditResult) -> str:
    """A few lines for the terminal."""
    s = result.summary
    e, d, x = s["exact_duplicates"], s["near_or_exact_duplicates"], s["cross_split"]
    return "\n".join([
        f"{s['images']} images ({', '.join(f'{k} {sum(v.values())}' for k, v in s['class_counts'].items())}), audited in {result.seconds:.1f} s",
        f"exact duplicates: {e['groups']} groups, {e['images']} images; {e['conflicting_label_groups']} groups ({e['conflicting_label_images']} images) with conflicting labels",
        f"exact or near duplicates: {d['groups']} groups, {d['images']} images; {d['conflicting_label_groups']} groups ({d['conflicting_label_images']} images) with conflicting labels",
        "groups shared across splits: " + ", ".join(f"{k} {v}" for k, v in x["groups_by_split_pair"].items())
        + f"; Training images duplicating a test image: {x['training_images_duplicating_a_test_image']}",
        f"near-blank images: {s['blank_images']}; suspects: {s['suspects']['total']} ({s['suspects']['training']} in Training)",
    ])


def check_outputs(folder: str | os.PathLike[str], suspects: str | os.PathLike[str] | None = None) -> None:
    """Create the suspects CSV's folder and the audit folder, or fail with a one-line OutputError before anything is written."""
    if suspects is not None:
        prepare_output(suspects, "--suspects")
    make_folder(folder, "-o")


def write_audit(result: AuditResult, folder: str | os.PathLike[str], suspects: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Write audit.md, audit.json, class_balance.png (and the suspects CSV) atomically; no file when one of the paths cannot be written."""
    check_outputs(folder, suspects)
    folder = Path(folder)
    files = {"png": plot_class_balance(result.summary["class_counts"], folder / "class_balance.png")}
    payload = {"source": result.source, "seconds": result.seconds, "settings": asdict(result.settings), **result.summary,
               "blank": result.blank, "groups": result.groups}
    for name, text in (("json", json.dumps(payload, indent=1)), ("md", format_markdown(result))):
        path = folder / f"audit.{name}"
        with atomic_path(path) as tmp:  # e.g. a folder named audit.json in the way: a one-line error
            tmp.write_text(text, encoding="utf-8")
        files[name] = path
    if suspects is not None:
        files["suspects"] = write_suspects(result.suspects, suspects)
    return files
