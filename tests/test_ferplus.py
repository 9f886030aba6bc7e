"""FER+ labels: majority / vote-distribution rules, row matching, an 8-class model trained on votes and
evaluated on majority labels end to end, and the counts of the real fer2013new.csv."""

import json

import numpy as np
import pytest

from emolive.models.errors import DataError
from emolive.models.labels import FERPLUS_EMOTIONS
from emolive.training.ferplus import VOTE_COLUMNS, ferplus_targets, majority_labels, read_ferplus, rows_of, vote_distributions

HEADER = "Usage,Image name," + ",".join(VOTE_COLUMNS)
#                 neu hap sur sad ang dis fea con unk NF
CASES = [
    ("clear", [0, 8, 1, 0, 1, 0, 0, 0, 0, 0], 1),
    ("singles-dropped", [5, 1, 1, 1, 1, 1, 0, 0, 0, 0], 0),  # single votes are noise: 5 of the remaining 5
    ("no-majority", [4, 0, 4, 0, 2, 0, 0, 0, 0, 0], -1),  # 4 of 10: no category has more than half
    ("unknown", [2, 0, 0, 0, 0, 0, 0, 0, 8, 0], -1),
    ("not-a-face", [0, 0, 0, 0, 0, 0, 0, 0, 0, 10], -1),
    ("contempt", [3, 0, 0, 0, 0, 0, 0, 7, 0, 0], 7),
    ("nine-votes", [0, 0, 0, 5, 4, 0, 0, 0, 0, 0], 3),
]


def _votes_csv(path, cases=CASES, usage="Training", blank_name=()):
    lines = [HEADER]
    for i, (name, votes, _) in enumerate(cases):
        image = "" if name in blank_name else f"fer{i:07d}.png"
        lines.append(f"{usage},{image}," + ",".join(map(str, votes)))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_majority_rule(tmp_path):
    table = read_ferplus(_votes_csv(tmp_path / "v.csv"))
    assert majority_labels(table).tolist() == [expected for _, _, expected in CASES]
    blanked = read_ferplus(_votes_csv(tmp_path / "b.csv", blank_name=("clear",)))
    assert majority_labels(blanked)[0] == -1  # a row without an image is not a face, whatever its votes


def test_vote_distributions(tmp_path):
    table = read_ferplus(_votes_csv(tmp_path / "v.csv"))
    dist, keep = vote_distributions(table)
    assert keep.tolist() == [True, True, True, False, False, True, True]  # ambiguous faces stay, unknown/NF go
    np.testing.assert_allclose(dist[0], np.eye(8)[1] * 8 / 8)  # the single surprise/anger votes are removed
    np.testing.assert_allclose(dist[2], [0.4, 0, 0.4, 0, 0.2, 0, 0, 0])
    np.testing.assert_allclose(dist[6], [0, 0, 0, 5 / 9, 4 / 9, 0, 0, 0], rtol=1e-6)
    np.testing.assert_allclose(dist[keep].sum(1), 1.0, rtol=1e-6)


def test_rows_match_by_csv_row_or_by_image_name(tmp_path):
    table = read_ferplus(_votes_csv(tmp_path / "v.csv"))
    assert rows_of(np.array([3, 0]), tmp_path).tolist() == [3, 0]
    (tmp_path / "fer2013_row_to_image.csv").write_text("row,Usage,emotion,image\n0,Training,3,train/happy/Training_1.jpg\n5,Training,6,train/neutral/Training_2.jpg\n")
    keys = np.array(["train/neutral/Training_2.jpg", "train/happy/Training_1.jpg"])
    rows = rows_of(keys, tmp_path / "fer2013.csv")  # the map is found beside the data
    assert rows.tolist() == [5, 0]
    targets = ferplus_targets(keys, "Training", table, rows, "ferplus-majority")
    assert targets.labels.tolist() == [7, 1] and targets.keep.all()
    with pytest.raises(DataError, match="are not in"):
        rows_of(np.array(["train/sad/Training_9.jpg"]), tmp_path / "fer2013.csv")
    with pytest.raises(DataError, match="PublicTest but FER\\+ row"):
        ferplus_targets(np.array([0]), "PublicTest", table, np.array([0]), "ferplus-majority")


