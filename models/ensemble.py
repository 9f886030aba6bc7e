"""Several trained emolive models as one network (one ONNX graph): their averaged probabilities.

The members' probabilities (each softmaxed at its own recorded temperature) are averaged, not their
logits: members trained with different recipes have different logit scales, and averaging logits would
let the most confident one dominate; probability averaging is the usual ensemble and keeps calibrated
members calibrated. The graph's ``logits`` output is the log of that average, so the engines' softmax
(temperature 1) returns exactly the averaged probabilities.

An ensemble is a registered architecture (``arch="ensemble"``) whose ``arch_kwargs`` list its members
(architecture, arch_kwargs, temperature), so its safetensors file rebuilds it like any other model.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import InputError, ModelError
from .info import ModelInfo


class ProbabilityEnsemble(nn.Module):
    """Average of the members' ``softmax(logits / temperature)``; outputs its log (N, num_classes).

    ``forward_features`` concatenates the members' penultimate vectors (``num_features`` = their sum);
    ``forward_head`` splits them again, so ``forward_head(forward_features(x)) == forward(x)``.
    """

    def __init__(self, members: Sequence[nn.Module], temperatures: Sequence[float]) -> None:
        super().__init__()
        if len(members) < 1 or len(members) != len(temperatures):
            raise ValueError(f"need one temperature per member, got {len(members)} members and {len(temperatures)} temperatures")
        if any(t <= 0 for t in temperatures):
            raise ValueError(f"temperatures must be positive, got {tuple(temperatures)}")
        self.members = nn.ModuleList(members)
        self.register_buffer("inverse_temperatures", torch.tensor([1.0 / t for t in temperatures]), persistent=False)
        self.feature_sizes = [int(m.num_features) for m in members]
        self.num_features = sum(self.feature_sizes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([member.forward_features(x) for member in self.members], dim=1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        parts = torch.split(features, self.feature_sizes, dim=1)
        probs = [torch.softmax(member.forward_head(part).float() * self.inverse_temperatures[i], dim=1)
                 for i, (member, part) in enumerate(zip(self.members, parts))]
        mean = torch.stack(probs).mean(dim=0)
        return torch.log(mean.clamp_min(1e-12))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def build_ensemble(*, num_classes: int, members: Sequence[dict[str, Any]]) -> ProbabilityEnsemble:
    """Build an untrained ensemble from member descriptions ``{"arch", "arch_kwargs", "temperature"}``."""
    from .registry import create_model

    if not members:
        raise ValueError("an ensemble needs at least one member")
    networks = [create_model(m["arch"], num_classes=num_classes, **dict(m.get("arch_kwargs", {}))) for m in members]
    return ProbabilityEnsemble(networks, [float(m.get("temperature", 1.0)) for m in members])


def ensemble_from_files(paths: Sequence[str | os.PathLike[str]]) -> tuple[ProbabilityEnsemble, ModelInfo]:
    """Load trained members from safetensors files into one ensemble, with its :class:`ModelInfo`.

    Members must share labels (same order) and preprocessing; their temperatures move inside the graph,
    their test-time augmentation does not (set it on the ensemble's info instead).
    """
    from .checkpoint import load_model

    if len(paths) < 2:
        raise InputError(f"an ensemble needs at least 2 member .safetensors files, got {len(paths)}")
    loaded = [load_model(path) for path in paths]
    first_path, (_, first) = paths[0], loaded[0]
    for path, (_, info) in zip(paths[1:], loaded[1:]):
        if info.labels != first.labels:
            raise ModelError(f"{path} has labels {', '.join(info.labels)} but {first_path} has {', '.join(first.labels)}; ensemble models with the same label set")
        if info.preprocess != first.preprocess:
            raise ModelError(f"{path} preprocesses faces differently from {first_path} ({info.preprocess} vs {first.preprocess}); ensemble models with the same preprocessing")
    for path, (model, _) in zip(paths, loaded):
        if not hasattr(model, "forward_features") or not hasattr(model, "forward_head"):
            raise ModelError(f"{path} holds a network without forward_features/forward_head; it cannot join an ensemble")
    members = [{"arch": info.arch, "arch_kwargs": info.arch_kwargs, "temperature": info.temperature} for _, info in loaded]
    ensemble = ProbabilityEnsemble([model for model, _ in loaded], [info.temperature for _, info in loaded]).eval()
    sources = "; ".join(f"{Path(p).name} ({info.arch}, {info.training_data or 'unknown data'})" for p, (_, info) in zip(paths, loaded))
    info = replace(first, arch="ensemble", arch_kwargs={"members": members}, training_data=f"ensemble of {len(paths)}: {sources}",
                   metrics={}, temperature=1.0, test_time_augmentation="none")
    return ensemble, info
