"""``--out`` replaces only an earlier run (issue 21): what a run may never delete, and what ``--force`` allows.

Every refusal happens before anything runs: no lock, no temporary folder, the folder untouched.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.cli import main
from lib.runtime.outdir import protected_reason, run_folder_problem


@pytest.fixture
def env_root(minibook, monkeypatch):
    monkeypatch.setenv("STUDIES_ROOT", str(minibook))
    return minibook


def _err(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" not in err
    return err


def _tree(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


def _user_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "thesis"
    (folder / "data").mkdir(parents=True)
    (folder / "thesis.tex").write_text("\\documentclass{article}\n")
    (folder / "data" / "measurements.csv").write_text("a,b\n1,2\n")
    return folder


def test_a_folder_of_someone_elses_files_is_refused_and_replaced_only_with_force(env_root, tmp_path, capsys):
    folder = _user_folder(tmp_path)
    before = _tree(folder)
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(folder)]) == 2
    err = _err(capsys)
    assert f"--out {folder} is not empty and not an earlier run of study 'demo'" in err
    assert "it holds data, thesis.tex, which the runner did not write" in err and "--force" in err
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["minibook", "thesis"]  # no lock, no temporary folder
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(folder), "--force"]) == 0
    assert not (folder / "thesis.tex").exists() and (folder / "provenance.json").is_file()


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        (".", "the checkout {root} itself"),
        ("x/..", "the checkout {root} itself"),  # normalised before anything else
        ("..", "a folder above the checkout {root}"),
        ("book", "the book/ folder of {root}"),
        ("book/demo", "inside {root}/book, the chapters' sources"),
        ("parameters", "the parameters/ folder of {root}"),
        ("_runs", "{root}/_runs, the folder of every run"),
        ("_runs/demo", "{root}/_runs/demo, the folder of many runs"),
        ("~", "your home folder"),
    ],
)
def test_folders_a_run_never_replaces_even_with_force(env_root, tmp_path, monkeypatch, capsys, out, needle):
    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (env_root / "_runs" / "demo" / "ci").mkdir(parents=True)
    (env_root / "_runs" / "demo" / "ci" / "kernel.log").write_text("")
    monkeypatch.chdir(env_root)
    before = _tree(tmp_path)
    for force in ([], ["--force"]):
        assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", out, *force]) == 2
        err = _err(capsys)
        assert needle.format(root=env_root) in err and "not even with --force" in err, err
    assert _tree(tmp_path) == before


def test_the_current_folder_is_never_replaced(env_root, tmp_path, monkeypatch, capsys):
    here = tmp_path / "work" / "results"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", ".", "--force"]) == 2
    assert f"the current folder {here}" in _err(capsys)
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", "..", "--force"]) == 2
    assert f"a folder above the current folder {here}" in _err(capsys)


def test_what_counts_as_an_earlier_run(tmp_path):
    folder = tmp_path / "run"
    assert run_folder_problem(folder, "demo") is None  # absent
    folder.mkdir()
    assert run_folder_problem(folder, "demo") is None  # empty
    (folder / "figures").mkdir()
    assert run_folder_problem(folder, "demo") is None  # what the workflow leaves of a run stopped early
    (folder / "figures" / "plot.png").write_bytes(b"")
    assert "no provenance.json, run.key or kernel.log" in run_folder_problem(folder, "demo")  # a user's own
    (folder / "demo.ipynb").write_text("{}")
    assert "no provenance.json, run.key or kernel.log" in run_folder_problem(folder, "demo")  # a user's own
    (folder / "kernel.log").write_text("")  # what the workflow leaves after removing a job's declared outputs
    assert run_folder_problem(folder, "demo") is None
    (folder / "provenance.json").write_text(json.dumps({"study": "other", "status": "ok"}))
    assert "records a run of study 'other', not 'demo'" in run_folder_problem(folder, "demo")
    (folder / "provenance.json").write_text(json.dumps({"study": "demo", "status": "failed"}))
    (folder / ".partial-failed").mkdir()
    assert run_folder_problem(folder, "demo") is None
    (folder / "notes.txt").write_text("mine")
    assert "it holds notes.txt, which the runner did not write" in run_folder_problem(folder, "demo")


def test_protected_folders(tmp_path):
    root, home, cwd = tmp_path / "src", tmp_path / "home", tmp_path / "elsewhere"
    kw = {"roots": [root], "cwd": cwd, "home": home}
    assert protected_reason(root / "_runs" / "demo" / "ci", **kw) is None
    assert protected_reason(root / "_runs" / "demo" / "sweep_n" / "n-3", **kw) is None
    assert protected_reason(tmp_path / "results" / "x", **kw) is None
    assert protected_reason(root, **kw) == f"the checkout {root} itself"
    assert protected_reason(Path("/"), **kw) == f"a folder above the checkout {root}"
    assert protected_reason(home, **kw) == "your home folder"
    assert protected_reason(root / "parameters" / "demo", **kw) == f"inside {root / 'parameters'}, the parameter files"
    assert protected_reason(root / "_runs" / "_results", **kw).startswith(f"{root / '_runs' / '_results'}, the folder")
