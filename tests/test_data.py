"""FER2013 readers: every layout users have gives the same splits, labels and images."""

import gzip
import tarfile

import cv2
import numpy as np
import pytest

from emolive.models.errors import DataError
from emolive.training.data import SPLITS, load_fer2013

CLASS_DIRS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")


def _dataset(n: int = 21):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (n, 48, 48), dtype=np.uint8)
    labels = np.arange(n) % 7
    usage = [SPLITS[i % 3] for i in range(n)]
    return images, labels, usage


def _write_csv(path, images, labels, usage):
    lines = ["emotion,pixels,Usage"] + [f"{y},{' '.join(map(str, img.ravel()))},{u}" for img, y, u in zip(images, labels, usage)]
    text = "\n".join(lines) + "\n"
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as handle:
            handle.write(text)
    else:
        path.write_text(text)


def _png(image):
    return cv2.imencode(".png", image)[1].tobytes()


def _write_folders(root, images, labels, usage):
    for i, (img, y, u) in enumerate(zip(images, labels, usage)):
        folder = root / ("train" if u == "Training" else "test") / CLASS_DIRS[y]
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{u}_{i:05d}.png").write_bytes(_png(img))


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize("name", ["fer2013.csv", "fer2013.csv.gz"])
def test_csv_reader_splits_by_usage(tmp_path, name):
    images, labels, usage = _dataset()
    _write_csv(tmp_path / name, images, labels, usage)
    for split in SPLITS:
        got = load_fer2013(tmp_path / name, split)
        mask = np.array(usage) == split
        np.testing.assert_array_equal(got.images, images[mask])
        np.testing.assert_array_equal(got.labels, labels[mask])
        np.testing.assert_array_equal(got.keys, np.flatnonzero(mask))  # CSV row numbers


def test_folder_and_tarball_give_the_same_data(tmp_path):
    images, labels, usage = _dataset()
    _write_folders(tmp_path / "folders", images, labels, usage)
    with tarfile.open(tmp_path / "fer.tar.gz", "w:gz") as archive:
        archive.add(tmp_path / "folders" / "train", arcname="train")
        archive.add(tmp_path / "folders" / "test", arcname="test")
    for split in SPLITS:
        a = load_fer2013(tmp_path / "folders", split)
        b = load_fer2013(tmp_path / "fer.tar.gz", split, cache=False)
        mask = np.array(usage) == split
        assert len(a) == mask.sum()
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        # Lossless PNGs: the pixels and labels are the originals.
        order = np.argsort([f"{i:05d}" for i in np.flatnonzero(mask)])
        assert sorted(map(tuple, a.images.reshape(len(a), -1))) == sorted(map(tuple, images[mask][order].reshape(len(a), -1)))


def test_second_load_comes_from_cache(tmp_path):
    images, labels, usage = _dataset()
    _write_csv(tmp_path / "fer2013.csv", images, labels, usage)
    first = load_fer2013(tmp_path / "fer2013.csv", "Training")
    assert list((tmp_path / "cache").glob("fer2013-*.npz"))
    second = load_fer2013(tmp_path / "fer2013.csv", "Training")
    np.testing.assert_array_equal(first.images, second.images)


def test_bad_dataset_paths_give_data_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_fer2013(tmp_path / "missing.csv", "Training")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no FER2013 data"):
        load_fer2013(tmp_path / "empty", "Training")
    (tmp_path / "fer2013.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="lacks the column"):
        load_fer2013(tmp_path / "fer2013.csv", "Training")
    with pytest.raises(DataError, match="unknown split"):
        load_fer2013(tmp_path / "fer2013.csv", "Validation")


def _set(values, index, text):
    values[index] = text
    return values


@pytest.mark.parametrize(("emotion", "edit", "message"), [
    ("x", None, "row 1 has emotion 'x'; FER2013 emotions are class ids 0-6"),
    ("9", None, "row 1 has emotion 9; FER2013 emotions are class ids 0-6"),
    ("-1", None, "row 1 has emotion -1; FER2013 emotions are class ids 0-6"),
    (None, lambda v: _set(v, 100, "256"), "row 1 has pixel values from 0 to 256; FER2013 pixels are 0-255"),  # uint8 would wrap it to 0
    (None, lambda v: _set(v, 7, "-3"), "row 1 has pixel values from -3 to 255; FER2013 pixels are 0-255"),
    (None, lambda v: _set(v, 5, "12.5"), "row 1 has non-integer pixels"),
    (None, lambda v: v[:-1], "row 1 has 2303 pixels; FER2013 rows have 2304"),
])
def test_bad_csv_rows_give_data_error_naming_the_row(tmp_path, emotion, edit, message):
    images, labels, usage = _dataset(n=4)
    images[1, 0, 0], images[1, -1, -1] = 0, 255
    _write_csv(tmp_path / "fer2013.csv", images, labels, usage)
    lines = (tmp_path / "fer2013.csv").read_text().splitlines()
    old_emotion, pixels, split = lines[2].split(",")  # data row 1 (row 0 is lines[1])
    values = edit(pixels.split()) if edit else pixels.split()
    lines[2] = f"{emotion or old_emotion},{' '.join(values)},{split}"
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as raised:
        load_fer2013(tmp_path / "fer2013.csv", "Training")
    assert str(tmp_path / "fer2013.csv") in str(raised.value)
    assert not list((tmp_path / "cache").glob("*.npz"))  # nothing half-read is cached


@pytest.mark.data
def test_real_fer2013_counts_match_the_dataset_card(fer_tarball):
    expected = {"Training": 28709, "PublicTest": 3589, "PrivateTest": 3589}
    for split, n in expected.items():
        got = load_fer2013(fer_tarball, split)
        assert len(got) == n
    assert load_fer2013(fer_tarball, "Training").class_counts()["disgust"] == 436
