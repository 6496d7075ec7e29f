"""The execution page's table: every chapter run with its provenance, data source from the runner's record."""

from __future__ import annotations

import json
from pathlib import Path

from lib.core import registry
from lib.pages.execution import (
    COLUMNS,
    DATA_SOURCES,
    book_profile,
    data_source,
    execution_records,
    execution_table,
)
from lib.runtime.run import run_study


def _run(runs: Path, study: str, profile: str, **extra) -> Path:
    d = runs / study / profile
    d.mkdir(parents=True)
    prov = {"study": study, "profile": profile, "status": "ok", "duration_s": 312.4,
            "ended": "2026-12-01T10:00:00+00:00",
            "git": {"commit": "0123456789abcdef", "dirty": True}, "device": {"device": "cuda", "device_name": "H200"}}
    prov.update(extra)
    (d / "provenance.json").write_text(json.dumps(prov))
    return d


def test_records_from_provenance(tmp_path):
    runs = tmp_path / "_runs"
    _run(runs, "pgnaa", "lab", **{DATA_SOURCES: {"nist-pgaa": "real", "dsb2018": "synthetic (absent)"}})
    _run(runs, "nuclei", "lab", **{DATA_SOURCES: {}})
    _run(runs, "nuclei", "ci", duration_s=42.0, device="cpu")
    (runs / "pgnaa" / "sweep_epochs" / "p1").mkdir(parents=True)  # a sweep point: not a chapter run
    (runs / "pgnaa" / "sweep_epochs" / "p1" / "provenance.json").write_text("{}")
    (runs / "_results").mkdir()
    recs = execution_records(runs, shown_profile="lab")
    assert [(r["study"], r["profile"]) for r in recs] == [("nuclei", "ci"), ("nuclei", "lab"), ("pgnaa", "lab")]
    ci, lab, pg = recs
    assert lab["in book"] == "yes" and ci["in book"] == ""
    assert lab["wall time"] == "5.2 min" and ci["wall time"] == "42 s"
    assert lab["commit"] == "0123456789ab +dirty" and lab["device"] == "cuda (H200)" and ci["device"] == "cpu"
    assert lab["finished (UTC)"] == "2026-12-01T10:00:00"
    assert lab["data source"] == "no dataset read"
    assert pg["data source"] == "dsb2018: synthetic (absent); nist-pgaa: real"
    assert ci["data source"] == "not recorded"  # a folder from before the runner kept the record
    assert list(execution_table(runs).columns) == list(COLUMNS)


def test_data_source_is_what_the_runner_records(minibook, tmp_path, monkeypatch):
    """The fixture chapter run by the runner itself: once reading a registered dataset (absent: the synthetic
    fallback), once reading none. The page must show what the runner wrote, not a spelling of its own."""
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "empty-cache"))
    runs = minibook / "_runs"
    (minibook / "parameters" / "demo" / "data.yaml").write_text("profile: data\nn: 3\ndataset: unitobrain-samples\n")
    fell_back = run_study("demo", "data", root=minibook, progress=False)
    plain = run_study("demo", "lab", root=minibook, progress=False)
    assert (fell_back.out_dir, plain.out_dir) == (runs / "demo" / "data", runs / "demo" / "lab")
    written = json.loads((runs / "demo" / "data" / "provenance.json").read_text())[DATA_SOURCES]
    assert written == fell_back.provenance[DATA_SOURCES]
    assert list(written) == ["unitobrain-samples"] and written["unitobrain-samples"].startswith("synthetic (")
    assert json.loads((runs / "demo" / "lab" / "provenance.json").read_text())[DATA_SOURCES] == {}
    records = {r["profile"]: r for r in execution_records(runs, shown_profile="lab")}
    assert records["data"]["data source"] == f"unitobrain-samples: {written['unitobrain-samples']}"
    assert records["lab"]["data source"] == "no dataset read"
    assert data_source(plain.out_dir) == "no dataset read"
    # the record alone: a notebook's text is not searched, whatever it says
    (plain.out_dir / "demo.ipynb").write_text(json.dumps({"text": "Real data unavailable: synthetic fallback"}))
    assert data_source(plain.out_dir) == "no dataset read"


def test_empty_runs(tmp_path):
    assert execution_records(tmp_path / "nothing") == []
    assert execution_table(tmp_path / "nothing").empty


def test_book_profile_from_environment_or_staged_build(tmp_path, monkeypatch):
    monkeypatch.delenv("STUDIES_BOOK_PROFILE", raising=False)
    stage = tmp_path / "_build" / "stage" / "paper" / "book"
    stage.mkdir(parents=True)
    monkeypatch.chdir(stage)
    assert book_profile(tmp_path) == "paper"
    monkeypatch.chdir(tmp_path)
    assert book_profile(tmp_path) is None
    monkeypatch.setenv("STUDIES_BOOK_PROFILE", "lab")
    assert book_profile(tmp_path) == "lab"
