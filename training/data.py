"""FER2013 readers for the formats users have.

* Kaggle's ``fer2013.csv`` (or ``.csv.gz``): columns ``emotion,pixels,Usage``.
* Class folders ``train/<class>/*.jpg`` and ``test/<class>/*.jpg`` whose file-name prefixes
  (``Training_``, ``PublicTest_``, ``PrivateTest_``) give the original split; read from a folder or
  straight from a ``.tar``/``.tar.gz``/``.zip``-free tarball.
* A folder holding one of those files (e.g. ``../shared/data`` or ``../shared/data/fer2013``).

Decoded splits are cached as ``.npz`` under ``$EMOLIVE_CACHE`` (default ``~/.cache/emolive``), keyed
by the source's path, size and modification time.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from emolive.models.errors import DataError
from emolive.models.labels import EMOTION_TO_INDEX, EMOTIONS

SPLITS: tuple[str, ...] = ("Training", "PublicTest", "PrivateTest")
IMAGE_SIZE = 48
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


@dataclass(frozen=True)
class FerSplit:
    """One split of FER2013: uint8 images (N, 48, 48) and class ids (N,) in :data:`EMOTIONS` order.

    ``keys`` identify each image in its source (CSV row number, or the file name inside the image
    layout) so audits and FER+ labels can refer back to it.
    """

    name: str
    images: np.ndarray
    labels: np.ndarray
    keys: np.ndarray

    def __post_init__(self) -> None:
        n = len(self.labels)
        if self.images.shape != (n, IMAGE_SIZE, IMAGE_SIZE) or self.images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 ({n}, 48, 48), got {self.images.dtype} {self.images.shape}")
        if len(self.keys) != n:
            raise ValueError(f"keys must have {n} entries, got {len(self.keys)}")

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> dict[str, int]:
        counts = np.bincount(self.labels, minlength=len(EMOTIONS))
        return {name: int(c) for name, c in zip(EMOTIONS, counts)}


def load_fer2013(path: str | os.PathLike[str], split: str, *, cache: bool = True) -> FerSplit:
    """Load one split (``Training``, ``PublicTest`` or ``PrivateTest``) from any supported layout."""
    if split not in SPLITS:
        raise DataError(f"unknown split '{split}'; use one of {', '.join(SPLITS)}")
    source = find_source(Path(path))
    cache_file = _cache_path(source) if cache else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file, allow_pickle=False) as data:
            if f"{split}_images" in data:
                return FerSplit(split, data[f"{split}_images"], data[f"{split}_labels"], data[f"{split}_keys"])
    splits = _read_all(source)
    if cache_file is not None:
        _write_cache(cache_file, splits)
    return splits[split]


def find_source(path: Path) -> Path:
    """Resolve a user path to a CSV, tarball or class-folder root."""
    if not path.exists():
        raise DataError(f"dataset path {path} does not exist; pass --data with fer2013.csv(.gz), the image tarball, or a folder with train/ and test/")
    if path.is_file():
        if _is_csv(path) or _is_tar(path):
            return path
        raise DataError(f"{path} is not a FER2013 CSV or tarball; pass fer2013.csv(.gz) or fer2013_images.tar.gz")
    if (path / "train").is_dir() or (path / "test").is_dir():
        return path
    for candidate in sorted(path.rglob("*")):
        if candidate.is_file() and candidate.name.startswith("fer2013") and (_is_tar(candidate) or (_is_csv(candidate) and "notes" not in candidate.name and "row_to" not in candidate.name)):
            return candidate
    raise DataError(f"no FER2013 data found under {path}; it needs fer2013.csv(.gz), fer2013_images.tar.gz, or train/ and test/ folders")


def _is_csv(path: Path) -> bool:
    return path.name.endswith((".csv", ".csv.gz"))


def _is_tar(path: Path) -> bool:
    return path.name.endswith((".tar", ".tar.gz", ".tgz"))


def _read_all(source: Path) -> dict[str, FerSplit]:
    if source.is_file() and _is_csv(source):
        return _read_csv(source)
    return _collect(_iter_tar(source) if source.is_file() else _iter_folder(source))


def _read_csv(path: Path) -> dict[str, FerSplit]:
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    keys: dict[str, list[int]] = {s: [] for s in SPLITS}
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", newline="") as handle:
            reader = csv.DictReader(handle)
            missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
            if missing:
                raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}; it needs Kaggle's header emotion,pixels,Usage")
            for row_index, row in enumerate(reader):
                usage = row["Usage"]
                if usage not in images:
                    raise DataError(f"{path} row {row_index} has Usage '{usage}'; expected one of {', '.join(SPLITS)}")
                images[usage].append(_parse_pixels(row["pixels"], path, row_index))
                labels[usage].append(_parse_label(row["emotion"], path, row_index))
                keys[usage].append(row_index)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {path} ({exc}); check the file is a complete FER2013 CSV") from None
    return {s: _make_split(s, images[s], labels[s], np.array(keys[s], dtype=np.int64)) for s in SPLITS}


def _parse_pixels(text: str | None, path: Path, row_index: int) -> np.ndarray:
    """One CSV row's ``pixels``: 2304 integers 0..255 -> a (48, 48) uint8 image, or a DataError naming the row."""
    try:
        values = np.array((text or "").split(), dtype=np.int64)
    except ValueError:
        raise DataError(f"{path} row {row_index} has non-integer pixels; FER2013 pixels are 2304 integers 0-255 separated by spaces") from None
    if values.size != IMAGE_SIZE * IMAGE_SIZE:
        raise DataError(f"{path} row {row_index} has {values.size} pixels; FER2013 rows have 2304 (48x48)")
    if values.min() < 0 or values.max() > 255:
        raise DataError(f"{path} row {row_index} has pixel values from {values.min()} to {values.max()}; FER2013 pixels are 0-255")
    return values.astype(np.uint8).reshape(IMAGE_SIZE, IMAGE_SIZE)


