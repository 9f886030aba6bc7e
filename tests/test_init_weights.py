"""``emo-live train --init MODEL``: fine-tuning starts from another model's weights, classifier rows matched by label."""

import json

import pytest

from emolive.models.errors import ModelError
from emolive.models.labels import EMOTIONS, FERPLUS_EMOTIONS
from emolive.realtime.cli import main
from conftest import learnable_fer_csv

torch = pytest.importorskip("torch")

from emolive.models.checkpoint import save_weights  # noqa: E402
from emolive.models.info import ModelInfo  # noqa: E402
from emolive.models.registry import create_model  # noqa: E402
from emolive.training.init_weights import init_from  # noqa: E402
from emolive.training.train import get_args_parser, main as train_main  # noqa: E402

SMALL = {"widths": [8, 16, 16], "hidden": 32}


def _donor(tmp_path, arch="baseline_cnn", labels=EMOTIONS, fp16=False, **arch_kwargs):
    torch.manual_seed(1)
    model = create_model(arch, num_classes=len(labels), **arch_kwargs)
    path = save_weights(model, ModelInfo(arch=arch, labels=labels, arch_kwargs=arch_kwargs), tmp_path / "donor.safetensors", fp16=fp16)
    return model, path


def test_a_fer2013_network_starts_a_ferplus_one_with_its_rows_matched_by_label(tmp_path):
    donor, path = _donor(tmp_path, **SMALL)
    torch.manual_seed(2)
    model = create_model("baseline_cnn", num_classes=len(FERPLUS_EMOTIONS), **SMALL)
    fresh_contempt = model.head[1].weight[FERPLUS_EMOTIONS.index("contempt")].detach().clone()
    report = init_from(model, "baseline_cnn", FERPLUS_EMOTIONS, path)
    assert report.new_labels == ("contempt",) and "contempt" in report.describe()
    old, new = donor.state_dict(), model.state_dict()
    for key in old:
        if not key.startswith("head.1."):
            assert torch.equal(old[key], new[key]), key
    for row, name in enumerate(FERPLUS_EMOTIONS):
        if name == "contempt":
            assert torch.equal(new["head.1.weight"][row], fresh_contempt)
        else:
            assert torch.equal(new["head.1.weight"][row], old["head.1.weight"][EMOTIONS.index(name)]), name
            assert torch.equal(new["head.1.bias"][row], old["head.1.bias"][EMOTIONS.index(name)]), name


def test_float16_stored_weights_load_into_the_float32_network(tmp_path):
    donor, path = _donor(tmp_path, fp16=True, **SMALL)
    model = create_model("baseline_cnn", num_classes=7, **SMALL)
    init_from(model, "baseline_cnn", EMOTIONS, path)
    conv = "features.0.0.weight"
    assert model.state_dict()[conv].dtype == torch.float32
    assert torch.equal(model.state_dict()[conv], donor.state_dict()[conv].half().float())


@pytest.mark.parametrize(("arch", "kwargs", "message"), [
    ("mlp", {}, "holds a 'baseline_cnn' network, not 'mlp'; pass weights of --model mlp or train --model baseline_cnn"),
    ("baseline_cnn", {"widths": [8, 16, 32], "hidden": 32}, "of shape (16, 16, 3, 3), this network (32, 16, 3, 3); pass the --arch-kwargs it was trained with"),
])
def test_weights_of_another_network_are_refused_by_name(tmp_path, arch, kwargs, message):
    _, path = _donor(tmp_path, **SMALL)
    model = create_model(arch, num_classes=7, **kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(ModelError, match="donor.safetensors") as error:
        init_from(model, arch, EMOTIONS, path)
    assert message in str(error.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # nothing half-loaded


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory):
    return learnable_fer_csv(tmp_path_factory.mktemp("fer") / "fer2013.csv", n=450)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))


def _train(data, run, *extra):
    common = ["--data", str(data), "-o", str(run), "--model", "mlp", "--threads", "1", "--no-export", "--batch-size", "64",
              "--augment-strength", "0", "--ema-decay", "0"]
    train_main(get_args_parser().parse_args([*common, *extra]))
    return json.loads((run / "history.json").read_text())


def test_fine_tuning_starts_where_the_source_run_ended(data, tmp_path):
    donor = _train(data, tmp_path / "donor", "--epochs", "4", "--lr", "1e-3")
    assert donor[-1]["val_accuracy"] > 0.5  # the synthetic classes are learnable
    still = _train(data, tmp_path / "tuned", "--epochs", "1", "--lr", "1e-9", "--init", str(tmp_path / "donor"))
    scratch = _train(data, tmp_path / "scratch", "--epochs", "1", "--lr", "1e-9")
    best = max(h["val_accuracy"] for h in donor)
    assert still[0]["val_accuracy"] == pytest.approx(best, abs=0.02)
    assert scratch[0]["val_accuracy"] < best - 0.2
    summary = json.loads((tmp_path / "tuned" / "summary.json").read_text())
    assert summary["args"]["init"] == str(tmp_path / "donor")


def test_bad_init_options_fail_in_one_line_before_any_run_folder(data, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "-o", str(run), "--init", str(tmp_path / "missing.safetensors")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"emo-live: error: --init {tmp_path / 'missing.safetensors'} does not exist; pass a shipped model name, a run folder or a .safetensors file"
    assert main(["train", "--data", str(data), "-o", str(run), "--model", "resnet18", "--init", "default", "--pretrained", "x.pth"]) == 2
    assert capsys.readouterr().err.strip() == "emo-live: error: --init and --pretrained both set the starting weights; pass one of them"
    assert main(["train", "--data", str(data), "-o", str(run), "--init", "fer2013_ensemble_skd_m"]) == 2
    assert "is an ensemble; pass the .safetensors of one of its members" in capsys.readouterr().err
    assert not run.exists()
