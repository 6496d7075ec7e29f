"""The GPU records ``results/gpu/<study>.json``: written, read back, validated; the book's GPU column."""

from __future__ import annotations

import json
import math

import pytest

from lib.pages import gpu_record as G


def _record(**changes):
    rec = {
        "study": "pgnaa", "profile": "gpu", "device": "NVIDIA H100 80GB HBM3", "date": "2026-12-04T10:15:00+00:00",
        "commit": "0123456789abcdef", "versions": {"python": "3.12.3", "torch": "2.11.0", "cuda": "13.0"},
        "status": "ok", "wall_s": 95.2, "metrics": {"expI_cnn_acc": 0.91, "table2_best_acc": 0.83},
        "epoch_s": 3.5, "paper_estimate_s": 9000.0,
    }
    rec.update(changes)
    return rec


def test_write_then_read_back_is_the_same_record(tmp_path):
    path = G.record_path(tmp_path, "pgnaa")
    assert path == tmp_path / "results" / "gpu" / "pgnaa.json"
    G.write_record(_record(), path)
    assert G.read_record(path) == _record()
    assert json.loads(path.read_text())["device"] == "NVIDIA H100 80GB HBM3"
    assert G.read_records(tmp_path) == {"pgnaa": _record()}
    assert not list(path.parent.glob(".*tmp*"))  # the temporary file was renamed into place


def test_nullable_times_are_accepted():
    assert G.validate_record(_record(epoch_s=None, paper_estimate_s=None))["epoch_s"] is None


@pytest.mark.parametrize(("change", "words"), [
    ({"device": None}, "field 'device'"),
    ({"wall_s": "95 s"}, "field 'wall_s'"),
    ({"wall_s": -1.0}, "must not be negative"),
    ({"wall_s": math.inf}, "field 'wall_s'"),
    ({"wall_s": True}, "field 'wall_s'"),
    ({"status": "great"}, "field 'status' must be one of ok"),
    ({"date": "2026-12-04 10:15"}, "field 'date' must be an ISO 8601 time with a time zone"),
    ({"date": "yesterday"}, "field 'date'"),
    ({"metrics": {"expI_cnn_acc": "high"}}, "metric 'expI_cnn_acc' must be a finite number"),
    ({"metrics": {"expI_cnn_acc": math.nan}}, "metric 'expI_cnn_acc'"),
    ({"versions": {"torch": 2.11}}, "version of 'torch' must be a string"),
    ({"metrics": [0.9]}, "field 'metrics'"),
])
def test_a_malformed_record_is_refused_naming_the_field(tmp_path, change, words):
    path = tmp_path / "results" / "gpu" / "pgnaa.json"
    with pytest.raises(G.GpuRecordError, match="rerun make gpu-check") as err:
        G.write_record(_record(**change), path)
    assert words in str(err.value) and str(path) in str(err.value)
    assert not path.exists()  # nothing is written
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_record(**change)))
    with pytest.raises(G.GpuRecordError, match=words.replace("(", r"\(")):
        G.read_record(path)


def test_missing_fields_are_all_named(tmp_path):
    rec = _record()
    del rec["commit"], rec["epoch_s"]
    with pytest.raises(G.GpuRecordError, match="lacks the field\\(s\\) commit, epoch_s"):
        G.validate_record(rec, source="x.json")
    with pytest.raises(G.GpuRecordError, match="must be a JSON object"):
        G.validate_record([1, 2], source="x.json")


def test_unreadable_files_are_clear_errors(tmp_path):
    path = tmp_path / "nuclei.json"
    with pytest.raises(G.GpuRecordError, match="no GPU record there"):
        G.read_record(path)
    path.write_text("{not json")
    with pytest.raises(G.GpuRecordError, match="not valid JSON \\(line 1"):
        G.read_record(path)


def test_a_record_filed_under_another_study_is_refused(tmp_path):
    G.write_record(_record(), tmp_path / "results" / "gpu" / "nuclei.json")
    with pytest.raises(G.GpuRecordError, match="record is of study 'pgnaa' but the file is named for 'nuclei'"):
        G.read_records(tmp_path)


def test_gpu_column_without_a_record_is_the_sentence(tmp_path):
    assert G.gpu_column(tmp_path, "pgnaa") == G.NO_RECORD_SENTENCE
    assert G.NO_RECORD_SENTENCE == ("No GPU run has been recorded yet (make gpu-check on a machine with CUDA "
                                    "writes results/gpu/<study>.json).")
    assert G.read_records(tmp_path) == {}


def test_gpu_column_labels_device_and_date_and_gives_the_headline_metrics(tmp_path):
    G.write_record(_record(), G.record_path(tmp_path, "pgnaa"))
    label, metrics = G.gpu_column(tmp_path, "pgnaa")
    assert label == "GPU: NVIDIA H100 80GB HBM3, 2026-12-04"
    assert metrics == {"expI_cnn_acc": 0.91, "table2_best_acc": 0.83}
    G.write_record(_record(status="timeout"), G.record_path(tmp_path, "pgnaa"))
    assert G.gpu_column(tmp_path, "pgnaa")[0] == "GPU: NVIDIA H100 80GB HBM3, 2026-12-04 (timeout)"


def test_gpu_column_refuses_a_malformed_record(tmp_path):
    path = G.record_path(tmp_path, "pgnaa")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_record(status="?")))
    with pytest.raises(G.GpuRecordError, match="status"):
        G.gpu_column(tmp_path, "pgnaa")


def test_paper_runtime_estimate_scales_the_wall_time_by_the_work():
    assert G.paper_runtime_estimate(gpu_wall_s=100.0, gpu_work=2_000, paper_work=150_000) == pytest.approx(7500.0)
    for bad in ({"gpu_work": 0}, {"paper_work": -1}, {"gpu_wall_s": math.nan}):
        kw = {"gpu_wall_s": 100.0, "gpu_work": 2_000, "paper_work": 150_000, **bad}
        with pytest.raises(ValueError, match="must be a positive finite number"):
            G.paper_runtime_estimate(**kw)


def test_format_duration():
    assert G.format_duration(None) == "unknown"
    assert G.format_duration(42.4) == "42 s"
    assert G.format_duration(432) == "7 min 12 s"
    assert G.format_duration(7500) == "2 h 05 min"
