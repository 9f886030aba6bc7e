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


def random_tiny_model(path: Path, labels: tuple[str, ...]) -> Path:
    """A tiny baseline CNN predicting ``labels`` with random weights, exported through the real export path to ``path``."""
    torch = pytest.importorskip("torch")
    from emolive.models.info import ModelInfo
    from emolive.models.onnx_io import export_onnx
    from emolive.models.registry import create_model

    torch.manual_seed(0)
    kwargs = {"widths": [4, 8, 8], "hidden": 16}
    model = create_model("baseline_cnn", num_classes=len(labels), **kwargs)
    info = ModelInfo(arch="baseline_cnn", labels=labels, arch_kwargs=kwargs, training_data="random init (tests)")
    return export_onnx(model, info, path)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny baseline CNN with random weights and the FER2013 labels, exported through the real export path."""
    from emolive.models.labels import EMOTIONS

    return random_tiny_model(tmp_path_factory.mktemp("model") / "tiny.onnx", EMOTIONS)


@pytest.fixture(scope="session")
def tiny_ferplus_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Like :func:`tiny_model`, with the 8 FER+ labels in FER+ order (as the shipped ``ferplus`` model)."""
    from emolive.models.labels import FERPLUS_EMOTIONS

    return random_tiny_model(tmp_path_factory.mktemp("ferplus_model") / "tiny_ferplus.onnx", FERPLUS_EMOTIONS)


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


@pytest.fixture(scope="session")
def tiny_model_with_head(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny CNN with a random-weight temporal head beside it (as train-temporal --install leaves it)."""
    torch = pytest.importorskip("torch")
    import shutil

    from emolive.models.labels import EMOTIONS
    from emolive.models.shipped import file_sha256
    from emolive.models.temporal import TemporalHead, export_temporal_onnx
    from emolive.models.temporal_info import TemporalInfo, temporal_head_path

    cnn = tmp_path_factory.mktemp("with_head") / "tiny.onnx"
    shutil.copyfile(tiny_model, cnn)
    torch.manual_seed(1)
    head = TemporalHead(16, len(EMOTIONS), projection=8, hidden_size=6).eval()
    info = TemporalInfo(labels=EMOTIONS, feature_dim=16, hidden_size=6, projection=8, cnn_sha256=file_sha256(cnn), cnn_name=cnn.name)
    export_temporal_onnx(head, info, temporal_head_path(cnn))
    from safetensors.torch import save_file

    save_file(head.state_dict(), str(cnn.with_name("head.safetensors")))  # for tests comparing against PyTorch
    return cnn


def learnable_fer_csv(path: Path, n: int = 420) -> Path:
    """A tiny FER2013-format CSV (Training/PublicTest/PrivateTest) where each class is a distinct brightness
    stripe, so a few epochs learn it."""
    rng = np.random.default_rng(0)
    rows = ["emotion,pixels,Usage"]
    for i in range(n):
        label = i % 7
        image = np.zeros((48, 48), np.float32)
        image[:, label * 6:label * 6 + 12] = 200
        image += rng.normal(0, 20, image.shape)
        usage = "Training" if i % 5 < 3 else ("PublicTest" if i % 5 == 3 else "PrivateTest")
        rows.append(f"{label},{' '.join(map(str, np.clip(image, 0, 255).astype(np.uint8).ravel()))},{usage}")
    path.write_text("\n".join(rows) + "\n")
    return path


def int8_weight_range(path: Path) -> tuple[int, int]:
    """The smallest and largest value of the int8 initializers (weights and their zero points) of an ONNX file."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    weights = [numpy_helper.to_array(t) for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    return min(int(w.min()) for w in weights), max(int(w.max()) for w in weights)
