"""The execution page's table: every chapter run with its provenance, data source from the record or notebook."""

from __future__ import annotations

import json
from pathlib import Path

from lib.runtime.execution import (
    COLUMNS,
    FALLBACK_NOTICE,
    book_profile,
    data_source,
    execution_records,
    execution_table,
)


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
    _run(runs, "pgnaa", "lab", data_source={"nist": "real"})
    d = _run(runs, "nuclei", "lab")
    (d / "nuclei.ipynb").write_text(json.dumps({"outputs": f"{FALLBACK_NOTICE}dsb2018)"}))
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
    assert lab["data source"] == "synthetic fallback: dsb2018"
    assert pg["data source"] == "nist: real"
    assert ci["data source"] == "not recorded"  # no notebook, no record
    assert list(execution_table(runs).columns) == list(COLUMNS)


def test_data_source_without_fallback_and_empty_runs(tmp_path):
    d = _run(tmp_path / "_runs", "radiative", "lab")
    (d / "radiative.ipynb").write_text("{}")
    assert data_source(d) == "no synthetic fallback"
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
