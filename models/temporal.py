"""The temporal head: a small LSTM over the CNN's penultimate features, one step per frame per tracked face.

``TemporalHead`` runs whole sequences (training); its ONNX export (:func:`export_temporal_onnx`) is the
single step the runtime calls once per frame for all tracked faces at once::

    features (N, F), h (N, H), c (N, H)  ->  logits (N, C), h_out (N, H), c_out (N, H)

with a dynamic N, so the state of every track is carried by the caller (see ``LstmSmoother``).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import torch
from torch import nn

from .temporal_info import (C_INPUT, C_OUTPUT, FEATURES_INPUT, H_INPUT, H_OUTPUT, LOGITS_OUTPUT,
                            TEMPORAL_METADATA_KEY, TemporalInfo)

OPSET = 18


class TemporalHead(nn.Module):
    """(Dropout) LayerNorm + linear projection (ReLU) -> 1-layer LSTM -> linear classifier.

    ``input_dropout`` drops CNN features in training: features of the CNN's own training images are
    cleaner than those of new faces, and dropping some keeps the head from trusting single frames too much.
    """

    def __init__(self, feature_dim: int, num_classes: int = 7, *, projection: int = 64, hidden_size: int = 64, dropout: float = 0.2,
                 input_dropout: float = 0.0) -> None:
        super().__init__()
        self.feature_dim, self.hidden_size, self.projection = feature_dim, hidden_size, projection
        self.project = nn.Sequential(nn.Dropout(input_dropout), nn.LayerNorm(feature_dim), nn.Linear(feature_dim, projection), nn.ReLU(),
                                     nn.Dropout(dropout))
        self.lstm = nn.LSTM(projection, hidden_size, num_layers=1, batch_first=True)
        self.classify = nn.Linear(hidden_size, num_classes)

    def forward(self, features: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Logits (B, T, C) for feature sequences (B, T, F); ``state`` is (h, c), each (1, B, H), zeros if None."""
        out, state = self.lstm(self.project(features), state)
        return self.classify(out), state

    def step(self, features: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One frame for N tracks: features (N, F), h and c (N, H) -> logits (N, C), next h and c."""
        out, (h_next, c_next) = self.lstm(self.project(features).unsqueeze(1), (h.unsqueeze(0), c.unsqueeze(0)))
        return self.classify(out[:, 0]), h_next[0], c_next[0]


class _Step(nn.Module):
    def __init__(self, head: TemporalHead) -> None:
        super().__init__()
        self.head = head

    def forward(self, features: torch.Tensor, h: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.head.step(features, h, c)


def export_temporal_onnx(head: TemporalHead, info: TemporalInfo, path: str | os.PathLike[str], *, opset: int = OPSET) -> Path:
    """Export the one-frame step of ``head`` with ``info`` as metadata; written to a temporary name, then renamed."""
    import onnx

    if (info.feature_dim, info.hidden_size, info.projection) != (head.feature_dim, head.hidden_size, head.projection):
        raise ValueError("info does not describe this head (feature_dim, hidden_size, projection differ)")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    step = _Step(head).eval()
    n = 3  # an example batch >= 2, so the exporter keeps the track axis dynamic
    example = (torch.zeros(n, head.feature_dim), torch.zeros(n, head.hidden_size), torch.zeros(n, head.hidden_size))
    tracks = torch.export.Dim("tracks", min=1, max=4096)
    with warnings.catch_warnings():  # the exporter's notes on LSTM internals are not for users
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        program = torch.onnx.export(
            step, example, dynamo=True, opset_version=opset,
            input_names=[FEATURES_INPUT, H_INPUT, C_INPUT], output_names=[LOGITS_OUTPUT, H_OUTPUT, C_OUTPUT],
            dynamic_shapes=({0: tracks}, {0: tracks}, {0: tracks}), verbose=False,
        )
    proto = program.model_proto
    del proto.metadata_props[:]
    for key, value in {TEMPORAL_METADATA_KEY: info.to_json(), "labels": ",".join(info.labels)}.items():
        prop = proto.metadata_props.add()
        prop.key, prop.value = key, value
    proto.producer_name = "emolive"
    proto.doc_string = f"emolive temporal head (LSTM {info.hidden_size}) for CNN {info.cnn_name or info.cnn_sha256[:12]}"
    onnx.checker.check_model(proto)
    tmp = path.with_name(path.name + ".part")
    onnx.save_model(proto, str(tmp))
    os.replace(tmp, path)
    return path
