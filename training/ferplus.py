"""FER+ labels (Barsoum et al. 2016) for the FER2013 images: majority labels or vote distributions.

``fer2013new.csv`` holds 10 annotators' votes per FER2013 CSV row (same order and Usage): 8 emotions
(:data:`FERPLUS_EMOTIONS` order), ``unknown`` and ``NF`` (not a face). The rules, applied per row:

* Rows without an image name (not a face) are dropped.
* A single vote for a category is treated as annotator noise and removed (the FER+ authors' outlier rule).
* ``majority``: the label is the category holding more than half of the remaining votes; the row is
  dropped when no category has that majority or when it is ``unknown``/``NF``. A strict majority is
  unique, so there are no ties to break.
* ``votes``: the target is the remaining emotion votes normalized to sum 1; the row is kept when the
  emotion categories hold more than half of the remaining votes (mostly seen as a face with an
  emotion), so ambiguous faces stay in training with a spread-out target.

Images are matched to rows by the split's ``keys``: CSV row numbers for the Kaggle CSV, or file names
of the image layout through ``fer2013_row_to_image.csv``.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.models.errors import DataError
from emolive.models.labels import FERPLUS_EMOTIONS

VOTE_COLUMNS: tuple[str, ...] = ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt", "unknown", "NF")
LABEL_MODES: tuple[str, ...] = ("fer2013", "ferplus-majority", "ferplus-votes")
FERPLUS_FILE = "fer2013new.csv"
ROW_MAP_FILE = "fer2013_row_to_image.csv"


@dataclass(frozen=True)
class FerPlusVotes:
    """The FER+ table: per FER2013 CSV row its Usage, whether it has an image, and its 10 vote counts."""

    usage: np.ndarray
    has_image: np.ndarray
    votes: np.ndarray

    def __len__(self) -> int:
        return len(self.usage)


def read_ferplus(path: str | os.PathLike[str]) -> FerPlusVotes:
    """Parse ``fer2013new.csv``; a missing file or wrong header raises DataError naming the fix."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"FER+ votes file {path} does not exist; pass --ferplus with the path to {FERPLUS_FILE}")
    usage, has_image, votes = [], [], []
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if tuple(header[2:]) != VOTE_COLUMNS:
                raise DataError(f"{path} has header {','.join(header)}; expected Usage,Image name,{','.join(VOTE_COLUMNS)} (FER+ fer2013new.csv)")
            for line, row in enumerate(reader, start=2):
                if len(row) != 2 + len(VOTE_COLUMNS):
                    raise DataError(f"{path} line {line} has {len(row)} fields; expected {2 + len(VOTE_COLUMNS)}")
                usage.append(row[0])
                has_image.append(bool(row[1].strip()))
                votes.append([int(v) for v in row[2:]])
    except ValueError as exc:
        raise DataError(f"{path} holds a non-integer vote ({exc}); check it is the FER+ fer2013new.csv") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path} ({exc}); check it is the FER+ fer2013new.csv") from None
    return FerPlusVotes(np.array(usage), np.array(has_image, dtype=bool), np.array(votes, dtype=np.int64).reshape(-1, len(VOTE_COLUMNS)))


def _denoised(votes: np.ndarray) -> np.ndarray:
    return np.where(votes <= 1, 0, votes)


def majority_labels(table: FerPlusVotes) -> np.ndarray:
    """Per row the FER+ class id (index into :data:`FERPLUS_EMOTIONS`), or -1 where the row is dropped."""
    votes = _denoised(table.votes)
    top = votes.argmax(axis=1)
    has_majority = votes.max(axis=1) * 2 > votes.sum(axis=1)
    keep = table.has_image & has_majority & (top < len(FERPLUS_EMOTIONS))
    return np.where(keep, top, -1)


def vote_distributions(table: FerPlusVotes) -> tuple[np.ndarray, np.ndarray]:
    """Per row the emotion-vote distribution (N, 8) float32 and a keep mask (N,) (see the module rules)."""
    votes = _denoised(table.votes)
    emotion = votes[:, :len(FERPLUS_EMOTIONS)].astype(np.float64)
    emotion_total = emotion.sum(axis=1)
    keep = table.has_image & (emotion_total * 2 > votes.sum(axis=1))
    dist = np.divide(emotion, emotion_total[:, None], out=np.zeros_like(emotion), where=emotion_total[:, None] > 0)
    return dist.astype(np.float32), keep


def find_beside(data: str | os.PathLike[str], name: str) -> Path | None:
    """Look for ``name`` next to the FER2013 data: in its folder, its parent, and their ferplus/ and fer2013/ subfolders."""
    start = Path(data).resolve()
    folders = [start] if start.is_dir() else []
    folders += [start.parent, start.parent.parent]
    for folder in folders:
        for candidate in (folder / name, folder / "ferplus" / name, folder / "fer2013" / name):
            if candidate.is_file():
                return candidate
    return None


def rows_of(keys: np.ndarray, data: str | os.PathLike[str], row_map: str | os.PathLike[str] | None = None) -> np.ndarray:
    """FER2013 CSV row numbers of a split's ``keys`` (row numbers already, or image-layout file names)."""
    if keys.dtype.kind in "iu":
        return keys.astype(np.int64)
    path = Path(row_map) if row_map else find_beside(data, ROW_MAP_FILE)
    if path is None or not path.is_file():
        raise DataError(f"images are keyed by file name, so FER+ labels need {ROW_MAP_FILE}; put it beside the data or use the FER2013 CSV")
    with open(path, newline="", encoding="utf-8") as handle:
        index = {row["image"]: int(row["row"]) for row in csv.DictReader(handle)}
    missing = [str(k) for k in keys if str(k) not in index]
    if missing:
        raise DataError(f"{len(missing)} images (e.g. {missing[0]}) are not in {path}; it must list every image of the FER2013 layout")
    return np.array([index[str(k)] for k in keys], dtype=np.int64)


@dataclass(frozen=True)
class FerPlusTargets:
    """FER+ targets for the images of one split: which images are kept, their majority class and vote distribution."""

    keep: np.ndarray
    labels: np.ndarray
    distributions: np.ndarray


def ferplus_targets(keys: np.ndarray, split: str, table: FerPlusVotes, rows: np.ndarray, mode: str) -> FerPlusTargets:
    """Targets for a split's images: ``mode`` ``ferplus-majority`` keeps majority rows, ``ferplus-votes`` keeps vote rows.

    ``labels`` is the majority class where one exists, else the argmax of the distribution.
    """
    if mode not in ("ferplus-majority", "ferplus-votes"):
        raise ValueError(f"unknown FER+ mode '{mode}'")
    if len(rows) and (rows.min() < 0 or rows.max() >= len(table)):
        raise DataError(f"FER+ table has {len(table)} rows but the data refers to row {rows.max()}; use the matching FER2013 CSV and fer2013new.csv")
    wrong = np.flatnonzero(table.usage[rows] != split)
    if len(wrong):
        raise DataError(f"image {keys[wrong[0]]} is {split} but FER+ row {rows[wrong[0]]} is {table.usage[rows[wrong[0]]]}; the FER+ file does not match this FER2013 copy")
    majority = majority_labels(table)[rows]
    dist, vote_keep = vote_distributions(table)
    dist, vote_keep = dist[rows], vote_keep[rows]
    keep = majority >= 0 if mode == "ferplus-majority" else vote_keep
    labels = np.where(majority >= 0, majority, dist.argmax(axis=1))
    return FerPlusTargets(keep, labels.astype(np.int64), dist)
