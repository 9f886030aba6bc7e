"""Reports: summary files, plots and the HTML page, checked against the JSONL they come from."""

import csv
import json
import re
from collections import Counter

import cv2
import pytest

from conftest import face_video
from emolive.realtime.cli import main
from emolive.realtime.summary import read_jsonl


def _check_against_jsonl(report_dir, jsonl):
    records = read_jsonl(jsonl)
    summary = json.loads((report_dir / "summary.json").read_text())
    assert summary["frames"] == len(records)
    assert summary["frames_with_faces"] == sum(bool(r["faces"]) for r in records)
    by_id = {}
    for record in records:
        for face in record["faces"]:
            by_id.setdefault(str(face["id"]), []).append((record["time"], face))
    assert set(summary["faces"]) == set(by_id)
    for face_id, rows in by_id.items():
        stats = summary["faces"][face_id]
        labels = Counter(face["label"] for _, face in rows)
        assert stats["frames"] == len(rows)
        assert labels[stats["dominant"]] == max(labels.values())
        assert stats["first_seen"] == pytest.approx(min(t for t, _ in rows), abs=1e-3)
        assert stats["last_seen"] == pytest.approx(max(t for t, _ in rows), abs=1e-3)
        assert stats["mean_confidence"] == pytest.approx(sum(f["confidence"] for _, f in rows) / len(rows), abs=1e-3)
        assert sum(stats["share"].values()) == pytest.approx(1.0, abs=1e-3)
        for label, count in labels.items():
            assert stats["share"][label] == pytest.approx(count / len(rows), abs=1e-3)
        assert stats["seconds"] == pytest.approx(len(rows) * summary["frame_interval"], abs=1e-2)
    rows = list(csv.DictReader((report_dir / "summary.csv").open()))
    assert [r["id"] for r in rows] == [*sorted(by_id, key=int), "all"]
    return summary


def _check_html(report_dir, summary, thumbnails: bool):
    page = (report_dir / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "</html>" in page
    assert not re.search(r'src="(?!data:)', page)  # self-contained: every image is embedded
    table = page.split('<table id="summary">')[1].split("</table>")[0]
    assert table.count('<tr class="face">') == len(summary["faces"]) + 1
    plots = sorted((report_dir / "plots").glob("*.png"))
    figures = page.split("<h2>Plots</h2>")[1]
    assert figures.count("data:image/png;base64,") == len(plots)
    assert (table.count("data:image/jpeg;base64,") > 0) == thumbnails
    for plot in plots:
        image = cv2.imread(str(plot))
        assert image is not None and image.shape[0] > 200 and image.shape[1] > 400


def test_video_report_matches_its_jsonl(tiny_model, sample_bgr, tmp_path):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=24)
    assert main(["annotate", str(clip), "-o", str(tmp_path / "out.mp4"), "--model", str(tiny_model), "--quiet", "--thumbnails"]) == 0
    report = tmp_path / "out_report"  # next to the output by default
    summary = _check_against_jsonl(report, tmp_path / "out.jsonl")
    assert (report / "plots" / "distribution.png").is_file() and (report / "plots" / "timeline_id1.png").is_file()
    _check_html(report, summary, thumbnails=True)


def test_folder_report_has_a_label_histogram_and_no_thumbnails_unless_asked(tiny_model, sample_bgr, tmp_path):
    (tmp_path / "in").mkdir()
    for name in ("a.jpg", "b.jpg"):
        cv2.imwrite(str(tmp_path / "in" / name), sample_bgr)
    assert main(["annotate", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--model", str(tiny_model), "--quiet",
                 "--report", str(tmp_path / "rep")]) == 0
    summary = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert summary["kind"] == "images" and summary["overall"]["frames"] == 2 and summary["faces"] == {}
    assert [p.name for p in (tmp_path / "rep" / "plots").iterdir()] == ["label_histogram.png"]
    _check_html(tmp_path / "rep", summary, thumbnails=False)


def test_report_command_rebuilds_from_jsonl_and_rejects_bad_files(tiny_model, sample_bgr, tmp_path, capsys):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=8)
    assert main(["annotate", str(clip), "-o", str(tmp_path / "o.mp4"), "--model", str(tiny_model), "--quiet", "--no-report"]) == 0
    assert not (tmp_path / "o_report").exists()
    assert main(["report", str(tmp_path / "o.jsonl"), "-o", str(tmp_path / "again")]) == 0
    _check_against_jsonl(tmp_path / "again", tmp_path / "o.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"frame": 0}\nnot json\n')
    assert main(["report", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "x")]) == 2
    assert "line 2 is not valid JSON" in capsys.readouterr().err


@pytest.mark.parametrize("record, problem", [
    ({"frame": 0, "time": 0, "source": "x", "faces": [{"id": 1}]}, "without a numeric id/confidence"),
    ({"frame": 0, "time": 0, "source": "x", "faces": 5}, "not a list"),
    ({"frame": 0, "time": "a", "source": "x", "faces": []}, "non-numeric time"),
    ({"frame": 0, "time": 0, "source": "x", "faces": [{"id": 1, "label": "happy", "confidence": 0.9, "probs": {"happy": "x"}}]},
     "non-numeric probs"),
])
def test_report_names_a_malformed_record_and_creates_nothing(tmp_path, capsys, record, problem):
    (tmp_path / "bad.jsonl").write_text(json.dumps(record) + "\n")
    assert main(["report", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "rep")]) == 2
    err = capsys.readouterr().err
    assert "record 1" in err and problem in err and "Traceback" not in err
    assert not (tmp_path / "rep").exists()


@pytest.mark.media
def test_stage_and_audience_report(media_dir, tmp_path):
    out = tmp_path / "out.mp4"
    assert main(["annotate", str(media_dir / "stage_and_audience.mp4"), "-o", str(out), "--report", str(tmp_path / "rep"), "--quiet"]) == 0
    summary = _check_against_jsonl(tmp_path / "rep", tmp_path / "out.jsonl")
    assert summary["frames"] == 275 and len(summary["faces"]) >= 3  # performer plus audience faces
    _check_html(tmp_path / "rep", summary, thumbnails=False)


def test_a_report_path_that_is_a_file_is_refused_before_the_run(tiny_model, sample_bgr, tmp_path, capsys):
    clip = face_video(tmp_path / "clip.mp4", sample_bgr, frames=3)
    (tmp_path / "taken").write_text("x")
    assert main(["annotate", str(clip), "-o", str(tmp_path / "o.mp4"), "--report", str(tmp_path / "taken"), "--model", str(tiny_model), "--quiet"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert not (tmp_path / "o.mp4").exists() and not (tmp_path / "o.jsonl").exists()
