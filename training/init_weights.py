"""Start training from another emolive model's weights: ``emo-live train --init MODEL``.

Fine-tuning reuses everything a trained network learnt: a FER2013 model starts a FER+ run, or a
finished run starts a longer one. The source must have the same architecture (and architecture
options). The classifier's rows are matched by label name, so a FER2013 model's seven emotions carry
over into FER+'s eight and only ``contempt`` starts from random weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from emolive.models.errors import ModelError


@dataclass(frozen=True)
class InitReport:
    """What ``--init`` loaded: the weights file, and the labels whose classifier rows started fresh."""

    source: Path
    copied_tensors: int
    new_labels: tuple[str, ...]

    def describe(self) -> str:
        fresh = f"; new classifier rows for {', '.join(self.new_labels)}" if self.new_labels else ""
        return f"initialised from {self.source} ({self.copied_tensors} tensors{fresh})"


def init_weights_path(spec: str | os.PathLike[str]) -> Path:
    """The ``.safetensors`` file behind ``spec``: a shipped model name, an ``.onnx`` file, a run folder or the file itself."""
    from emolive.models.shipped import resolve_model_path, shipped_models, weights_for

    text = str(spec)
    path = Path(text).expanduser()
    if text not in shipped_models() and path.is_dir():
        weights = path / "best.safetensors"
        if not weights.is_file():
            raise ModelError(f"--init {text}: the run folder has no best.safetensors yet; wait for an epoch to improve or pass a weights file")
        return weights
    if path.suffix == ".safetensors":
        if not path.is_file():
            raise ModelError(f"--init {text} does not exist; pass a shipped model name, a run folder or a .safetensors file")
        return path
    weights = weights_for(resolve_model_path(text))
    if not weights.is_file():
        raise ModelError(f"--init {text} has no .safetensors weights beside it; pass the model's .safetensors file or its run folder")
    return weights


def _classifier(model: nn.Module) -> tuple[str, nn.Linear]:
    """The last linear layer of the network's ``head``: the one whose rows are the labels."""
    head = getattr(model, "head", None)
    linears = [(name, module) for name, module in head.named_modules() if isinstance(module, nn.Linear)] if isinstance(head, nn.Module) else []
    if not linears:
        raise ModelError(f"--init needs a network with a linear classifier head, and {type(model).__name__} has none")
    name, layer = linears[-1]
    return f"head.{name}" if name else "head", layer


def init_from(model: nn.Module, arch: str, labels: tuple[str, ...], spec: str | os.PathLike[str]) -> InitReport:
    """Load the weights named by ``spec`` into ``model`` (architecture ``arch``, classes ``labels``).

    Every tensor but the classifier must match in name and shape; classifier rows are copied for the
    labels both models share and keep their fresh initialisation for the others. ModelError otherwise.
    """
    from safetensors.torch import load_file

    from emolive.models.checkpoint import read_weights_info

    source = init_weights_path(spec)
    info = read_weights_info(source)
    if info.arch == "ensemble":
        raise ModelError(f"--init {source.name} is an ensemble; pass the .safetensors of one of its members (or its run folder)")
    if info.arch != arch:
        raise ModelError(f"--init {source.name} holds a '{info.arch}' network, not '{arch}'; pass weights of --model {arch} "
                         f"or train --model {info.arch}")
    donor = load_file(str(source))
    prefix, classifier = _classifier(model)
    head_keys = {f"{prefix}.weight", f"{prefix}.bias"}
    if f"{prefix}.weight" not in donor:
        raise ModelError(f"--init {source.name} lacks the classifier {prefix}.weight; pass weights written by emo-live train")
    target = model.state_dict()
    body = [key for key in target if key not in head_keys]
    for key in body:
        if key not in donor:
            raise ModelError(f"--init {source.name} lacks {key}: it was trained with other --arch-kwargs "
                             f"({info.arch_kwargs or 'none'}); pass the same --arch-kwargs")
        if donor[key].shape != target[key].shape:
            raise ModelError(f"--init {source.name} has {key} of shape {tuple(donor[key].shape)}, this network "
                             f"{tuple(target[key].shape)}; pass the --arch-kwargs it was trained with ({info.arch_kwargs or 'none'})")
    extra = sorted(set(donor) - set(target))
    if extra:
        raise ModelError(f"--init {source.name} has {extra[0]}, which this network lacks; pass the --arch-kwargs it was trained with "
                         f"({info.arch_kwargs or 'none'})")
    state = {key: donor[key].to(target[key].dtype) for key in body}
    weight, bias = classifier.weight.detach().clone(), None if classifier.bias is None else classifier.bias.detach().clone()
    old_row = {name: row for row, name in enumerate(info.labels)}
    for row, name in enumerate(labels):
        if name in old_row:
            weight[row] = donor[f"{prefix}.weight"][old_row[name]].to(weight.dtype)
            if bias is not None and f"{prefix}.bias" in donor:
                bias[row] = donor[f"{prefix}.bias"][old_row[name]].to(bias.dtype)
    state[f"{prefix}.weight"] = weight
    if bias is not None:
        state[f"{prefix}.bias"] = bias
    with torch.no_grad():
        model.load_state_dict(state)
    new_labels = tuple(name for name in labels if name not in old_row)
    return InitReport(source, len(state), new_labels)
