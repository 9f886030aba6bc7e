"""Training-recipe options: mixup/CutMix soft targets, class-balanced sampling, parameter groups and
freezing, precision choice, and a transfer-learning run from a local ImageNet-style state dict."""

import argparse
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from emolive.models.errors import InputError  # noqa: E402
from emolive.models.registry import create_model  # noqa: E402
from emolive.training import recipe  # noqa: E402
from emolive.training.mix import MixConfig, epoch_order, mix_batch, soft_targets  # noqa: E402
from conftest import learnable_fer_csv  # noqa: E402


def _batch(n: int = 6, classes: int = 7):
    """Sample i is a constant image of value i with class i: a mixed image's mean tells its mixture."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 48, 48).clone()
    return x, soft_targets(torch.arange(n) % classes, classes)


@pytest.mark.parametrize("cfg", [MixConfig(mixup_alpha=0.4), MixConfig(cutmix_alpha=1.0), MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0)])
def test_mixing_makes_targets_that_match_the_mixed_pixels(cfg):
    generator = torch.Generator().manual_seed(3)
    kinds = set()
    for _ in range(20):
        x, targets = _batch()
        mixed, mixed_targets, kind = mix_batch(x, targets, cfg, generator)
        kinds.add(kind)
        torch.testing.assert_close(mixed_targets.sum(1), torch.ones(len(x)))
        assert (mixed_targets >= 0).all()
        # each image's mean pixel is the target-weighted mean of the source values (0..5 = class ids here)
        values = torch.arange(mixed_targets.shape[1], dtype=torch.float32)
        torch.testing.assert_close(mixed.mean(dim=(1, 2, 3)), mixed_targets @ values, atol=1e-4, rtol=1e-4)
    expected = {"mixup"} if cfg.cutmix_alpha == 0 else {"cutmix"} if cfg.mixup_alpha == 0 else {"mixup", "cutmix"}
    assert kinds == expected


def test_cutmix_pastes_a_rectangle_of_the_partner():
    generator = torch.Generator().manual_seed(0)
    x, targets = _batch(2)
    mixed, mixed_targets, kind = mix_batch(x, targets, MixConfig(cutmix_alpha=1.0), generator)
    assert kind == "cutmix"
    pasted = mixed[0, 0] != 0  # sample 0 is all zeros, its partner (sample 1) all ones
    rows, cols = pasted.any(1).nonzero(), pasted.any(0).nonzero()
    if len(rows):
        assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()  # one solid rectangle
    assert mixed_targets[0, 1].item() == pytest.approx(pasted.float().mean().item())


def test_mixing_disabled_or_skipped_leaves_the_batch_alone():
    generator = torch.Generator().manual_seed(0)
    x, targets = _batch()
    for cfg in (MixConfig(), MixConfig(mixup_alpha=0.2, prob=0.0)):
        out, out_targets, kind = mix_batch(x, targets, cfg, generator)
        assert kind == "none" and out is x and out_targets is targets
    with pytest.raises(ValueError):
        MixConfig(mixup_alpha=-1)


def test_balanced_sampler_draws_classes_equally():
    labels = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    generator = torch.Generator().manual_seed(0)
    counts = torch.bincount(labels[epoch_order(labels, "balanced", generator)], minlength=3).float() / len(labels)
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.05)
    sqrt_counts = torch.bincount(labels[epoch_order(labels, "sqrt", generator)], minlength=3)
    assert sqrt_counts[0] > sqrt_counts[1] > sqrt_counts[2] > 10  # in between shuffle and balanced
    order = epoch_order(labels, "shuffle", generator)
    assert sorted(order.tolist()) == list(range(len(labels)))
    votes = soft_targets(labels, 3)  # probability targets count by their top class
    counts = torch.bincount(labels[epoch_order(votes, "balanced", generator)], minlength=3).float() / len(labels)
    assert torch.allclose(counts, torch.full((3,), 1 / 3), atol=0.05)


def test_balanced_sampler_and_class_weights_are_not_combined():
    import argparse

    recipe.check_imbalance_handling(argparse.Namespace(sampler="balanced", class_weights="none"))
    recipe.check_imbalance_handling(argparse.Namespace(sampler="shuffle", class_weights="sqrt"))
    with pytest.raises(InputError, match="twice"):
        recipe.check_imbalance_handling(argparse.Namespace(sampler="sqrt", class_weights="inverse"))


def test_backbone_learning_rate_scale_and_freezing():
    model = create_model("baseline_cnn", widths=[4, 8, 8], hidden=16)
    args = argparse.Namespace(lr=1e-2, weight_decay=0.05, backbone_lr_scale=0.1)
    groups = recipe.param_groups(model, args)
    head = {id(p) for p in model.head.parameters()}
    for group in groups:
        in_head = {id(p) in head for p in group["params"]}
        assert len(in_head) == 1
        assert group["lr"] == pytest.approx(1e-2 if in_head.pop() else 1e-3)
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    plain = recipe.param_groups(model, argparse.Namespace(lr=1e-2, weight_decay=0.05, backbone_lr_scale=1.0))
    assert [g["weight_decay"] for g in plain] == [0.05, 0.0]  # the original two groups when nothing is scaled

    recipe.freeze_backbone(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == head
    recipe.set_train_mode(model, frozen_backbone=True)
    assert model.head.training and not model.features.training


def test_precision_choice(monkeypatch):
    monkeypatch.setattr(recipe, "cpu_has_fast_bf16", lambda: True)
    assert recipe.resolve_precision(torch.device("cpu"), "auto") == "bf16"
    monkeypatch.setattr(recipe, "cpu_has_fast_bf16", lambda: False)  # e.g. an AVX2-only CPU: bf16 is emulated there
    assert recipe.resolve_precision(torch.device("cpu"), "auto") == "fp32"
    assert recipe.resolve_precision(torch.device("cpu"), "bf16") == "bf16"  # an explicit choice is kept
    assert recipe.resolve_precision(torch.device("cuda"), "auto") == "fp16"
    assert recipe.grad_scaler(torch.device("cpu"), "auto") is None
    with pytest.raises(InputError, match="needs a CUDA GPU"):
        recipe.resolve_precision(torch.device("cpu"), "fp16")


def test_autocast_takes_only_a_resolved_precision():
    from emolive.training.train import autocast

    with autocast(torch.device("cpu"), "bf16"):
        assert torch.nn.Linear(4, 2)(torch.randn(3, 4)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="resolved precision"):  # unresolved "auto" must not fall back to fp32 silently
        autocast(torch.device("cpu"), "auto")


@pytest.mark.gpu
def test_fp16_training_step_with_grad_scaler_on_cuda():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from emolive.training.train import autocast

    device = torch.device("cuda")
    model = create_model("baseline_cnn", widths=[4, 8, 8], hidden=16).to(device)
    precision = recipe.resolve_precision(device, "auto")
    scaler = recipe.grad_scaler(device, precision)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(8, 1, 48, 48, device=device), torch.randint(0, 7, (8,), device=device)
    with autocast(device, precision):
        logits = model(x)
    assert logits.dtype == torch.float16
    before = [p.detach().clone() for p in model.parameters()]
    scaler.scale(torch.nn.functional.cross_entropy(logits.float(), y)).backward()
    scaler.step(optimizer)
    scaler.update()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_transfer_training_from_a_local_state_dict_with_frozen_backbone(tmp_path, monkeypatch):
    from safetensors.torch import load_file
    from torchvision.models import mobilenet_v3_small

    from emolive.models.checkpoint import read_weights_info
    from emolive.realtime.cli import main

    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))
    data = learnable_fer_csv(tmp_path / "fer2013.csv", n=280)
    torch.manual_seed(5)
    torch.save(mobilenet_v3_small(weights=None).state_dict(), tmp_path / "imagenet.pth")
    reference = create_model("mobilenet_v3_small", resize=48)
    from emolive.models.transfer import load_imagenet_weights

    load_imagenet_weights(reference, tmp_path / "imagenet.pth")
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "-o", str(run), "--model", "mobilenet_v3_small", "--arch-kwargs", '{"resize": 48}',
                 "--pretrained", str(tmp_path / "imagenet.pth"), "--freeze-backbone", "--epochs", "1", "--batch-size", "32",
                 "--mixup", "0.2", "--cutmix", "1.0", "--sampler", "balanced", "--threads", "1", "--no-export"]) == 0
    info = read_weights_info(run / "best.safetensors")
    assert info.arch == "mobilenet_v3_small" and info.arch_kwargs == {"resize": 48}
    assert "ImageNet-initialised (imagenet.pth)" in info.training_data
    trained = load_file(str(run / "best.safetensors"))
    expected = reference.state_dict()
    for key, value in trained.items():
        if key.startswith("backbone."):  # frozen: weights and BN statistics exactly as loaded
            torch.testing.assert_close(value, expected[key], msg=key)
    history = json.loads((run / "history.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])


def test_ema_follows_the_model_early_and_reaches_its_decay_later():
    from torch import nn
    from torch.optim.swa_utils import AveragedModel

    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    ema = AveragedModel(model, multi_avg_fn=recipe.warmup_ema(0.998), use_buffers=True)
    ema.update_parameters(model)  # the first update copies
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
        model[1].running_var.fill_(0.01)  # statistics that shrank, as early in training
        model[1].num_batches_tracked.fill_(25)
    for _ in range(25):
        ema.update_parameters(model)
    weight = ema.module[0].weight.detach()  # shares storage: follows the updates
    assert float(weight.min()) > 0.9  # a fixed 0.998 would still be at 1 - 0.998**25 = 0.05
    assert float(ema.module[1].running_var.max()) < 0.2  # statistics follow with the weights
    assert int(ema.module[1].num_batches_tracked) == 25

    ema.n_averaged.fill_(100_000)  # long after the warm-up: one step moves by 1 - decay
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(2.0)
    before = float(weight[0, 0])
    ema.update_parameters(model)
    assert float(weight[0, 0]) - before == pytest.approx(0.002 * (2.0 - before), rel=1e-3)
    with pytest.raises(ValueError, match="decay"):
        recipe.warmup_ema(1.5)
