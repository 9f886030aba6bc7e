"""The suspects list written by ``emo-live audit --suspects`` and read by ``emo-live train --exclude``.

A CSV with columns ``split,key,row,image,label,reasons``: ``key`` is the row's key in the audited
source (CSV row number or image file name), ``row``/``image`` give both forms when
``fer2013_row_to_image.csv`` sits beside the data, so a list written from the CSV also filters the
image tarball and the other way round.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emolive.models.errors import DataError, OutputError
from emolive.training.data import FerSplit

COLUMNS: tuple[str, ...] = ("split", "key", "row", "image", "label", "reasons")
_KEY_COLUMNS = ("key", "row", "image")


@dataclass(frozen=True)
class Suspect:
    """One image a training run may leave out, and why."""

    split: str
    key: str
    row: str
    image: str
    label: str
    reasons: tuple[str, ...]


def write_suspects(suspects: Iterable[Suspect], path: str | os.PathLike[str]) -> Path:
    """Write the suspects CSV atomically (temporary file, then rename)."""
    path = Path(path)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for s in suspects:
        writer.writerow([s.split, s.key, s.row, s.image, s.label, ";".join(s.reasons)])
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part{os.getpid()}")
        tmp.write_text(buffer.getvalue(), encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({exc.strerror}); choose another --suspects path") from None
    return path


def read_excluded_keys(path: str | os.PathLike[str], split: str = "Training") -> frozenset[str]:
    """Every key form (key, row, image) of the rows of ``split`` listed in a suspects CSV."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"exclusion list {path} does not exist; write one with 'emo-live audit --data PATH --suspects FILE'")
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            columns = [c for c in _KEY_COLUMNS if c in (reader.fieldnames or ())]
            if not columns:
                raise DataError(f"{path} has none of the columns {', '.join(_KEY_COLUMNS)}; pass a CSV written by 'emo-live audit --suspects'")
            keys = {row[c] for row in reader if row.get("split", split) in (split, "", None) for c in columns if row.get(c)}
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read exclusion list {path} ({exc}); pass a CSV written by 'emo-live audit --suspects'") from None
    return frozenset(keys)


def exclude_keys(split: FerSplit, keys: frozenset[str] | set[str]) -> FerSplit:
    """``split`` without the rows whose key is in ``keys``; a list that matches nothing is an error (wrong data source)."""
    if not keys:
        return split
    drop = np.array([str(k) in keys for k in split.keys], dtype=bool)
    if not drop.any():
        raise DataError(f"none of the {len(keys)} excluded keys matches a {split.name} row of this dataset; "
                        "audit the same data source (or keep fer2013_row_to_image.csv beside it) and pass that list")
    keep = ~drop
    return FerSplit(split.name, split.images[keep], split.labels[keep], split.keys[keep])
