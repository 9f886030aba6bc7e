"""The CLI contract: outputs for each input kind, one-line errors with exit code 2, no tracebacks."""

import json
import subprocess
import sys

import cv2
import pytest

from conftest import face_video
from emolive.realtime.cli import main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "emolive.realtime.cli", *args], capture_output=True, text=True, timeout=300)


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_annotate_without_input_uses_the_embedded_sample_photo(tmp_path, tiny_model):
    assert main(["annotate", "-o", str(tmp_path / "demo.jpg"), "--model", str(tiny_model), "--quiet"]) == 0
    assert cv2.imread(str(tmp_path / "demo.jpg")).shape == (512, 512, 3)
    (record,) = _lines(tmp_path / "demo.jsonl")
    assert record["frame"] == 0 and len(record["faces"]) == 1
    face = record["faces"][0]
    assert set(face) == {"id", "box", "detection_score", "label", "confidence", "probs"}
    assert face["label"] == max(face["probs"], key=face["probs"].get)


def test_annotate_video_keeps_frame_count_and_fps(tmp_path, tiny_model, sample_bgr):
    clip = face_video(tmp_path / "in clip.mp4", sample_bgr, frames=18, fps=20.0)
    out = tmp_path / "out" / "annotated.mp4"
    assert main(["annotate", str(clip), "-o", str(out), "--jsonl", str(tmp_path / "r.jsonl"), "--model", str(tiny_model), "--quiet"]) == 0
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 18 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(20.0)
    capture.release()
    records = _lines(tmp_path / "r.jsonl")
    assert [r["frame"] for r in records] == list(range(18))
    assert records[5]["time"] == pytest.approx(0.25)


def test_annotate_folder_writes_an_image_per_input_and_one_record_each(tmp_path, tiny_model, sample_bgr):
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.png"):
        cv2.imwrite(str(tmp_path / "in" / name), sample_bgr)
    cv2.imwrite(str(tmp_path / "in" / "empty.png"), sample_bgr[:60, :60] * 0)
    assert main(["annotate", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet"]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.jpg", "annotations.jsonl", "b.png", "empty.png", "report"]
    records = _lines(tmp_path / "out" / "annotations.jsonl")
    assert [len(r["faces"]) for r in records] == [1, 1, 0]  # frames without faces are recorded too
    assert records[0]["source"].endswith("a.jpg")


@pytest.mark.parametrize("args, message", [
    (["annotate", "missing.mp4", "-o", "x.mp4"], "does not exist"),
    (["annotate", "-o", "x.jpg", "--model", "missing.onnx"], "neither a shipped model"),
    (["annotate", "-o", "x.jpg", "--engine", "onnxruntime", "--detector", "none", "--model", "/"], "is a folder"),
    (["--camera", "7"], "camera 7 cannot be opened"),
    (["eval", "--data", "nowhere", "--split", "PrivateTest"], "does not exist"),
    (["annotate", "-o", "x.jpg", "--detector", "yolo"], "invalid choice: 'yolo'"),
    (["annotate"], "required: -o/--output"),
    (["annotate", "-o", "x.jpg", "--engine", "tensorrt"], "engine 'tensorrt' is not available"),
    (["report", "/bin/sh", "-o", "rep"], "not a UTF-8 text file"),
    (["annotate", "-o", "x.jpg", "--detect-every", "3:1"], "write N or N:M with M >= N"),
    (["benchmark", "--synthetic", "--detect-every", "1,x"], "'x' is not N or N:M"),
    (["benchmark", "--synthetic", "--frames", "0"], "--frames must be at least 1"),
    (["benchmark", "--synthetic", "--frames", "2", "--json", "/proc/emolive-no-such/b.json"], "cannot create output folder"),
    (["annotate", "-o", "x.jpg", "--smooth", "ema", "--smooth-alpha", "1.5"], "--smooth-alpha must be in [0, 1)"),
    (["annotate", "-o", "x.jpg", "--threads", "-1"], "--threads: must be 0 (automatic) or a positive count"),
])
def test_user_errors_are_one_line_with_exit_code_2(args, message, tmp_path):
    result = subprocess.run([sys.executable, "-m", "emolive.realtime.cli", *args], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("emo-live: error:") and message in lines[0]


def test_output_equal_to_input_is_refused_and_input_untouched(tmp_path, tiny_model, sample_bgr):
    image = tmp_path / "photo.jpg"
    cv2.imwrite(str(image), sample_bgr)
    before = image.read_bytes()
    assert main(["annotate", str(image), "-o", str(image), "--model", str(tiny_model), "--quiet"]) == 2
    assert image.read_bytes() == before


def test_wrong_output_kind_is_explained(tmp_path, tiny_model, sample_bgr, capsys):
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=3)
    assert main(["annotate", str(clip), "-o", str(tmp_path / "c.png"), "--model", str(tiny_model), "--quiet"]) == 2
    assert "not a video file" in capsys.readouterr().err
    assert not (tmp_path / "c.png").exists()


def test_info_prints_model_metadata(tiny_model, capsys):
    assert main(["info", "--model", str(tiny_model)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["labels"][0] == "angry" and info["preprocess"]["size"] == 48
