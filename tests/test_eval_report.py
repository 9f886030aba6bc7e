"""``emo-live eval --report`` and ``emo-live compare``: files written, numbers equal scikit-learn's, run folders and bad input."""

import json
import shutil

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_recall_fscore_support, roc_auc_score

from emolive.realtime.cli import main
from emolive.realtime.engines import OnnxRuntimeEngine, softmax
from emolive.training.data import SPLITS, load_fer2013
from emolive.training.eval_report import valence
from emolive.training.evaluate import predict_split

pytest.importorskip("torch")


def _csv(path, n=140):
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i in range(n):
        image = rng.integers(0, 256, (48, 48)).astype(np.uint8)
        rows.append(f"{i % 7},{' '.join(map(str, image.ravel()))},{SPLITS[i % 3]}")
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.fixture()
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    return _csv(tmp_path / "fer2013.csv")


def _history():
    return [{"epoch": e, "train_loss": 2.0 - 0.1 * e, "train_accuracy": 0.2 + 0.05 * e, "val_loss": 1.9 - 0.05 * e,
             "val_accuracy": 0.25 + 0.03 * e, "wall_seconds": 30.0 * e} for e in range(1, 5)]


def _conv_and_linear_flops(network):
    """2 x multiply-adds of every convolution and linear layer, counted from the layer shapes by forward hooks."""
    import torch

    total = []

    def hook(module, inputs, output):
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total.append(2 * output.numel() * k)
        else:
            total.append(2 * output.numel() * module.in_features)

    for module in network.modules():
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            module.register_forward_hook(hook)
    with torch.no_grad():
        network(torch.zeros(1, 1, 48, 48))
    return sum(total)


