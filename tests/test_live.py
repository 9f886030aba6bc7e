"""Live mode in a real window on a virtual display (Xvfb): plays a file like a camera, q quits."""

import json
import os
import re
import shutil
import subprocess
import sys
import time

import cv2
import pytest

from conftest import face_video


@pytest.fixture(scope="module")
def display():
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (apt-get install xvfb); the live window needs a display")
    number = 90 + os.getpid() % 9
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x720x24", "-nolisten", "tcp"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if server.poll() is not None:
        pytest.skip("Xvfb did not start")
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


def _live(display, tiny_model, *args):
    env = {**os.environ, "DISPLAY": display}
    return subprocess.Popen([sys.executable, "-m", "emolive.realtime.cli", "--model", str(tiny_model), *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_live_window_plays_a_file_to_the_end(display, tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=20, fps=25.0)
    process = _live(display, tiny_model, "--source", str(clip), "--jsonl", str(tmp_path / "r.jsonl"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    shown, dropped = re.search(r"live: (\d+) frames in .* (\d+) dropped", err).groups()
    assert len(records) == int(shown) and int(shown) + int(dropped) == 20  # played at 25 FPS, late frames dropped
    assert int(shown) >= 10 and all(r["faces"] for r in records)
    p50, p95 = map(float, re.search(r"latency capture->overlay p50 ([\d.]+) ms p95 ([\d.]+) ms", err).groups())
    assert 0 < p50 <= p95
    seconds = float(re.search(r"frames in ([\d.]+) s", err).group(1))
    assert seconds >= 20 / 25.0 * 0.9  # never faster than the file's own frame rate


def test_without_a_display_live_fails_in_one_line_and_creates_no_files(tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=3)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    result = subprocess.run([sys.executable, "-m", "emolive.realtime.cli", "--model", str(tiny_model), "--source", str(clip),
                             "--jsonl", str(tmp_path / "out" / "r.jsonl"), "--record", str(tmp_path / "out" / "r.mp4")],
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no display" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_recording_a_still_image_plays_at_30_fps(display, tiny_model, sample_bgr, tmp_path):
    cv2.imwrite(str(tmp_path / "face.png"), sample_bgr)
    process = _live(display, tiny_model, "--source", str(tmp_path / "face.png"), "--record", str(tmp_path / "rec.mp4"))
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    capture = cv2.VideoCapture(str(tmp_path / "rec.mp4"))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.release()
    assert fps == 30.0 and frames == 1


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed (apt-get install xdotool)")
def test_q_closes_the_live_window(display, tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "long.mp4", sample_bgr, frames=300, fps=25.0)  # 12 s at its native rate
    jsonl = tmp_path / "r.jsonl"
    process = _live(display, tiny_model, "--source", str(clip), "--jsonl", str(jsonl))
    deadline = time.time() + 60
    while time.time() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 5):
        time.sleep(0.2)
    env = {**os.environ, "DISPLAY": display}
    subprocess.run(["xdotool", "search", "--name", "emolive", "windowfocus", "--sync", "key", "q"], env=env, timeout=30, check=False)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    frames = len(jsonl.read_text().splitlines())
    assert 5 <= frames < 300  # stopped by the key, well before the clip's end


@pytest.mark.skipif(shutil.which("xdotool") is None, reason="xdotool is not installed (apt-get install xdotool)")
def test_keys_bars_snapshot_pause_and_quit(display, tiny_model, sample_bgr, tmp_path):
    import cv2
    import numpy as np

    clip = face_video(tmp_path / "long.mp4", sample_bgr, frames=300, fps=25.0)
    jsonl, shots = tmp_path / "r.jsonl", tmp_path / "shots"
    process = _live(display, tiny_model, "--source", str(clip), "--jsonl", str(jsonl), "--snapshot-dir", str(shots))
    env = {**os.environ, "DISPLAY": display}

    def lines() -> int:
        return len(jsonl.read_text().splitlines()) if jsonl.exists() else 0

    def press(key: str) -> None:
        subprocess.run(["xdotool", "search", "--name", "emolive", "windowfocus", "--sync", "key", key], env=env, timeout=30, check=False)

    deadline = time.time() + 60
    while time.time() < deadline and lines() < 5:
        time.sleep(0.2)
    press("d")
    time.sleep(0.4)
    press("p")
    time.sleep(0.5)
    paused = lines()
    press("s")  # a snapshot while paused keeps the pause
    time.sleep(1.0)
    assert lines() == paused  # no new frames while paused
    press("p")
    time.sleep(0.8)
    press("q")
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert paused < lines() < 300  # resumed after the pause, quit before the end

    (snapshot,) = sorted(shots.glob("emolive_snapshot_*.png"))
    image = cv2.imread(str(snapshot))
    assert image.shape == (360, 480, 3)
    assert image[:8].mean() < 60  # the heads-up line across the top (the clip's background is gray 90)
    bar_background = np.all(image == (30, 30, 30), axis=2).sum()
    assert bar_background > 200  # the probability bars toggled on with d
    assert "snapshot" in err and "face id" in err  # the closing summary


def test_camera_lost_mid_run_ends_cleanly_with_outputs_finalized(display, tiny_model, sample_bgr, tmp_path, monkeypatch):
    import cv2
    import numpy as np

    import emolive.realtime.sources as sources
    from emolive.models.errors import SourceError
    from emolive.realtime import Recognizer
    from emolive.realtime.live import run_live

    frame = cv2.resize(sample_bgr, (320, 240))

    class UnpluggedAfter:
        def __init__(self, frames):
            self.left = frames

        def read(self):
            real_sleep(0.01)
            if self.left <= 0:
                return False, None
            self.left -= 1
            return True, frame.copy()

        def release(self):
            pass

    opens = iter([UnpluggedAfter(25)] + [None] * 5)
    monkeypatch.setattr(sources, "_open_capture", lambda location: next(opens))
    real_sleep = time.sleep
    monkeypatch.setattr(sources.time, "sleep", lambda seconds: None if seconds >= 0.5 else real_sleep(seconds))  # skip backoff waits
    monkeypatch.setenv("DISPLAY", display)
    source = sources.FrameSource(sources.SourceInfo("camera", "0", 30.0, None, 320, 240))
    jsonl, video = tmp_path / "r.jsonl", tmp_path / "rec.mp4"
    with Recognizer(tiny_model) as recognizer, pytest.raises(SourceError, match="did not come back after 5 reconnect attempts"):
        run_live(recognizer, source, jsonl=jsonl, record=video)
    records = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert 0 < len(records) <= 25  # the newest frames were shown; none is half-written
    capture = cv2.VideoCapture(str(video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == len(records)  # the recording was finalized
    capture.release()
    assert np.all([r["faces"] for r in records])
