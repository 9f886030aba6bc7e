"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

``torchrun --nproc-per-node N -m emolive.training.train ...`` sets ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK`` and ``MASTER_ADDR/PORT``; :func:`process_group` turns them into a process group (nccl
on CUDA, gloo on CPU) and tears it down again. Without those variables (or with one process)
nothing is initialised and training runs exactly as a single process.

``--batch-size`` stays the *global* batch: each of the N ranks takes ``batch_size / N`` images of
every step, from its own interleaved shard of the epoch's permutation, so the number of steps, the
learning-rate schedule and the effective batch match a single-process run with the same arguments.
"""

from __future__ import annotations

import argparse
import builtins
import hashlib
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as tdist
from torch import nn

from emolive.models.errors import EmoliveError, InputError, OutputError


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the group; ``world_size == 1`` means plain single-process training."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def add_distributed_args(parser: argparse.ArgumentParser) -> None:
    """Options that only matter under ``torchrun``."""
    parser.add_argument("--sync-batchnorm", action="store_true",
                        help="under torchrun on CUDA: synchronise BatchNorm statistics across processes (SyncBatchNorm)")


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise InputError(f"environment variable {name}={value!r} is not an integer; start distributed runs with torchrun") from None


def context_from_env() -> DistContext:
    """The ranks torchrun announced in the environment (single process when it announced none)."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank, local_rank = _env_int("RANK", 0), _env_int("LOCAL_RANK", 0)
    if world_size < 1 or not 0 <= rank < world_size:
        raise InputError(f"RANK={rank} WORLD_SIZE={world_size} is not a valid process layout; start distributed runs with torchrun")
    return DistContext(rank, world_size, local_rank)


def current() -> DistContext:
    """The context of the initialised process group, or :data:`SINGLE` when there is none."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return SINGLE
    return DistContext(tdist.get_rank(), tdist.get_world_size(), _env_int("LOCAL_RANK", 0))


@contextmanager
def process_group() -> Iterator[DistContext]:
    """Initialise the process group from torchrun's environment for the ``with`` body, then destroy it.

    Uses nccl (one GPU per local rank) when CUDA is available, gloo otherwise. Ranks other than 0
    print nothing while inside. A no-op for a single process or when a group already exists.
    """
    ctx = context_from_env()
    if not ctx.enabled or (tdist.is_available() and tdist.is_initialized()):
        yield current()
        return
    if not tdist.is_available():
        raise InputError("this PyTorch build has no torch.distributed; run without torchrun or install a full PyTorch")
    if torch.cuda.is_available():
        if ctx.local_rank >= torch.cuda.device_count():
            raise InputError(f"LOCAL_RANK {ctx.local_rank} but only {torch.cuda.device_count()} GPU(s); use --nproc-per-node <= the GPU count")
        torch.cuda.set_device(ctx.local_rank)
        backend = "nccl"
    else:
        backend = "gloo"
    tdist.init_process_group(backend=backend)
    original_print = builtins.print
    if not ctx.is_main:
        builtins.print = _print_nothing
    try:
        yield current()
        # Rank 0 writes files after the last collective; tearing gloo's connections down while a peer
        # still uses them can abort that peer ("terminate called without an active exception").
        tdist.barrier()
    finally:
        builtins.print = original_print
        tdist.destroy_process_group()


def _print_nothing(*args: object, **kwargs: object) -> None:
    """Replaces ``print`` on ranks other than 0, so logs appear once."""


def local_batch_size(batch_size: int, ctx: DistContext) -> int:
    """Each rank's share of the global ``batch_size``."""
    if batch_size % ctx.world_size:
        raise InputError(f"--batch-size {batch_size} does not split evenly over {ctx.world_size} processes; "
                         f"use a multiple of {ctx.world_size} (it is the global batch)")
    return batch_size // ctx.world_size


