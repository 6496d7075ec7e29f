"""The page "Results across runs" (book/results.md) and its helpers (lib.pages.results)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib
import pytest

from lib.pages import results
from lib.pages.tables import gather_runs

matplotlib.use("Agg")
REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "book" / "results_reference.yaml"


def _fake_run(directory: Path, study: str, profile: str, metrics: dict, overrides=None) -> None:
    directory.mkdir(parents=True)
    (directory / "metrics.json").write_text(json.dumps(metrics))
    (directory / "provenance.json").write_text(json.dumps({
        "study": study, "profile": profile, "status": "ok", "git": {"commit": "0123456789abcdef", "dirty": True},
        "device": {"device": "cuda", "device_name": "NVIDIA H100"}, "ended": "2026-05-01T10:20:30+00:00",
        "duration_s": 12.5, "overrides": overrides or {},
    }))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    r = tmp_path / "_runs"
    _fake_run(r / "pgnaa" / "ci", "pgnaa", "ci", {"expI_cnn_acc": 0.5, "expII_cnn_acc": 0.4})
    _fake_run(r / "pgnaa" / "paper", "pgnaa", "paper", {"expI_cnn_acc": 0.95})
    for epochs in (1, 2, 4):
        for seed in (0, 1):
            _fake_run(r / "pgnaa" / "sweep_training" / f"epochs-{epochs}_seed-{seed}", "pgnaa", "sweep_training",
                      {"expI_cnn_acc": 0.3 + 0.1 * epochs + 0.01 * seed, "runtime_seconds": 10.0 * epochs},
                      {"epochs": epochs, "seed": seed})
    return r


def test_reference_table_is_complete_and_cites_the_seeds():
    ref = results.load_reference(REFERENCE)
    assert set(ref["study"]) == {"pgnaa", "nuclei", "radiative", "perfusion"}
    assert ref["paper"].map(lambda v: isinstance(v, (int, float))).all()
    assert ref["source"].str.match(r"00[1-4]").all()  # every number names its seed document


def test_bad_reference_is_rejected(tmp_path):
    path = tmp_path / "ref.yaml"
    path.write_text("- {study: a, quantity: q, paper: high, unit: '', metric: m, scale: 1, source: s, comparable: c}\n")
    with pytest.raises(ValueError, match="paper must be a number"):
        results.load_reference(path)
    path.write_text("- {study: a}\n")
    with pytest.raises(ValueError, match="lacks"):
        results.load_reference(path)


def test_compare_with_paper(runs):
    table = gather_runs(runs)
    cmp = results.compare_with_paper(table, results.load_reference(REFERENCE))
    exp1 = cmp[cmp["quantity"].str.startswith("Experiment I accuracy")]
    assert sorted(exp1["run"]) == ["pgnaa/ci", "pgnaa/paper"]  # profile runs only, not sweep points
    assert exp1.set_index("run")["ours"].to_dict() == pytest.approx({"pgnaa/ci": 50.0, "pgnaa/paper": 95.0})
    assert set(exp1["paper"]) == {96.88}
    assert set(exp1["commit"]) == {"0123456789+dirty"} and set(exp1["device"]) == {"cuda (NVIDIA H100)"}
    exp2 = cmp[cmp["quantity"].str.startswith("Experiment II")].set_index("run")["ours"]
    assert exp2["pgnaa/ci"] == pytest.approx(40.0) and math.isnan(exp2["pgnaa/paper"])  # metric absent: NaN
    nuclei = cmp[cmp["study"] == "nuclei"]
    assert (nuclei["run"] == "").all() and nuclei["ours"].isna().all()  # no run yet: the paper's number alone


def test_run_summary_and_sweep_plot(runs):
    table = gather_runs(runs)
    summary = results.run_summary(table)
    assert len(summary) == 8 and set(summary["date"]) == {"2026-05-01 10:20"}
    assert results.sweep_metrics(table, "pgnaa", "sweep_training", ["expI_cnn_acc", "nope"]) == ["expI_cnn_acc"]
    assert results.sweep_metrics(table, "pgnaa", "sweep_training") == ["expI_cnn_acc", "runtime_seconds"]
    fig = results.plot_sweep(table, "pgnaa", "sweep_training", ["expI_cnn_acc", "runtime_seconds"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "epochs" and len(ax.lines) == 2  # one line per seed
    assert list(ax.lines[1].get_ydata()) == pytest.approx([0.41, 0.51, 0.71])


def _page_outputs(root: Path, tmp_path: Path, monkeypatch) -> str:
    monkeypatch.setenv("STUDIES_ROOT", str(root))
    nb = results.execute_page(REPO / "book" / "results.md", tmp_path / "results.ipynb", timeout=120)
    import nbformat

    text = []
    for cell in nbformat.read(nb, as_version=4).cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text", ""))
            for mime, value in out.get("data", {}).items():
                text.append(mime if mime.startswith("image/") else str(value))
    return "\n".join(text)


def test_page_executes_with_and_without_runs(runs, tmp_path, monkeypatch):
    root = runs.parent
    (root / "book").mkdir()
    shutil.copy(REFERENCE, root / "book" / "results_reference.yaml")
    out = _page_outputs(root, tmp_path, monkeypatch)
    assert "pgnaa/sweep_training/epochs-4_seed-1" in out
    assert "image/png" in out  # the sweep figure
    assert "96.88" in out and "NVIDIA H100" in out and "0123456789+dirty" in out
    assert "6 points" in out

    shutil.rmtree(runs)
    empty = _page_outputs(root, tmp_path, monkeypatch)
    assert "No results yet" in empty and "no runs yet" in empty and "No sweep has run yet" in empty


def test_paper_table_is_narrow_with_the_sources_as_notes(runs):
    cmp = results.compare_with_paper(gather_runs(runs), results.load_reference(REFERENCE))
    shown, notes = results.paper_table(cmp[cmp["study"] == "pgnaa"])
    assert list(shown.columns) == ["paper", "ours", "unit", "note"]
    assert shown.index.names == ["quantity", "run"]
    n_refs = len(results.load_reference(REFERENCE).query("study == 'pgnaa'"))
    assert notes.count("\n") == n_refs - 1 and notes.startswith("1. Source: 004")
    # every run of one reference entry points at the same note
    exp1 = shown.loc[[q for q in shown.index.get_level_values(0) if q.startswith("Experiment I accuracy")]]
    assert set(exp1["note"]) == {"[1]"}
