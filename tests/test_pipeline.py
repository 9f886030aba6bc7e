import numpy as np
import pytest

from conftest import face_video
from emolive.models.errors import EngineUnavailableError, InputError, ModelError
from emolive.realtime import Recognizer
from emolive.realtime.engines import OnnxRuntimeEngine, create_engine
from emolive.realtime.sources import open_source


def test_engine_reads_labels_and_preprocessing_from_the_model(tiny_model):
    with OnnxRuntimeEngine(tiny_model) as engine:
        assert engine.info.labels[3] == "happy"
        probs = engine.classify(np.zeros((4, 1, 48, 48), np.float32))
        assert probs.shape == (4, 7)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        assert engine.classify(np.zeros((0, 1, 48, 48), np.float32)).shape == (0, 7)


def test_unavailable_engine_and_missing_model_fail_clearly(tiny_model, tmp_path):
    with pytest.raises(EngineUnavailableError, match="onnxruntime"):
        create_engine("tensorrt", tiny_model)
    with pytest.raises(ModelError, match="does not exist"):
        OnnxRuntimeEngine(tmp_path / "nope.onnx")


def test_predict_one_image(tiny_model, sample_bgr):
    with Recognizer(tiny_model) as recognizer:
        faces = recognizer.predict(sample_bgr)
        assert len(faces) == 1
        face = faces[0]
        assert face.id == 1 and face.label in recognizer.labels
        assert sum(face.probs) == pytest.approx(1.0, abs=1e-4)
        assert recognizer.predict(np.full((200, 300, 3), 50, np.uint8)) == []


def test_all_faces_of_a_frame_go_through_one_batched_call(tiny_model, sample_bgr):
    calls = []
    with Recognizer(tiny_model) as recognizer:
        original = recognizer.engine.infer
        recognizer.engine.infer = lambda batch: calls.append(len(batch)) or original(batch)
        side_by_side = np.hstack([sample_bgr, sample_bgr, sample_bgr])
        faces = recognizer.predict(side_by_side)
    assert len(faces) == 3 and calls == [3]


def test_stream_video_gives_one_result_per_frame_with_stable_ids_and_timings(tiny_model, sample_bgr, tmp_path):
    path = face_video(tmp_path / "clip.mp4", sample_bgr, frames=15)
    with Recognizer(tiny_model) as recognizer:
        results = list(recognizer.stream(str(path)))
    assert [r.frame.index for r in results] == list(range(15))
    ids = {face.id for r in results for face in r.faces}
    assert ids == {1}
    assert sum(bool(r.faces) for r in results) >= 14
    assert set(results[0].timings) == {"decode", "detect", "preprocess", "classify", "track"}


def test_a_file_stream_locates_faces_on_a_second_thread_with_the_results_of_frame_by_frame_processing(tiny_model, sample_bgr, tmp_path):
    import threading

    from emolive.realtime.sources import open_source

    path = face_video(tmp_path / "clip.mp4", sample_bgr, frames=24)
    with Recognizer(tiny_model, smooth="ema", detect_every=3) as recognizer:
        recognizer.reset()
        expected = [recognizer.process(frame) for frame in open_source(str(path))]
        threads = []
        original = recognizer._locate
        recognizer._locate = lambda frame, track: threads.append(threading.current_thread().name) or original(frame, track)
        streamed = list(recognizer.stream(str(path)))
    assert set(threads) == {"emolive-locate"}
    assert [r.detected for r in streamed] == [r.detected for r in expected] and not all(r.detected for r in expected)
    assert [[f.to_dict() for f in r.faces] for r in streamed] == [[f.to_dict() for f in r.faces] for r in expected]


def test_an_error_while_locating_reaches_the_caller_and_stops_the_stream(tiny_model, sample_bgr, tmp_path):
    path = face_video(tmp_path / "clip.mp4", sample_bgr, frames=10)
    with Recognizer(tiny_model) as recognizer:
        original = recognizer._locate

        def fail_on_frame_4(frame, track):
            if frame.index == 4:
                raise RuntimeError("detector failed")
            return original(frame, track)

        recognizer._locate = fail_on_frame_4
        seen = []
        with pytest.raises(RuntimeError, match="detector failed"):
            for result in recognizer.stream(str(path)):
                seen.append(result.frame.index)
    assert seen == [0, 1, 2, 3]


def test_one_recognizer_runs_one_stream_at_a_time(tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "c.mp4", sample_bgr, frames=6)
    with Recognizer(tiny_model) as recognizer:
        first = recognizer.stream(str(clip))
        next(first)
        with pytest.raises(InputError, match="running a stream"):
            next(recognizer.stream(str(clip)))  # would share tracks, smoothing and the detector's locate thread
        with pytest.raises(InputError, match="running a stream"):
            recognizer.process(next(iter(open_source(clip))))
        assert len(list(first)) == 5  # the first stream is unharmed
        assert len(list(recognizer.stream(str(clip)))) == 6  # and once it is done, the next one runs
        abandoned = recognizer.stream(str(clip))
        next(abandoned)
        abandoned.close()
        assert len(list(recognizer.stream(str(clip)))) == 6


def test_whole_image_detector_classifies_pre_cropped_faces(tiny_model):
    crop = np.random.default_rng(0).integers(0, 255, (48, 48), dtype=np.uint8)
    with Recognizer(tiny_model, detector="none") as recognizer:
        (face,) = recognizer.predict(crop)
        assert face.box == (0, 0, 48, 48)


def test_public_api_surface():
    import emolive.models as models
    import emolive.realtime as realtime

    for module in (models, realtime):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
    assert {"Recognizer", "FaceResult", "FrameResult", "open_source", "create_detector"} <= set(realtime.__all__)
    assert {"preprocess_faces", "PreprocessSpec", "EMOTIONS", "EmoliveError"} <= set(models.__all__)


def test_the_recognizer_cnn_threads_sleep_between_calls_instead_of_spinning(tiny_model):
    # Busy-waiting ONNX Runtime threads take the cores the decode, locate and writer threads need.
    with Recognizer(tiny_model) as recognizer:
        options = recognizer.engine._session.get_session_options()
        assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with OnnxRuntimeEngine(tiny_model) as engine:  # evaluation keeps ONNX Runtime's default
        with pytest.raises(RuntimeError, match="allow_spinning"):  # no such entry: the default, spinning
            engine._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
