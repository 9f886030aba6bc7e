import json

from emolive.realtime.benchmark import STAGE_ORDER, benchmark
from emolive.realtime.cli import main


def test_benchmark_reports_every_stage_and_the_ceiling(tiny_model):
    (row,) = benchmark(None, engines=["onnxruntime"], frames=12, model=str(tiny_model), progress=False)
    assert row.status == "ok" and row.frames == 12
    assert set(row.stages_ms) == set(STAGE_ORDER) and all(v >= 0 for v in row.stages_ms.values())
    assert row.faces_per_frame == 3.0  # the synthetic frames hold three faces
    assert row.fps > 0 and row.ceiling_fps > 0 and row.p95_ms >= row.p50_ms > 0
    assert row.ms_per_face > 0


def test_benchmark_times_the_engine_configured_as_the_pipeline_runs_it(tiny_model, monkeypatch):
    import emolive.realtime.benchmark as bench

    spinning = []
    real = bench.engine_ms_per_face

    def timed(engine, *args, **kwargs):
        options = engine._session.get_session_options()
        spinning.append(options.get_session_config_entry("session.intra_op.allow_spinning"))
        return real(engine, *args, **kwargs)

    monkeypatch.setattr(bench, "engine_ms_per_face", timed)
    benchmark(None, engines=["onnxruntime"], frames=4, model=str(tiny_model), progress=False)
    assert spinning == ["0"]  # as in Recognizer: idle ONNX Runtime threads sleep instead of busy-waiting


def test_benchmark_cli_marks_unavailable_engines_and_writes_json(tiny_model, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["benchmark", "--frames", "5", "--engines", "onnxruntime,tensorrt", "--model", str(tiny_model), "--json", str(out)]) == 0
    table = capsys.readouterr().out
    assert "onnxruntime" in table and "failed" in table
    rows = {row["engine"]: row for row in json.loads(out.read_text())}
    assert rows["onnxruntime"]["status"] == "ok" and rows["tensorrt"]["status"].startswith("failed: ")


def test_benchmark_runs_both_precisions_of_a_shipped_model_either_way_round(tiny_model):
    from emolive.models.shipped import resolve_model_path
    from emolive.realtime.benchmark import _variants

    fp32, int8 = resolve_model_path("fer2013_face_resnet_s_views4"), resolve_model_path("fer2013_face_resnet_s_views4_int8")
    expected = [("onnxruntime", "fp32", fp32), ("onnxruntime", "int8", int8)]
    assert _variants(["onnxruntime"], fp32) == expected
    assert _variants(["onnxruntime", "torch"], int8) == [*expected, ("torch", "fp32", int8)]  # torch runs its FP32 network
    assert _variants(["onnxruntime"], tiny_model) == [("onnxruntime", "fp32", tiny_model)]
