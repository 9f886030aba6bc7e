"""Data-parallel training under ``torchrun`` (2 CPU processes, gloo) and the sharding it relies on."""

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from emolive.models.errors import InputError  # noqa: E402
from emolive.training.distributed import SINGLE, DistContext, local_batch_size, rank_generator, shard_order, state_fingerprint  # noqa: E402

from conftest import learnable_fer_csv  # noqa: E402


@pytest.mark.parametrize("n, world, batch", [(10, 2, 4), (11, 2, 4), (13, 4, 8), (3, 4, 4)])
def test_shards_are_the_global_batches_split_evenly(n, world, batch):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [shard_order(order, DistContext(rank, world)) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal step counts on every rank, or DDP would hang
    assert set(torch.cat(shards).tolist()) == set(order.tolist())  # every image is seen in the epoch
    local = local_batch_size(batch, DistContext(0, world))
    padded = torch.stack(shards, 1).reshape(-1)  # undo the interleave
    for step in range(-(-len(shards[0]) // local)):
        global_batch = padded[step * batch:(step + 1) * batch]
        assert all(torch.equal(s[step * local:(step + 1) * local], global_batch[r::world]) for r, s in enumerate(shards))
    assert torch.equal(padded[:n], order)


def test_single_process_is_untouched_and_uneven_batches_are_refused():
    order = torch.arange(7)
    assert shard_order(order, SINGLE) is order
    assert local_batch_size(130, SINGLE) == 130
    with pytest.raises(InputError, match="multiple of 4"):
        local_batch_size(130, DistContext(1, 4))


def test_each_rank_augments_differently_but_shares_the_permutation_stream():
    shared = [torch.Generator().manual_seed(5) for _ in range(2)]
    streams = [rank_generator(g, DistContext(rank, 2)) for rank, g in enumerate(shared)]
    assert not torch.equal(torch.rand(8, generator=streams[0]), torch.rand(8, generator=streams[1]))
    assert torch.equal(torch.randperm(50, generator=shared[0]), torch.randperm(50, generator=shared[1]))
    alone = torch.Generator().manual_seed(5)
    assert rank_generator(alone, SINGLE) is alone


def _torchrun(tmp_path, *args):
    env = {**os.environ, "EMOLIVE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", *args]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_torchrun_two_cpu_processes_train_resume_and_write_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIVE_CACHE", str(tmp_path / "cache"))  # the cache the torchrun processes use
    data = learnable_fer_csv(tmp_path / "fer2013.csv")
    run = tmp_path / "run"
    common = ["--data", str(data), "-o", str(run), "--batch-size", "32", "--lr", "1e-3", "--ema-decay", "0.5",
              "--augment-strength", "0", "--schedule", "cosine", "--threads", "1"]
    first = _torchrun(tmp_path, "-m", "emolive.training.train", *common, "--epochs", "1", "--no-export")
    assert first.stdout.count("epoch 1/1 ") == 1  # rank 0 alone prints
    summary = json.loads((run / "summary.json").read_text())
    state = torch.load(run / "last.pt", weights_only=True)
    assert summary["world_size"] == 2
    assert summary["replica_fingerprints"][0] == summary["replica_fingerprints"][1] == state_fingerprint(state["model"])
    assert [h["epoch"] for h in json.loads((run / "history.json").read_text())] == [1]

    # a 2-epoch run stopped after epoch 1 (here, in one process), resumed through the CLI under torchrun with the
    # same options (a resume must keep --epochs): continues at epoch 2, replicas still identical
    from emolive.training.train import get_args_parser, main as train_main

    run = tmp_path / "interrupted"
    common[common.index("-o") + 1] = str(run)
    train_main(get_args_parser().parse_args([*common, "--epochs", "2", "--no-export"]), on_epoch_end=lambda record: True)
    second = _torchrun(tmp_path, "-m", "emolive.realtime.cli", "train", *common, "--epochs", "2", "--resume")
    assert second.stdout.count("resumed from") == 1 and second.stdout.count("epoch 2/2 ") == 1
    summary = json.loads((run / "summary.json").read_text())
    state = torch.load(run / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and summary["epochs_run"] == 2
    assert summary["replica_fingerprints"][0] == summary["replica_fingerprints"][1] == state_fingerprint(state["model"])
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[-1]["val_accuracy"] > 0.5  # the ranks learned together: the synthetic classes are easy
    assert sorted(p.name for p in run.iterdir()) == ["best.onnx", "best.safetensors", "history.json", "last.pt", "summary.json"]


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to imitate a full disk")
def test_under_torchrun_a_write_failing_on_rank_0_stops_every_rank_with_one_line(tmp_path):
    data = learnable_fer_csv(tmp_path / "fer2013.csv")
    run = tmp_path / "run"
    run.mkdir()
    (run / "last.pt.part").symlink_to("/dev/full")  # rank 0 alone writes checkpoints: only it fails
    env = {**os.environ, "EMOLIVE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "emolive.training.train",
           "--data", str(data), "-o", str(run), "--batch-size", "32", "--epochs", "3", "--threads", "1", "--no-export"]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert sum(line.startswith("python -m emolive.training.train: error: cannot write") for line in lines) == 1  # rank 0
    assert sum(line == "python -m emolive.training.train: error: rank 0 stopped with the error it printed" for line in lines) == 1
    assert "Connection closed" not in result.stderr and "gloo" not in result.stderr.lower()  # rank 1 did not run into the closed group
    assert "epoch 2/3" not in result.stdout
