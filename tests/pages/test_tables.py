"""Every run under _runs/ gathered into one tidy table through the run record (lib.pages.tables)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from lib.cli import main
from lib.pages.tables import gather_runs, sweep_table, write_tables


def _fake_run(directory: Path, study: str, profile: str, metrics: dict, overrides=None, status="ok") -> None:
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    prov = {"study": study, "profile": profile, "seed": 0, "params_sha256": "ab", "status": status,
            "git": {"commit": "c0ffee", "dirty": False}, "device": {"device": "cuda", "device_name": "H100"},
            "started": "2026-01-01T00:00:00+00:00", "ended": "2026-01-01T00:01:00+00:00", "duration_s": 60.0,
            "overrides": overrides or {}}
    (directory / "provenance.json").write_text(json.dumps(prov))


def test_gather_runs_is_tidy(tmp_path):
    runs = tmp_path / "_runs"
    _fake_run(runs / "a" / "ci", "a", "ci", {"acc": 0.5, "n": 3})
    _fake_run(runs / "a" / "sweep_k" / "k-1", "a", "sweep_k", {"acc": 0.6}, {"k": 1})
    _fake_run(runs / "a" / "sweep_k" / "k-2", "a", "sweep_k", {"acc": 0.7}, {"k": 2})
    _fake_run(runs / "b" / "lab", "b", "lab", {}, status="failed")
    (runs / "_logs" / "x" / "y").mkdir(parents=True)  # not a run
    (runs / "a" / "ci" / "figures").mkdir()  # neither
    table = gather_runs(runs)
    assert len(table) == 2 + 1 + 1 + 1
    ci = table[table["run"] == "a/ci"].set_index("metric")["value"]
    assert ci.to_dict() == {"acc": 0.5, "n": 3}
    failed = table[table["study"] == "b"].iloc[0]
    assert failed["status"] == "failed" and failed["metric"] == "" and math.isnan(failed["value"])
    sweep = sweep_table(table, "a", "sweep_k")
    assert list(sweep["param.k"]) == [1, 2] and list(sweep["value"]) == [0.6, 0.7]
    assert set(sweep["device_name"]) == {"H100"} and set(sweep["commit"]) == {"c0ffee"}


def test_gather_of_nothing_has_the_columns(tmp_path):
    table = gather_runs(tmp_path / "none")
    assert table.empty and {"study", "metric", "value", "commit"} <= set(table.columns)


def test_write_tables_and_cli(tmp_path, capsys):
    runs = tmp_path / "_runs"
    _fake_run(runs / "a" / "sweep_k" / "k-1", "a", "sweep_k", {"acc": 0.6}, {"k": 1})
    _fake_run(runs / "a" / "ci", "a", "ci", {"acc": 0.5})
    written = write_tables(runs)
    assert runs / "_results" / "runs.csv" in written
    sweep_csv = runs / "_results" / "sweeps" / "a__sweep_k.csv"
    assert sweep_csv in written
    assert pd.read_csv(sweep_csv)["param.k"].tolist() == [1]
    assert main(["workflow", "gather", "--runs", str(runs), "--out", str(tmp_path / "t")]) == 0
    assert pd.read_csv(tmp_path / "t" / "runs.csv")["value"].tolist() == [0.5, 0.6]


def test_an_unreadable_record_is_named(tmp_path):
    runs = tmp_path / "_runs"
    _fake_run(runs / "a" / "ci", "a", "ci", {"acc": 0.5})
    (runs / "a" / "ci" / "provenance.json").write_text("{not json")
    with pytest.raises(ValueError, match="a/ci/provenance.json.*run the study again"):
        gather_runs(runs)
