"""Live mode in a real window on a virtual display (Xvfb): plays a file like a camera, q quits."""

import json
import os
import shutil
import subprocess
import sys
import time

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
    assert len(records) == 20 and sum(bool(r["faces"]) for r in records) >= 19
    assert "live: 20 frames" in err


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
