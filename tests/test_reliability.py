"""Bad input, device faults, interrupts and long runs: each case a user can hit, with what they see."""

import http.server
import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
from functools import partial

import cv2
import numpy as np
import pytest

from conftest import face_video
from emolive.models.errors import InputError, ModelError, SourceError
from emolive.realtime import Recognizer
from emolive.realtime.cli import main
from emolive.realtime.records import Frame


def _annotate(*args):
    return subprocess.run([sys.executable, "-m", "emolive.realtime.cli", "annotate", *args, "--quiet"],
                          capture_output=True, text=True, timeout=300)


def _jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _frame_count(path):
    capture = cv2.VideoCapture(str(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        capture.release()


def _mjpg_avi_bytes(path, sample, frames=30):
    """The bytes of an MJPG AVI of the sample photo (each frame a separate JPEG: easy to cut anywhere)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for _ in range(frames):
        writer.write(cv2.resize(sample, (320, 240)))
    writer.release()
    return path.read_bytes()


# -- inputs ----------------------------------------------------------------------------------------

def test_truncated_video_stops_at_the_last_good_frame_with_a_warning(tmp_path, tiny_model, sample_bgr):
    data = _mjpg_avi_bytes(tmp_path / "full.avi", sample_bgr)
    (tmp_path / "cut.avi").write_bytes(data[: int(len(data) * 0.6)])
    result = _annotate(str(tmp_path / "cut.avi"), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_model), "--no-report")
    assert result.returncode == 0, result.stderr
    assert "truncated or damaged" in result.stderr
    records = _jsonl(tmp_path / "out.jsonl")
    assert 0 < len(records) < 30 and _frame_count(tmp_path / "out.mp4") == len(records)


@pytest.mark.parametrize("shape", [(1, 1, 3), (3, 7), (47, 3, 3), (241, 321, 3), (20, 20, 3)])
def test_odd_and_tiny_images_are_annotated(tmp_path, tiny_model, shape):
    image = np.random.default_rng(0).integers(0, 255, shape, dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "in.png"), image)
    assert main(["annotate", str(tmp_path / "in.png"), "-o", str(tmp_path / "out.png"), "--model", str(tiny_model), "--quiet"]) == 0
    assert cv2.imread(str(tmp_path / "out.png")).shape[:2] == shape[:2]


def test_odd_sized_video_keeps_its_frames(tmp_path, tiny_model, sample_bgr):
    clip = face_video(tmp_path / "odd.avi", sample_bgr, frames=9, size=(321, 241))
    assert main(["annotate", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_model), "--quiet", "--no-report"]) == 0
    capture = cv2.VideoCapture(str(tmp_path / "o.mp4"))
    # 4:2:0 codecs store even sizes: 321x241 frames come back within a pixel, every frame kept.
    assert abs(capture.get(cv2.CAP_PROP_FRAME_WIDTH) - 321) <= 1 and abs(capture.get(cv2.CAP_PROP_FRAME_HEIGHT) - 241) <= 1
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 9 == len(_jsonl(tmp_path / "o.jsonl"))


def test_8k_image_with_a_face(tmp_path, tiny_model, sample_bgr):
    big = cv2.resize(sample_bgr, (4320, 4320))
    canvas = np.full((4320, 7680, 3), 80, np.uint8)
    canvas[:, 1680:6000] = big
    cv2.imwrite(str(tmp_path / "8k.jpg"), canvas)
    assert main(["annotate", str(tmp_path / "8k.jpg"), "-o", str(tmp_path / "o.jpg"), "--model", str(tiny_model), "--quiet"]) == 0
    (record,) = _jsonl(tmp_path / "o.jsonl")
    assert len(record["faces"]) == 1


def test_gray_bgra_and_16_bit_image_files(tmp_path, tiny_model, sample_bgr):
    cv2.imwrite(str(tmp_path / "gray.jpg"), cv2.cvtColor(sample_bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(tmp_path / "bgra.png"), cv2.cvtColor(sample_bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(tmp_path / "deep.png"), sample_bgr.astype(np.uint16) * 257)
    assert main(["annotate", str(tmp_path), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet"]) == 0
    records = _jsonl(tmp_path / "out" / "annotations.jsonl")
    assert [len(r["faces"]) for r in records] == [1, 1, 1]


def test_thirty_six_faces_are_classified_in_one_batch(tmp_path, tiny_model, sample_bgr):
    face = cv2.resize(sample_bgr[40:260, 130:330], (120, 132))
    grid = np.full((900, 840, 3), 100, np.uint8)
    for r in range(6):
        for c in range(6):
            grid[r * 150 + 9:r * 150 + 141, c * 140 + 10:c * 140 + 130] = face
    with Recognizer(tiny_model, detector="haar") as recognizer:
        batches = []
        original = recognizer.engine.infer
        recognizer.engine.infer = lambda batch: batches.append(len(batch)) or original(batch)
        faces = recognizer.predict(grid)
    assert len(faces) >= 30 and batches == [len(faces)]


def test_file_names_that_are_not_utf8(tmp_path, tiny_model, sample_bgr):
    folder = os.fsencode(tmp_path / "in")
    os.mkdir(folder)
    ok, data = cv2.imencode(".png", sample_bgr)
    with open(os.path.join(folder, b"caf\xe9 face \xff.png"), "wb") as handle:  # Latin-1 bytes, invalid UTF-8
        handle.write(data.tobytes())
    assert main(["annotate", os.fsdecode(folder), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet"]) == 0
    (record,) = _jsonl(tmp_path / "out" / "annotations.jsonl")
    assert len(record["faces"]) == 1 and os.fsencode(record["source"]).endswith(b"caf\xe9 face \xff.png")
    assert os.path.exists(os.path.join(os.fsencode(tmp_path / "out"), b"caf\xe9 face \xff.png"))


@pytest.mark.parametrize("where", ["/proc/emolive-no-such/out.jpg", "{tmp}/a_file.txt/out.jpg"])
def test_unwritable_output_location_is_a_one_line_error(tmp_path, tiny_model, where):
    (tmp_path / "a_file.txt").write_text("x")
    result = _annotate("-o", where.format(tmp=tmp_path), "--model", str(tiny_model))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "cannot create output folder" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "emolive.realtime.cli", "annotate", "missing.mp4", "-o", "x.mp4", "--debug"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode != 0 and "Traceback" in result.stderr and "InputError" in result.stderr


def test_blur_hides_faces_in_the_output(tmp_path, tiny_model, sample_bgr):
    cv2.imwrite(str(tmp_path / "in.png"), sample_bgr)
    assert main(["annotate", str(tmp_path / "in.png"), "-o", str(tmp_path / "blur.png"), "--model", str(tiny_model), "--quiet", "--blur"]) == 0
    (record,) = _jsonl(tmp_path / "blur.jsonl")
    x, y, w, h = record["faces"][0]["box"]
    inner = (slice(y + 8, y + h - 8), slice(x + 8, x + w - 8))
    sharp = cv2.Laplacian(cv2.cvtColor(sample_bgr, cv2.COLOR_BGR2GRAY)[inner], cv2.CV_64F).var()
    blurred = cv2.Laplacian(cv2.cvtColor(cv2.imread(str(tmp_path / "blur.png")), cv2.COLOR_BGR2GRAY)[inner], cv2.CV_64F).var()
    assert blurred < sharp / 20


def _rotated_video(path, upright, frames=4):
    """An MP4 as phones write them: sideways pixels plus a 90-degree display matrix in the track header."""
    stored = cv2.rotate(upright, cv2.ROTATE_90_COUNTERCLOCKWISE)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (stored.shape[1], stored.shape[0]))
    for _ in range(frames):
        writer.write(stored)
    writer.release()
    data = bytearray(path.read_bytes())
    identity = struct.pack(">9i", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    at = data.find(identity, data.find(b"tkhd"))
    assert at > 0, "no track header matrix found"
    data[at:at + 36] = struct.pack(">9i", 0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000)
    path.write_bytes(bytes(data))
    return path


def test_phone_video_with_a_rotation_is_read_upright(tmp_path, tiny_model, sample_bgr):
    upright = np.full((360, 240, 3), 90, np.uint8)
    upright[60:300] = cv2.resize(sample_bgr, (240, 240))
    clip = _rotated_video(tmp_path / "phone.mp4", upright)
    assert main(["annotate", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_model), "--quiet", "--no-report"]) == 0
    capture = cv2.VideoCapture(str(tmp_path / "out.mp4"))
    ok, first = capture.read()
    capture.release()
    assert ok and first.shape == upright.shape  # written upright, 240 wide and 360 high
    records = _jsonl(tmp_path / "out.jsonl")
    assert len(records) == 4 and all(len(r["faces"]) == 1 for r in records)
    x, y, w, h = records[0]["faces"][0]["box"]
    assert 60 <= y + h // 2 <= 300 and x + w <= 240  # the face where it is in the upright frame


def test_video_without_decodable_frames_is_an_error_and_leaves_no_files(tmp_path, tiny_model, sample_bgr):
    data = _mjpg_avi_bytes(tmp_path / "full.avi", sample_bgr)
    header_end = data.find(b"movi") + 4  # the header and index start, no frame data
    (tmp_path / "empty.avi").write_bytes(data[:header_end])
    result = _annotate(str(tmp_path / "empty.avi"), "-o", str(tmp_path / "out" / "o.mp4"), "--model", str(tiny_model))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no decodable" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_video_path_that_is_not_utf8_is_a_one_line_error(tmp_path, tiny_model, sample_bgr):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=2)
    odd = os.path.join(os.fsencode(tmp_path), b"clip \xff.mp4")
    os.rename(os.fsencode(clip), odd)
    result = _annotate(os.fsdecode(odd), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_model))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "not valid UTF-8" in result.stderr
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=2)
    result = _annotate(str(clip), "-o", os.fsdecode(os.fsencode(tmp_path) + b"/out \xff.mp4"), "--model", str(tiny_model))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "not valid UTF-8" in result.stderr


def test_folder_named_like_a_camera_index_and_a_broken_first_image(tmp_path, tiny_model, sample_bgr, monkeypatch):
    folder = tmp_path / "2024"
    folder.mkdir()
    (folder / "a_broken.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(folder / "b_face.png"), sample_bgr)
    (tmp_path / "out.v1").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["annotate", "2024", "-o", "out.v1", "--model", str(tiny_model), "--quiet", "--no-report"]) == 0
    (record,) = _jsonl(tmp_path / "out.v1" / "annotations.jsonl")  # an existing output folder may have a dot in its name
    assert record["source"].endswith("b_face.png") and len(record["faces"]) == 1


def test_jsonl_path_without_suffix_is_a_file(tmp_path, tiny_model, sample_bgr):
    cv2.imwrite(str(tmp_path / "in.png"), sample_bgr)
    assert main(["annotate", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"), "--jsonl", str(tmp_path / "records"),
                 "--model", str(tiny_model), "--quiet"]) == 0
    assert (tmp_path / "records").is_file() and len(_jsonl(tmp_path / "records")) == 1


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux) to simulate a full disk")
def test_full_disk_while_writing_records_is_a_one_line_error(tmp_path, tiny_model, sample_bgr):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=3)
    os.symlink("/dev/full", tmp_path / "full.jsonl")
    result = _annotate(str(clip), "-o", str(tmp_path / "out.mp4"), "--jsonl", str(tmp_path / "full.jsonl"), "--model", str(tiny_model))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "No space left on device" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out.mp4").exists()  # the run failed: no half video under the final name


# -- cameras and streams ---------------------------------------------------------------------------

class FakeCapture:
    """A capture that delivers ``frames`` frames, then fails (like an unplugged camera)."""

    def __init__(self, frames: int):
        self.left = frames

    def read(self):
        if self.left <= 0:
            return False, None
        self.left -= 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def release(self):
        pass


def _camera(monkeypatch, opens):
    import emolive.realtime.sources as sources

    calls = iter(opens)
    monkeypatch.setattr(sources, "_open_capture", lambda location: next(calls))
    monkeypatch.setattr(sources.time, "sleep", lambda seconds: None)
    info = sources.SourceInfo("camera", "0", 30.0, None, 8, 8)
    return sources, info


def test_camera_that_comes_back_is_reconnected(monkeypatch, caplog):
    sources, info = _camera(monkeypatch, [FakeCapture(3), None, FakeCapture(2), None, None])
    with pytest.raises(SourceError, match="did not come back after 2 reconnect attempts"):
        frames = []
        for frame in sources.iter_capture(info, sources.ReconnectPolicy(attempts=2)):
            frames.append(frame.index)
    assert frames == [0, 1, 2, 3, 4]  # 3 frames, one failed reopen, then 2 more frames from the reopened camera
    assert "reconnecting in" in caplog.text


def test_camera_that_stays_away_ends_with_a_clear_error_after_bounded_retries(monkeypatch):
    sources, info = _camera(monkeypatch, [FakeCapture(4), None, None, None])
    policy = sources.ReconnectPolicy(attempts=3, first_delay=0.5, factor=2.0, max_delay=1.5)
    assert policy.delays() == [0.5, 1.0, 1.5]
    delivered = []
    with pytest.raises(SourceError, match="stopped delivering frames"):
        for frame in sources.iter_capture(info, policy):
            delivered.append(frame.index)
    assert delivered == [0, 1, 2, 3]  # every frame before the fault reached the consumer


def test_http_stream_source(tmp_path, tiny_model, sample_bgr):
    face_video(tmp_path / "clip.mp4", sample_bgr, frames=12)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.mp4"
        with Recognizer(tiny_model) as recognizer:
            results = list(recognizer.stream(url))
        assert len(results) == 12 and all(r.faces for r in results)
        with pytest.raises(SourceError, match="cannot be opened"):
            from emolive.realtime.sources import open_source

            open_source(f"http://127.0.0.1:{server.server_address[1]}/missing.mp4")
    finally:
        server.shutdown()


# -- models ----------------------------------------------------------------------------------------

def test_foreign_truncated_and_mismatched_onnx_models(tmp_path, tiny_model):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from emolive.realtime.engines import OnnxRuntimeEngine

    graph = helper.make_graph([helper.make_node("Identity", ["input"], ["logits"])], "foreign",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 1, 48, 48])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 1, 48, 48])])
    onnx.save(helper.make_model(graph), tmp_path / "foreign.onnx")
    with pytest.raises(ModelError, match="no 'emolive' metadata"):
        OnnxRuntimeEngine(tmp_path / "foreign.onnx")
    data = tiny_model.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OnnxRuntimeEngine(tmp_path / "cut.onnx")
    model = onnx.load(tiny_model)
    for prop in model.metadata_props:
        if prop.key == "emolive":
            meta = json.loads(prop.value)
            meta["labels"] = ["a", "b", "c"]
            prop.value = json.dumps(meta)
    onnx.save(model, tmp_path / "three.onnx")
    with pytest.raises(ModelError, match="outputs 7 classes but its metadata lists 3 labels"):
        OnnxRuntimeEngine(tmp_path / "three.onnx")


def test_no_pickle_loading_anywhere():
    from conftest import REPO

    for folder in ("models", "realtime", "training", "calibration"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "import pickle" not in text and "pickle.load" not in text, path
            for line in text.splitlines():
                if "torch.load(" in line:
                    assert "weights_only=True" in line, f"{path}: {line.strip()}"
            assert "allow_pickle=True" not in text, path


# -- interrupts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupt_leaves_a_playable_video_and_valid_jsonl(tmp_path, tiny_model, sample_bgr, sig):
    clip = face_video(tmp_path / "long.mp4", sample_bgr, frames=600)
    out, jsonl = tmp_path / "out" / "o.mp4", tmp_path / "out" / "o.jsonl"
    process = subprocess.Popen([sys.executable, "-m", "emolive.realtime.cli", "annotate", str(clip), "-o", str(out),
                                "--model", str(tiny_model), "--quiet", "--no-report"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and (not jsonl.exists() or len(jsonl.read_text().splitlines()) < 10):
        time.sleep(0.1)
    process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "interrupted after" in err and "Traceback" not in err
    records = _jsonl(jsonl)  # every line is complete JSON
    assert 10 <= len(records) < 600 and [r["frame"] for r in records] == list(range(len(records)))
    assert _frame_count(out) == len(records)  # finalized, playable, same frames as the records
    assert sorted(p.name for p in out.parent.iterdir()) == ["o.jsonl", "o.mp4"]  # no temporary files left


# -- long runs -------------------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="RSS is read from /proc (Linux)")
def test_soak_20000_frames_flat_memory_and_no_slowdown(tiny_model):
    from emolive.realtime.samples import synthetic_frames

    frames = list(synthetic_frames(200, faces=3))
    stream = (Frame(i, i / 30.0, "soak", frames[i % 200].image) for i in range(20_000))
    rss, times = {}, []
    with Recognizer(tiny_model, smooth="ema") as recognizer:
        tic = time.perf_counter()
        for result in recognizer.stream(stream):
            assert len(result.faces) >= 2
            index = result.frame.index
            if index % 1000 == 999:
                times.append(time.perf_counter() - tic)
                tic = time.perf_counter()
            if index in (1999, 19_999):
                rss[index] = _rss_mb()
    assert rss[19_999] - rss[1999] < 50, rss  # flat memory after warm-up
    assert np.median(times[-3:]) < 1.5 * np.median(times[2:5]), times  # no slowdown


def test_random_frames_never_raise_anything_but_documented_errors(tiny_model):
    pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import arrays

    recognizer = Recognizer(tiny_model)
    dtypes = st.sampled_from([np.uint8, np.uint16, np.float32, np.float64, np.int32, np.bool_])
    shapes = st.one_of(st.tuples(st.integers(0, 64), st.integers(0, 64)),
                       st.tuples(st.integers(0, 64), st.integers(0, 64), st.sampled_from([1, 2, 3, 4, 5])))

    @settings(max_examples=300, deadline=None, database=None)
    @given(arrays(dtypes, shapes))
    def check(image):
        try:
            faces = recognizer.predict(image)
        except InputError:
            return
        for face in faces:
            assert abs(sum(face.probs) - 1.0) < 1e-3

    try:
        check()
    finally:
        recognizer.close()


def test_nothing_leaves_the_machine(tmp_path, monkeypatch, sample_bgr):
    """A whole run with the shipped model, detector and report, with every outgoing connection refused."""
    import socket

    def refuse(self, address):
        raise AssertionError(f"emolive tried to connect to {address}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: refuse(None, a[0] if a else None))
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=6)
    assert main(["annotate", str(clip), "-o", str(tmp_path / "o.mp4"), "--quiet"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.mp4", "o.jsonl", "o.mp4", "o_report"]  # no crops saved unasked