def test_report_numbers_agree_with_sklearn(tiny_model, data, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "history.json").write_text(json.dumps(_history()))
    out = tmp_path / "report"
    assert main(["eval", "--model", str(tiny_model), "--data", str(data), "--split", "PrivateTest", "--report", str(out), "--run", str(run)]) == 0
    assert "accuracy" in capsys.readouterr().out
    for name in ("report.md", "metrics.json", "confusion_matrix.png", "roc_per_class.png", "roc_valence.png", "reliability.png", "training_curves.png"):
        assert (out / name).stat().st_size > 0, name
    m = json.loads((out / "metrics.json").read_text())

    fer = load_fer2013(data, "PrivateTest")
    with OnnxRuntimeEngine(tiny_model) as engine:
        probs = softmax(predict_split(engine, fer, progress=False, logits=True), engine.info.temperature)
    y, predicted = fer.labels, probs.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=range(7), zero_division=0)
    assert m["n"] == len(y) == 46
    assert m["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert m["macro_f1"] == pytest.approx(f1_score(y, predicted, average="macro", labels=range(7), zero_division=0))
    assert [m["per_class"][n]["recall"] for n in m["labels"]] == pytest.approx(recall.tolist())
    assert [m["per_class"][n]["support"] for n in m["labels"]] == support.tolist()
    assert m["macro_auc"] == pytest.approx(roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-6)
    assert m["roc_auc"]["happy"] == pytest.approx(roc_auc_score(y == 3, probs[:, 3]), abs=1e-6)
    assert np.array(m["confusion_matrix"]).sum() == len(y)

    negative_or_positive = np.isin(y, [0, 1, 2, 3, 4, 5])
    truth = np.isin(y[negative_or_positive], [3, 5])
    p = probs[negative_or_positive]
    score = p[:, [3, 5]].sum(1) / p[:, [0, 1, 2, 3, 4, 5]].sum(1)
    assert m["valence"]["n"] == negative_or_positive.sum() and m["valence"]["n_positive"] == truth.sum()
    assert m["valence"]["auc"] == pytest.approx(roc_auc_score(truth, score), abs=1e-6)
    assert m["valence"]["accuracy"] == pytest.approx(((score > 0.5) == truth).mean())
    assert m["training"]["best_epoch"] == 4 and m["training"]["epochs"] == 4
    text = (out / "report.md").read_text()
    assert f"| {m['accuracy']:.4f} | {m['macro_f1']:.4f} |" in text and "training_curves.png" in text


def test_valence_leaves_neutral_out():
    names = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    probs = np.eye(7)[[3, 5, 0, 4, 6, 6]] * 0.9 + 0.1 / 7
    result = valence(np.array([3, 5, 0, 4, 6, 3]), probs, names)
    assert result["n"] == 5 and result["n_positive"] == 3  # the neutral image is out
    assert result["accuracy"] == pytest.approx(4 / 5)  # the happy face predicted neutral leans neither way: its score is 2/6 < 0.5
    assert result["auc"] == pytest.approx(roc_auc_score([1, 1, 0, 0, 1], [probs[k][[3, 5]].sum() / probs[k][:6].sum() for k in (0, 1, 2, 3, 5)]))


def test_run_folder_with_weights_only_is_exported_on_the_fly_and_compared(data, tmp_path, capsys):
    from emolive.models.checkpoint import save_weights
    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.registry import create_model

    kwargs = {"widths": [4, 8, 8], "hidden": 16}
    run = tmp_path / "tiny_run"
    save_weights(create_model("baseline_cnn", num_classes=7, **kwargs),
                 ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=kwargs), run / "best.safetensors")
    (run / "history.json").write_text(json.dumps(_history()))
    out = tmp_path / "report"
    assert main(["eval", "--model", str(run), "--data", str(data), "--split", "PublicTest", "--report", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["exported"] and m["name"] == "tiny_run" and (out / "training_curves.png").is_file()

    table = tmp_path / "table.md"
    capsys.readouterr()
    assert main(["compare", str(run), "--data", str(data), "-o", str(table), "--threads", "1"]) == 0
    row = next(line for line in table.read_text().splitlines() if line.startswith("| tiny_run"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    network = create_model("baseline_cnn", num_classes=7, **kwargs).eval()
    assert cells[1] == "baseline_cnn" and int(cells[2].replace(",", "")) == sum(p.numel() for p in network.parameters())
    assert float(cells[3]) == pytest.approx(_conv_and_linear_flops(network) / 1e6, abs=0.05) and float(cells[5]) > 0
    assert float(cells[6]) == pytest.approx(m["accuracy"], abs=1e-4)
    assert cells[8] == "2.0 min / 4 ep (in progress)"
    assert row in capsys.readouterr().out


def test_bad_input_is_one_line_error(tiny_model, data, tmp_path, capsys):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    cases = [(["eval", "--model", str(tiny_model), "--data", str(tmp_path / "nope"), "--report", str(tmp_path / "r1")], "dataset path"),
             (["eval", "--model", str(empty), "--data", str(data), "--report", str(tmp_path / "r2")], "neither best.onnx nor best.safetensors"),
             (["eval", "--model", str(tiny_model), "--data", str(data), "--report", str(tmp_path / "r3"), "--run", str(empty)], "no history.json"),
             (["compare", str(empty), "--data", str(data)], "neither best.onnx nor best.safetensors")]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("emo-live: error: ") and message in err and err.count("\n") == 1
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


def test_a_split_without_images_is_one_line_error_in_eval_and_compare(tiny_model, tiny_ferplus_model, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    full = _csv(tmp_path / "full.csv").read_text().splitlines()
    no_private = tmp_path / "no_private" / "fer2013.csv"  # a copy without PrivateTest rows
    no_private.parent.mkdir()
    no_private.write_text("\n".join(line for line in full if not line.endswith(",PrivateTest")) + "\n")
    from test_ferplus import _ferplus_dataset

    (tmp_path / "fp").mkdir()
    ferplus_data, _ = _ferplus_dataset(tmp_path / "fp", n=40)
    votes = (tmp_path / "fp" / "fer2013new.csv").read_text().splitlines()  # every PrivateTest image voted not-a-face
    (tmp_path / "fp" / "fer2013new.csv").write_text("\n".join(v if not v.startswith("PrivateTest") else v.rsplit(",", 10)[0] + ",0" * 9 + ",10"
                                                               for v in votes) + "\n")
    cases = [(["eval", "--model", str(tiny_model), "--data", str(no_private), "--split", "PrivateTest"], f"the PrivateTest split of {no_private} has no images;"),
             (["eval", "--model", str(tiny_model), "--data", str(no_private), "--split", "PrivateTest", "--report", str(tmp_path / "r")],
              "the PrivateTest split"),
             (["eval", "--model", str(tiny_ferplus_model), "--data", str(ferplus_data), "--split", "PrivateTest"],
              "has no images with ferplus-majority labels"),
             (["compare", str(tiny_model), "--data", str(no_private), "--threads", "1"], "the PrivateTest split"),
             (["compare", str(tiny_ferplus_model), "--data", str(ferplus_data), "--threads", "1"], "has no images with ferplus-majority labels")]
    for argv, message in cases:
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("emo-live: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "r").exists()


@pytest.mark.data
def test_shipped_model_report_on_real_private_test(fer_tarball, tmp_path):
    out = tmp_path / "report"
    assert main(["eval", "--data", str(fer_tarball), "--split", "PrivateTest", "--report", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == 3589 and m["accuracy"] > 0.6 and m["valence"]["auc"] > m["macro_auc"] - 0.2
    assert m["model"].startswith("emolive/models/weights/")  # not this machine's install path
    shutil.rmtree(out)


def test_comparison_table_marks_accuracies_on_ferplus_labels():
    from emolive.training.compare import ComparisonRow, format_table

    common = dict(source="x.onnx", arch="face_resnet_s", parameters=1000, mflops=1.0, tta="none", ms_per_face=0.5,
                  public_accuracy=0.7, private_accuracy=0.71, train_seconds=600.0, epochs=10, train_time_from="summary.json")
    only_fer = format_table([ComparisonRow(name="a", **common)])
    assert "†" not in only_fer
    table = format_table([ComparisonRow(name="a", **common), ComparisonRow(name="b", label_set="ferplus-majority", **common)])
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| a") or line.startswith("| b")}
    assert "0.7100 |" in rows["a"] and "0.7100 † |" in rows["b"]
    assert "† on FER+ majority labels" in table


def test_compare_checks_its_output_before_measuring(tmp_path, monkeypatch, capsys):
    import emolive.training.compare as compare_module

    monkeypatch.setattr(compare_module, "compare_models", lambda *args, **kwargs: pytest.fail("measured before -o was checked"))
    (tmp_path / "table.md").mkdir()
    assert main(["compare", "default", "--data", str(tmp_path), "-o", str(tmp_path / "table.md")]) == 2
    err = capsys.readouterr().err
    assert "table.md is a folder" in err and "Traceback" not in err and not list(tmp_path.glob(".*part*"))


def test_compare_checks_every_model_before_measuring_any(tiny_model, data, tmp_path, monkeypatch, capsys):
    import emolive.training.compare as compare_module

    monkeypatch.setattr(compare_module, "predict_split", lambda *args, **kwargs: pytest.fail("measured the first model before checking the second"))
    assert main(["compare", str(tiny_model), str(tmp_path / "missing.onnx"), "--data", str(data), "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("emo-live: error: ") and "missing.onnx" in err and err.count("\n") == 1


def test_report_on_a_ferplus_model_names_ferplus_labels(tiny_ferplus_model, tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    from test_ferplus import _ferplus_dataset

    ferplus_data, _ = _ferplus_dataset(tmp_path, n=80)
    out = tmp_path / "report"
    assert main(["eval", "--model", str(tiny_ferplus_model), "--data", str(ferplus_data), "--split", "PublicTest", "--report", str(out)]) == 0
    report = (out / "report.md").read_text()
    assert report.startswith("# Evaluation: tiny_ferplus on FER+ PublicTest") and "ferplus-majority labels" in report