def test_bad_votes_files_fail_clearly(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_ferplus(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("emotion,pixels,Usage\n0,1 2,Training\n")
    with pytest.raises(DataError, match="expected Usage,Image name"):
        read_ferplus(tmp_path / "bad.csv")
    (tmp_path / "text.csv").write_text(HEADER + "\nTraining,fer0.png,a,0,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DataError, match="non-integer vote"):
        read_ferplus(tmp_path / "text.csv")


def _ferplus_dataset(folder, n=320):
    """A FER2013 CSV whose images show one of 8 stripe patterns, and FER+ votes for that pattern's class.

    Every 10th row has no majority (votes split 4/4/2) and every 15th is voted not-a-face.
    """
    rng = np.random.default_rng(0)
    pixels_rows, vote_rows = ["emotion,pixels,Usage"], [HEADER]
    majority = {"Training": 0, "PublicTest": 0, "PrivateTest": 0}
    for i in range(n):
        cls = i % 8
        usage = "Training" if i % 5 < 3 else ("PublicTest" if i % 5 == 3 else "PrivateTest")
        image = np.zeros((48, 48), np.float32)
        image[:, cls * 5:cls * 5 + 10] = 200
        image += rng.normal(0, 20, image.shape)
        pixels_rows.append(f"{min(cls, 6)},{' '.join(map(str, np.clip(image, 0, 255).astype(np.uint8).ravel()))},{usage}")
        votes = [0] * 10
        if i % 15 == 0:
            votes[9] = 10
        elif i % 10 == 0:
            votes[cls], votes[(cls + 1) % 8], votes[8] = 4, 4, 2
        else:
            votes[cls], votes[(cls + 3) % 8] = 8, 2
            majority[usage] += 1
        vote_rows.append(f"{usage},fer{i:07d}.png," + ",".join(map(str, votes)))
    (folder / "fer2013.csv").write_text("\n".join(pixels_rows) + "\n")
    (folder / "fer2013new.csv").write_text("\n".join(vote_rows) + "\n")
    return folder / "fer2013.csv", majority


def test_eight_class_model_trained_on_votes_evaluates_on_majority_labels(tmp_path, monkeypatch, capsys):
    pytest.importorskip("torch")
    from emolive.models.onnx_io import read_onnx_info
    from emolive.realtime.cli import main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data, majority = _ferplus_dataset(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "-o", str(run), "--labels", "ferplus-votes", "--epochs", "4", "--batch-size", "32",
                 "--augment-strength", "0", "--ema-decay", "0", "--schedule", "cosine", "--mixup", "0.2", "--sampler", "balanced",
                 "--threads", "1"]) == 0
    info = read_onnx_info(run / "best.onnx")
    assert info.labels == FERPLUS_EMOTIONS and "FER+ vote distributions" in info.training_data
    capsys.readouterr()

    assert main(["eval", "--data", str(data), "--split", "PrivateTest", "--model", str(run / "best.onnx"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["label_set"] == "ferplus-majority" and metrics["labels"] == list(FERPLUS_EMOTIONS)
    assert metrics["n"] == majority["PrivateTest"]  # rows without a majority and not-a-face rows are left out
    assert metrics["accuracy"] > 0.5  # the stripe patterns are easy: the model learned from the votes

    assert main(["eval", "--data", str(data), "--model", str(run / "best.onnx"), "--labels", "fer2013"]) == 2
    assert "needs a model with the labels angry" in capsys.readouterr().err


@pytest.mark.data
def test_real_ferplus_counts():
    from conftest import DATA

    path = DATA / "ferplus" / "fer2013new.csv"
    if not path.is_file():
        pytest.skip(f"FER+ votes not present at {path} (see shared/data/README.md)")
    table = read_ferplus(path)
    assert len(table) == 35887 and (~table.has_image).sum() == 173
    labels = majority_labels(table)
    _, vote_keep = vote_distributions(table)
    counts = {split: (int((labels[table.usage == split] >= 0).sum()), int(vote_keep[table.usage == split].sum()))
              for split in ("Training", "PublicTest", "PrivateTest")}
    assert counts == {"Training": (25060, 28416), "PublicTest": (3199, 3555), "PrivateTest": (3153, 3552)}
    private = labels[(table.usage == "PrivateTest") & (labels >= 0)]
    assert np.bincount(private, minlength=8).tolist() == [1090, 893, 396, 384, 273, 18, 83, 16]