def _parse_label(text: str | None, path: Path, row_index: int) -> int:
    """One CSV row's ``emotion``: a class id 0..6, or a DataError naming the row."""
    try:
        label = int(text or "")
    except ValueError:
        raise DataError(f"{path} row {row_index} has emotion {text!r}; FER2013 emotions are class ids 0-{len(EMOTIONS) - 1} ({', '.join(EMOTIONS)})") from None
    if not 0 <= label < len(EMOTIONS):
        raise DataError(f"{path} row {row_index} has emotion {label}; FER2013 emotions are class ids 0-{len(EMOTIONS) - 1} ({', '.join(EMOTIONS)})")
    return label


def _split_of(name: str) -> str | None:
    base = name.rsplit("/", 1)[-1]
    for split in SPLITS:
        if base.startswith(split + "_"):
            return split
    return None


def _class_of(name: str) -> int | None:
    parts = name.replace("\\", "/").split("/")
    return EMOTION_TO_INDEX.get(parts[-2]) if len(parts) >= 2 else None


def _iter_tar(path: Path) -> Iterator[tuple[str, bytes]]:
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                if member.isfile() and member.name.lower().endswith(_IMAGE_SUFFIXES):
                    handle = archive.extractfile(member)
                    if handle is not None:
                        yield member.name, handle.read()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"cannot read {path} ({exc}); check the tarball is complete") from None


def _iter_folder(root: Path) -> Iterator[tuple[str, bytes]]:
    for file in sorted(root.rglob("*")):
        if file.is_file() and file.suffix.lower() in _IMAGE_SUFFIXES:
            yield file.relative_to(root).as_posix(), file.read_bytes()


def _collect(entries: Iterator[tuple[str, bytes]]) -> dict[str, FerSplit]:
    images: dict[str, list[np.ndarray]] = {s: [] for s in SPLITS}
    labels: dict[str, list[int]] = {s: [] for s in SPLITS}
    keys: dict[str, list[str]] = {s: [] for s in SPLITS}
    for name, payload in entries:
        split, label = _split_of(name), _class_of(name)
        if split is None or label is None:
            continue
        image = cv2.imdecode(np.frombuffer(payload, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"cannot decode image {name}; the dataset file is damaged")
        if image.shape != (IMAGE_SIZE, IMAGE_SIZE):
            image = cv2.resize(image, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_AREA)
        images[split].append(image)
        labels[split].append(label)
        keys[split].append(name)
    if not any(labels.values()):
        raise DataError("no FER2013 images found; files must sit in <class>/ folders and start with Training_, PublicTest_ or PrivateTest_")
    order = {s: np.argsort(np.array(keys[s], dtype=str), kind="stable") for s in SPLITS}
    return {
        s: _make_split(s, [images[s][i] for i in order[s]], [labels[s][i] for i in order[s]],
                       np.array(keys[s], dtype=str)[order[s]])
        for s in SPLITS
    }


def _make_split(name: str, images: list[np.ndarray], labels: list[int], keys: np.ndarray) -> FerSplit:
    array = np.stack(images) if images else np.empty((0, IMAGE_SIZE, IMAGE_SIZE), dtype=np.uint8)
    return FerSplit(name, array, np.array(labels, dtype=np.int64), keys)


def _cache_path(source: Path) -> Path | None:
    root = Path(os.environ.get("EMOLIVE_CACHE", Path.home() / ".cache" / "emolive"))
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|v1".encode()).hexdigest()[:16]
    return root / f"fer2013-{key}.npz"


def _write_cache(path: Path, splits: dict[str, FerSplit]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for name, split in splits.items():
        arrays[f"{name}_images"], arrays[f"{name}_labels"], arrays[f"{name}_keys"] = split.images, split.labels, split.keys
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        tmp = path.with_name(path.name + f".{os.getpid()}.part")
        tmp.write_bytes(buffer.getvalue())
        os.replace(tmp, path)
    except OSError:
        pass  # the cache is an optimization; a read-only home must not stop training
