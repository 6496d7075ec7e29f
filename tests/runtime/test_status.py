"""`studies status`, the run key's coverage and the workflow's agreement with the run record.

The key covers exactly what can change a chapter's output: editing the site (lib/site), the pages (lib/pages) or
the command line (lib/cli.py) leaves every run current; editing lib/core or the runner makes every run stale; a
study's own package only its own runs. The tests edit a copy of the checkout's lib/ and workflow/, never this one.
`make workflow-dry` (a Snakemake dry run) must list exactly the runs that `studies status` does not call current.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STUDIES = ("nuclei", "perfusion", "pgnaa", "radiative")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of this checkout's code (lib/, workflow/, requirements/) that a test may edit."""
    dest = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("lib", "workflow", "requirements"):
        shutil.copytree(REPO / name, dest / name, ignore=ignore)
    return dest


def _env(checkout: Path, root: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(checkout), "STUDIES_ROOT": str(root), "OMP_NUM_THREADS": "1"}


def _python(checkout: Path, root: Path, *args: str, timeout: int = 240) -> str:
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=checkout,
                          env=_env(checkout, root), timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def _keys(checkout: Path, root: Path) -> dict[str, str]:
    code = ("import json\nfrom lib.runtime.run import list_studies, resolve_parameters, run_key\n"
            "print(json.dumps({s.name: run_key(s, resolve_parameters(s, 'lab')[2]) for s in list_studies()}))")
    return json.loads(_python(checkout, root, "-c", code))


def _append(path: Path, text: str = "\n# an edit\n") -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def test_the_key_covers_core_runner_and_the_study_but_not_site_pages_or_cli(checkout):
    lib = checkout / "lib"
    before = _keys(checkout, REPO)
    assert sorted(before) == list(STUDIES)
    for path in ("site/theme.py", "site/book.py", "pages/results.py", "pages/tables.py", "cli.py", "gpucheck.py"):
        _append(lib / path)
    assert _keys(checkout, REPO) == before  # nothing stale
    _append(lib / "pgnaa" / "experiment.py")
    after_study = _keys(checkout, REPO)
    assert {s for s in STUDIES if after_study[s] != before[s]} == {"pgnaa"}
    _append(lib / "runtime" / "record.py")
    after_runner = _keys(checkout, REPO)
    assert all(after_runner[s] != after_study[s] for s in STUDIES)
    _append(lib / "core" / "report.py")
    after_core = _keys(checkout, REPO)
    assert all(after_core[s] != after_runner[s] for s in STUDIES)


# -- status and the workflow on a copy of the fixture collection ------------------------------------------------


@pytest.fixture
def collection(minibook: Path) -> Path:
    """The mini-book with a second study, demo2."""
    shutil.copytree(minibook / "parameters" / "demo", minibook / "parameters" / "demo2")
    (minibook / "book" / "demo2").mkdir()
    shutil.copy(minibook / "book" / "demo" / "demo.md", minibook / "book" / "demo2" / "demo2.md")
    return minibook


def _status(checkout: Path, root: Path) -> dict[str, tuple[str, str]]:
    out = _python(checkout, root, "-m", "lib", "status", "--profile", "ci").splitlines()
    header = out[0]
    at = {col: header.index(col) for col in ("state", "time", "why")}
    return {line[: at["state"]].strip(): (line[at["state"]: at["time"]].strip(), line[at["why"]:].strip())
            for line in out[1:-1]}


def _snakemake(checkout: Path, root: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(checkout / "workflow" / "Snakefile"), "-d", str(root),
           "--config", "profiles=[ci]", "sweeps=false", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=root, env=_env(checkout, root), timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _dry(checkout: Path, root: Path) -> set[str]:
    """The runs a dry run (what `make workflow-dry` does) would execute."""
    return set(re.findall(r"output: _runs/([^,\s]+)/[^/,\s]+\.ipynb", _snakemake(checkout, root, "-n")))


def _not_current(states: dict[str, tuple[str, str]]) -> set[str]:
    return {name for name, (state, _) in states.items() if state != "current"}


@pytest.mark.skipif(shutil.which("snakemake") is None and not (Path(sys.executable).parent / "snakemake").exists(),
                    reason="snakemake is not installed")
def test_status_and_the_workflow_dry_run_agree(checkout, collection):
    states = _status(checkout, collection)
    assert states == {"demo/ci": ("missing", "no run yet"), "demo2/ci": ("missing", "no run yet")}
    assert _dry(checkout, collection) == _not_current(states) == {"demo/ci", "demo2/ci"}

    _snakemake(checkout, collection, "--cores", "2")
    states = _status(checkout, collection)
    assert {s for s, _ in states.values()} == {"current"}
    assert _dry(checkout, collection) == set()

    # the theme, the pages and the command line are not inputs of a run: nothing is stale
    for path in ("site/theme.py", "pages/execution.py", "cli.py"):
        _append(checkout / "lib" / path)
    assert _not_current(_status(checkout, collection)) == set() == _dry(checkout, collection)

    # lib/core is: every run is stale, and status says why
    _append(checkout / "lib" / "core" / "report.py")
    states = _status(checkout, collection)
    assert states["demo/ci"] == ("stale", "lib/core/report.py changed")
    assert _dry(checkout, collection) == _not_current(states) == {"demo/ci", "demo2/ci"}

    # one parameter file: its run only
    _snakemake(checkout, collection, "--cores", "2")
    params = collection / "parameters" / "demo2" / "ci.yaml"
    params.write_text(params.read_text().replace("n: 10", "n: 12"))
    states = _status(checkout, collection)
    assert states == {"demo/ci": ("current", ""), "demo2/ci": ("stale", "<parameter file> changed")}
    assert _dry(checkout, collection) == {"demo2/ci"}

    # a run that failed outside the workflow (its outputs newer than every input) is still run again
    shutil.rmtree(collection / "_runs" / "demo2" / "ci")
    params.write_text(params.read_text() + "fail: true\n")
    proc = subprocess.run([sys.executable, "-m", "lib", "run", "demo2", "--profile", "ci", "--quiet"],
                          capture_output=True, text=True, cwd=checkout, env=_env(checkout, collection), timeout=240)
    assert proc.returncode == 1, proc.stderr
    states = _status(checkout, collection)
    assert states["demo2/ci"][0] == "failed" and "code cell 3" in states["demo2/ci"][1]
    assert _dry(checkout, collection) == _not_current(states) == {"demo2/ci"}


def test_a_run_that_did_without_its_data_is_stale_once_the_data_are_here(minibook, tmp_path, monkeypatch):
    from lib.core import registry
    from lib.runtime.record import RunRecord, key_of
    from lib.runtime.run import get_study, run_inputs
    from lib.runtime.status import run_state

    st = get_study("demo", minibook)
    inputs = run_inputs(st, st.parameter_dir / "ci.yaml")
    folder = minibook / "_runs" / "demo" / "ci"
    folder.mkdir(parents=True)
    (folder / "demo.ipynb").write_text("{}")
    RunRecord("demo", "ci", "ok", run_key=key_of(inputs), inputs=inputs,
              data_sources={"unitobrain-samples": "synthetic (not available)"}).write(folder)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(registry.MIRROR_ENV, str(mirror))
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path / "cache"))
    assert run_state(st, "ci").state == "current"
    (mirror / registry.get("unitobrain-samples").mirror_subdir).mkdir(parents=True)
    state = run_state(st, "ci")
    assert (state.state, state.reason) == ("stale", "unitobrain-samples now at hand (the run had to do without)")