def shard_order(order: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's interleaved shard of an epoch's permutation.

    The permutation is padded by wrapping around to a multiple of the world size, so every rank
    gets the same number of images and steps (needed for DDP's collective gradient all-reduce);
    batch ``b`` of rank ``r`` is then exactly the ``r``-th interleave of global batch ``b``.
    """
    if not ctx.enabled:
        return order
    padding = (-len(order)) % ctx.world_size
    if padding:
        order = torch.cat([order, order.repeat(math.ceil(padding / len(order)))[:padding]])
    return order[ctx.rank::ctx.world_size]


def rank_generator(generator: torch.Generator, ctx: DistContext) -> torch.Generator:
    """A per-rank random stream for augmentation, forked from the shared one.

    Every rank draws the same seed from the shared ``generator`` (keeping the ranks' shared
    streams, and so their permutations, identical) and offsets it by its rank, so augmentation
    draws differ between ranks. Single-process training gets ``generator`` back untouched.
    """
    if not ctx.enabled:
        return generator
    seed = int(torch.randint(0, 2**62, (1,), generator=generator).item())
    return torch.Generator(device=generator.device).manual_seed(seed + ctx.rank)


def wrap_model(model: nn.Module, ctx: DistContext, *, sync_batchnorm: bool = False) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel (the same module when single-process).

    The wrapper shares its parameters with ``model``, so optimizers, EMA and checkpoints keep
    using ``model``; with ``sync_batchnorm`` its BatchNorm layers are converted in place first.
    """
    if sync_batchnorm and not torch.cuda.is_available():
        raise InputError("--sync-batchnorm needs CUDA (PyTorch's SyncBatchNorm does not run on CPU); drop the option")
    if not ctx.enabled:
        return model
    if sync_batchnorm:
        for name, child in list(model.named_children()):
            model.add_module(name, nn.SyncBatchNorm.convert_sync_batchnorm(child))
    device_ids = [ctx.local_rank] if next(model.parameters()).is_cuda else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def mean_over_ranks(metrics: Mapping[str, float], ctx: DistContext) -> dict[str, float]:
    """Average per-rank metrics computed on equal-sized shards (the train loss and accuracy)."""
    if not ctx.enabled:
        return dict(metrics)
    keys = sorted(metrics)
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=_collective_device())
    tdist.all_reduce(values)
    return {k: float(v) / ctx.world_size for k, v in zip(keys, values.tolist())}


def average_buffers(modules: Iterable[nn.Module | None], ctx: DistContext) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over the ranks, in place.

    DDP keeps parameters identical but each rank's last forward pass updates its BatchNorm
    statistics from its own shard; averaging them at the end of an epoch makes the replicas equal
    again (and their statistics cover every rank's images) before evaluation and checkpointing.
    """
    if not ctx.enabled:
        return
    for module in modules:
        if module is None:
            continue
        for buffer in module.buffers():
            if buffer.is_floating_point():
                tdist.all_reduce(buffer)
                buffer.div_(ctx.world_size)


def evaluate_sharded(evaluate: Callable[..., dict[str, float]], model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     ctx: DistContext, *args: object, **kwargs: object) -> dict[str, float]:
    """Run ``evaluate`` on this rank's slice of a split and combine the slices' means exactly.

    Every rank gets the same result, so best-model and early-stopping decisions agree.
    """
    if not ctx.enabled:
        return evaluate(model, images, labels, *args, **kwargs)
    shard_labels = labels[ctx.rank::ctx.world_size]
    result = evaluate(model, images[ctx.rank::ctx.world_size], shard_labels, *args, **kwargs)
    keys = sorted(result)
    n = len(shard_labels)
    sums = torch.tensor([result[k] * n for k in keys] + [n], dtype=torch.float64, device=_collective_device())
    tdist.all_reduce(sums)
    total = max(sums[-1].item(), 1.0)
    return {k: v / total for k, v in zip(keys, sums[:-1].tolist())}


class PeerStopped(EmoliveError):
    """Rank 0 failed while writing files alone; it printed the reason, the other ranks stop with this one line."""


def on_main(action: Callable[[], None], ctx: DistContext, what: str) -> None:
    """Run ``action`` (files only rank 0 writes) on rank 0; every rank then learns whether it worked.

    An OSError becomes a one-line :class:`OutputError` naming ``what`` was being written. Under
    torchrun all ranks stop together: rank 0 with its error, the others with :class:`PeerStopped`,
    instead of running on into a closed connection at the next collective.
    """
    error: EmoliveError | None = None
    if ctx.is_main:
        try:
            action()
        except OSError as exc:
            error = OutputError(f"cannot write {what} ({exc.strerror or exc}); free disk space or choose another --output")
        except EmoliveError as exc:
            error = exc
    if ctx.enabled:
        failed = torch.tensor([0 if error is None else 1], dtype=torch.int32, device=_collective_device())
        tdist.broadcast(failed, src=0)
        if failed.item() and error is None:
            raise PeerStopped("rank 0 stopped with the error it printed")
    if error is not None:
        raise error


def state_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 of a state dict's names, dtypes, shapes and values (bit-exact comparison of models)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def replica_fingerprints(model: nn.Module, ctx: DistContext) -> list[str]:
    """Every rank's :func:`state_fingerprint` of ``model`` (in rank order); DDP keeps them equal."""
    own = state_fingerprint(model.state_dict())
    if not ctx.enabled:
        return [own]
    gathered: list[object] = [None] * ctx.world_size
    tdist.all_gather_object(gathered, own)
    return [str(g) for g in gathered]


def _collective_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if tdist.get_backend() == "nccl" else torch.device("cpu")
