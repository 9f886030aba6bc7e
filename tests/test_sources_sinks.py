import json

import cv2
import numpy as np
import pytest

from conftest import face_video
from emolive.models.errors import InputError, OutputError
from emolive.realtime.records import FaceResult, Frame, FrameResult
from emolive.realtime.sinks import JsonlSink, VideoSink
from emolive.realtime.sources import open_source


def test_video_source_yields_every_frame_in_order(tmp_path, sample_bgr):
    path = face_video(tmp_path / "clip.mp4", sample_bgr, frames=12, fps=24.0)
    source = open_source(path)
    assert source.info.kind == "video" and source.info.frame_count == 12 and source.info.fps == pytest.approx(24.0)
    frames = list(source)
    assert [f.index for f in frames] == list(range(12))
    assert frames[6].time == pytest.approx(0.25)


def test_folder_source_is_natural_ordered_and_skips_broken_files(tmp_path, sample_bgr, caplog):
    for name in ("frame10.png", "frame2.png", "frame1.jpg"):
        cv2.imwrite(str(tmp_path / name), sample_bgr)
    (tmp_path / "frame3.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    source = open_source(tmp_path)
    assert source.info.kind == "folder"
    names = [f.source.rsplit("/", 1)[-1] for f in source]
    assert names == ["frame1.jpg", "frame2.png", "frame10.png"]
    assert "frame3.jpg" in caplog.text


def test_unicode_and_spaces_in_image_paths(tmp_path, sample_bgr):
    path = tmp_path / "dossier é 写真" / "visage heureux.png"
    path.parent.mkdir()
    ok, data = cv2.imencode(".png", sample_bgr)
    data.tofile(path)
    (frame,) = list(open_source(path))
    assert frame.image.shape == sample_bgr.shape


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "missing.mp4", "does not exist"),
    (lambda p: (p / "e").mkdir() or p / "e", "has no images"),
    (lambda p: (p / "a.xyz").write_text("x") and p / "a.xyz", "unsupported input type"),
    (lambda p: (p / "b.png").write_bytes(b"\x89PNG broken") and p / "b.png", "not a readable image"),
    (lambda p: (p / "zero.jpg").write_bytes(b"") or p / "zero.jpg", "not a readable image"),
    (lambda p: (p / "c.mp4").write_bytes(b"garbage") and p / "c.mp4", "cannot be opened as a video"),
])
def test_bad_inputs_raise_input_error(tmp_path, make, message):
    with pytest.raises(InputError, match=message):
        open_source(make(tmp_path))


def test_video_sink_writes_all_frames_and_no_partial_file_on_crash(tmp_path):
    frames = [np.full((64, 80, 3), i * 10, np.uint8) for i in range(7)]
    with VideoSink(tmp_path / "ok.mp4", 10.0, (80, 64)) as sink:
        for frame in frames:
            sink.write(frame)
    capture = cv2.VideoCapture(str(tmp_path / "ok.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 7
    capture.release()
    with pytest.raises(RuntimeError):
        with VideoSink(tmp_path / "crash.mp4", 10.0, (80, 64)) as sink:
            sink.write(frames[0])
            raise RuntimeError("boom")
    assert not (tmp_path / "crash.mp4").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ok.mp4"]


def test_video_sink_rejects_unknown_formats(tmp_path):
    with pytest.raises(OutputError, match="cannot write video"):
        VideoSink(tmp_path / "x.gif", 10.0, (8, 8))


def test_jsonl_sink_writes_one_flushed_line_per_frame(tmp_path):
    labels = ("a", "b")
    face = FaceResult(id=3, box=(1, 2, 3, 4), detection_score=0.9, labels=labels, probs=(0.25, 0.75))
    with JsonlSink(tmp_path / "r.jsonl") as sink:
        sink.write(FrameResult(Frame(0, 0.0, "v.mp4", np.zeros((1, 1))), (face,)))
        assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 1  # flushed before close
        sink.write(FrameResult(Frame(1, 0.04, "v.mp4", np.zeros((1, 1))), ()))
    first, second = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert first == {"frame": 0, "time": 0.0, "source": "v.mp4", "detected": True, "faces": [
        {"id": 3, "box": [1, 2, 3, 4], "detection_score": 0.9, "label": "b", "confidence": 0.75, "probs": {"a": 0.25, "b": 0.75}}]}
    assert second["faces"] == []


def test_latest_frame_reader_skips_and_counts_frames_a_slow_consumer_misses():
    import time

    from emolive.realtime.sources import LatestFrameReader

    def camera(n=60):
        for i in range(n):
            time.sleep(0.005)  # 200 FPS "camera"
            yield Frame(i, i * 0.005, "cam", np.zeros((2, 2), np.uint8))

    reader = LatestFrameReader(camera())
    seen = []
    for frame in reader:
        seen.append(frame.index)
        time.sleep(0.02)  # a consumer 4x slower than the camera
    assert seen == sorted(seen) and seen[-1] == 59  # always newer frames, and the last one arrives
    assert len(seen) + reader.dropped == reader.read == 60
    assert reader.dropped > 20


def test_latest_frame_reader_stops_and_closes_the_source_when_the_consumer_stops():
    from emolive.realtime.sources import LatestFrameReader

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield Frame(i, 0.0, "cam", np.zeros((2, 2), np.uint8))
                i += 1
        finally:
            closed.append(True)

    for _ in LatestFrameReader(endless()):
        break
    assert closed == [True]


def test_latest_frame_reader_reraises_source_errors():
    from emolive.models.errors import SourceError
    from emolive.realtime.sources import LatestFrameReader

    def failing():
        yield Frame(0, 0.0, "cam", np.zeros((2, 2), np.uint8))
        raise SourceError("camera unplugged")

    with pytest.raises(SourceError, match="unplugged"):
        for _ in LatestFrameReader(failing()):
            pass
