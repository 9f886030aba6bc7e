"""emolive.realtime: capture, detection, inference, tracking, overlay, sinks, pipeline and CLI."""

from .detectors import FaceDetector, HaarDetector, MediaPipeDetector, WholeImageDetector, create_detector
from .engines import InferenceEngine, OnnxRuntimeEngine, create_engine
from .overlay import draw_faces
from .pipeline import Recognizer
from .records import Detection, FaceResult, Frame, FrameResult
from .sinks import JsonlSink, VideoSink, WindowSink
from .sources import FrameSource, SourceInfo, open_source
from .tracking import IoUTracker

__all__ = [
    "Detection",
    "FaceDetector",
    "FaceResult",
    "Frame",
    "FrameResult",
    "FrameSource",
    "HaarDetector",
    "InferenceEngine",
    "IoUTracker",
    "JsonlSink",
    "MediaPipeDetector",
    "OnnxRuntimeEngine",
    "Recognizer",
    "SourceInfo",
    "VideoSink",
    "WholeImageDetector",
    "WindowSink",
    "create_detector",
    "create_engine",
    "draw_faces",
    "open_source",
]
