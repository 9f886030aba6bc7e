"""Shared fixtures: paths to ../shared, a tiny exported model, synthetic media made from the sample photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
DATA = SHARED / "data"
MEDIA = SHARED / "media"
FER_TARBALL = DATA / "fer2013" / "fer2013_images.tar.gz"


@pytest.fixture(scope="session")
def media_dir() -> Path:
    if not (MEDIA / "single_face.mp4").is_file():
        pytest.skip(f"real media not present at {MEDIA} (see shared/media/README.md)")
    return MEDIA


@pytest.fixture(scope="session")
def fer_tarball() -> Path:
    if not FER_TARBALL.is_file():
        pytest.skip(f"FER2013 not present at {FER_TARBALL} (see shared/data/README.md)")
    return FER_TARBALL


@pytest.fixture(scope="session")
def sample_bgr() -> np.ndarray:
    from emolive.realtime.samples import sample_image

    return sample_image()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny baseline CNN with random weights, exported through the real export path."""
    torch = pytest.importorskip("torch")
    from emolive.models.info import ModelInfo
    from emolive.models.labels import EMOTIONS
    from emolive.models.onnx_io import export_onnx
    from emolive.models.registry import create_model

    torch.manual_seed(0)
    kwargs = {"widths": [4, 8, 8], "hidden": 16}
    model = create_model("baseline_cnn", num_classes=len(EMOTIONS), **kwargs)
    info = ModelInfo(arch="baseline_cnn", labels=EMOTIONS, arch_kwargs=kwargs, training_data="random init (tests)")
    return export_onnx(model, info, tmp_path_factory.mktemp("model") / "tiny.onnx")


def face_video(path: Path, sample: np.ndarray, frames: int = 20, fps: float = 25.0, size: tuple[int, int] = (480, 360)) -> Path:
    """A video of the sample portrait's face sliding back and forth across a gray frame."""
    height = min(176, size[1] - 40)
    face = cv2.resize(sample[40:260, 130:330], (height * 160 // 176, height))
    top = (size[1] - height) // 2
    travel = max(0, size[0] - face.shape[1] - 20)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        canvas = np.full((size[1], size[0], 3), 90, np.uint8)
        x = min(travel, 10 + 4 * (i % 60 if (i // 60) % 2 == 0 else 60 - i % 60))
        canvas[top:top + face.shape[0], x:x + face.shape[1]] = face
        writer.write(canvas)
    writer.release()
    return path
