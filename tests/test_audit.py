"""``emo-live audit`` and ``train --exclude``: planted duplicates, conflicts, leaks and blank images are found; clean data is clean."""

import csv
import json

import numpy as np
import pytest

from emolive.models.errors import DataError
from emolive.realtime.cli import main
from emolive.training.audit import audit
from emolive.training.data import SPLITS, FerSplit
from emolive.training.dedup import dct_hash, hamming_pairs, near_duplicate_pairs, popcount
from emolive.training.suspects import exclude_keys, read_excluded_keys


def _faces(n, seed=0):
    """Distinct smooth random images (low-frequency structure, like faces at 48x48)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (n, 6, 6)).astype(np.float32)
    import cv2

    return np.stack([np.clip(cv2.resize(s, (48, 48), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 4, (48, 48)), 0, 255)
                     for s in small]).astype(np.uint8)


def _write_csv(path, images, labels, usage):
    rows = ["emotion,pixels,Usage"] + [f"{y},{' '.join(map(str, img.ravel()))},{u}" for img, y, u in zip(images, labels, usage)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _clean(n=60):
    images = _faces(n)
    labels = np.arange(n) % 7
    usage = [SPLITS[0] if i % 4 < 2 else SPLITS[1 + i % 2] for i in range(n)]
    return images, labels, usage


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))


def test_hamming_pairs_match_brute_force():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 300, dtype=np.uint64)
    flips = np.array([sum(np.uint64(1) << np.uint64(b) for b in rng.choice(64, k, replace=False)) for k in rng.integers(0, 9, 300)], dtype=np.uint64)
    hashes = np.concatenate([base, base ^ flips])
    n = len(hashes)
    distance = popcount((hashes[:, None] ^ hashes[None, :]).ravel()).reshape(n, n)
    for t in (0, 3, 6):
        found = {(int(i), int(j)): int(d) for i, j, d in hamming_pairs(hashes, t)}
        i, j = np.nonzero(np.triu(distance <= t, k=1))
        assert found == {(int(a), int(b)): int(distance[a, b]) for a, b in zip(i, j)}
        assert t < 6 or len(found) > 100  # the planted flips of up to 6 bits are there to find


def test_dct_hash_ignores_brightness_and_small_noise_but_separates_faces():
    images = _faces(20)
    brighter = np.clip(images.astype(int) * 0.8 + 30, 0, 255).astype(np.uint8)
    noisy = np.clip(images + np.random.default_rng(1).normal(0, 3, images.shape), 0, 255).astype(np.uint8)
    h, hb, hn = dct_hash(images), dct_hash(brighter), dct_hash(noisy)
    assert popcount(h ^ hb).max() <= 4 and popcount(h ^ hn).max() <= 6
    assert len(near_duplicate_pairs(images)) == 0
    both = np.concatenate([images, noisy])
    assert {(int(i), int(j)) for i, j in near_duplicate_pairs(both)} == {(k, k + 20) for k in range(20)}


def test_audit_finds_nothing_on_clean_data(tmp_path, cache):
    data = _write_csv(tmp_path / "fer2013.csv", *_clean())
    result = audit(data)
    s = result.summary
    assert s["exact_duplicates"]["groups"] == 0 and s["near_or_exact_duplicates"]["groups"] == 0
    assert s["blank_images"] == 0 and s["suspects"]["total"] == 0 and result.groups == []
    assert all(v == 0 for v in s["cross_split"]["groups_by_split_pair"].values())


def test_audit_finds_planted_problems_and_training_excludes_them(tmp_path, cache, capsys):
    images, labels, usage = _clean()
    images, labels, usage = list(images), list(labels), list(usage)
    train = [i for i, u in enumerate(usage) if u == "Training"]
    private = [i for i, u in enumerate(usage) if u == "PrivateTest"]
    plant = []  # (pixels, label, usage)
    plant.append((images[train[0]].copy(), labels[train[0]], "Training"))  # exact, same label, same split: redundant only
    plant.append((images[train[1]].copy(), (labels[train[1]] + 1) % 7, "Training"))  # exact, conflicting label
    plant.append((np.clip(images[private[0]].astype(int) + 12, 0, 255).astype(np.uint8), labels[private[0]], "Training"))  # near, leak
    plant.append((np.zeros((48, 48), np.uint8), 3, "Training"))  # blank
    for pixels, label, split in plant:
        images.append(pixels), labels.append(label), usage.append(split)
    data = _write_csv(tmp_path / "fer2013.csv", np.stack(images), np.array(labels), usage)

    out, suspects = tmp_path / "audit", tmp_path / "suspects.csv"
    assert main(["audit", "--data", str(data), "-o", str(out), "--suspects", str(suspects)]) == 0
    report = json.loads((out / "audit.json").read_text())
    assert (out / "audit.md").is_file() and (out / "class_balance.png").stat().st_size > 0
    assert report["exact_duplicates"] == {"groups": 2, "images": 4, "redundant_copies": 2, "conflicting_label_groups": 1, "conflicting_label_images": 2}
    assert report["near_or_exact_duplicates"]["groups"] == 3 and report["near_or_exact_duplicates"]["groups_with_near_pairs"] == 1
    assert report["cross_split"]["groups_by_split_pair"] == {"Training-PublicTest": 0, "Training-PrivateTest": 1, "PublicTest-PrivateTest": 0}
    assert report["blank_images"] == 1
    assert report["class_counts"]["Training"]["happy"] == sum(1 for y, u in zip(labels, usage) if u == "Training" and y == 3)
    n = len(labels)
    expected = {(str(train[1]), "conflicting_labels"), (str(n - 3), "conflicting_labels"),
                (str(n - 2), "duplicate_of_test_image"), (str(n - 1), "blank")}
    with suspects.open() as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["key"], r["reasons"]) for r in rows} == expected and all(r["split"] == "Training" for r in rows)
    assert "Training-PrivateTest | 1" in (out / "audit.md").read_text()

    keys = read_excluded_keys(suspects)
    kept = exclude_keys(FerSplit("Training", np.stack(images)[:3], np.array(labels[:3]), np.array([0, train[1], 2])), keys)
    assert list(kept.keys) == [0, 2]
    with pytest.raises(DataError, match="matches"):
        exclude_keys(FerSplit("Training", np.stack(images)[:1], np.array(labels[:1]), np.array(["train/x/Training_1.jpg"])), keys)

    pytest.importorskip("torch")
    capsys.readouterr()
    assert main(["train", "--data", str(data), "-o", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "16", "--threads", "1",
                 "--augment-strength", "0", "--ema-decay", "0", "--no-export", "--exclude", str(suspects)]) == 0
    assert "excluded 4 Training images" in capsys.readouterr().out


def test_audit_bad_data_path_is_one_line_error(tmp_path, capsys):
    assert main(["audit", "--data", str(tmp_path / "missing.csv"), "-o", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emo-live: error: dataset path") and err.count("\n") == 1
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("bits", ["64", "-1"])
def test_max_hamming_out_of_range_is_one_line_error_before_the_audit(tmp_path, cache, capsys, bits):
    data = _write_csv(tmp_path / "fer2013.csv", *_clean(14))
    assert main(["audit", "--data", str(data), "-o", str(tmp_path / "a"), "--max-hamming", bits]) == 2
    err = capsys.readouterr().err
    assert err == f"emo-live: error: --max-hamming must be from 0 to 63 (bits of the 64-bit hash), got {bits}\n"
    assert not (tmp_path / "a").exists()


def test_unwritable_suspects_path_leaves_no_audit_files(tmp_path, cache, capsys):
    data = _write_csv(tmp_path / "fer2013.csv", *_clean(14))
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["audit", "--data", str(data), "-o", str(tmp_path / "a"), "--suspects", str(blocker / "suspects.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emo-live: error: cannot create output folder {blocker}: {blocker} is a file; choose another location with --suspects") and err.count("\n") == 1
    assert not (tmp_path / "a").exists()  # no audit.md, audit.json or class_balance.png half of the outputs


def test_unusable_output_paths_fail_before_the_audit_runs(tmp_path, monkeypatch, capsys):
    import emolive.training.audit as audit_module

    monkeypatch.setattr(audit_module, "audit", lambda *args, **kwargs: pytest.fail("the audit ran before its outputs were checked"))
    (tmp_path / "file").write_text("")
    data = _write_csv(tmp_path / "fer2013.csv", *_clean(14))
    assert main(["audit", "--data", str(data), "-o", str(tmp_path / "file" / "a")]) == 2
    assert "is a file; choose another location with -o" in capsys.readouterr().err


def test_exclude_list_missing_is_one_line_error(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_excluded_keys(tmp_path / "nope.csv")


@pytest.mark.data
def test_real_fer2013_audit_finds_known_duplicates_and_leaks(fer_tarball):
    result = audit(fer_tarball)
    s = result.summary
    assert s["images"] == 35887 and s["class_counts"]["Training"]["disgust"] == 436
    assert s["exact_duplicates"]["groups"] > 1000 and s["exact_duplicates"]["conflicting_label_groups"] >= 47
    assert s["cross_split"]["groups_by_split_pair"]["Training-PrivateTest"] > 100
    assert 10 <= s["blank_images"] <= 30
    assert result.seconds < 60
