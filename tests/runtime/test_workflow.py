"""The Snakemake workflow (workflow/Snakefile) on a copy of the fixture mini-book with two studies and a sweep.

Covered: a dry run of the whole workflow (fixture and this repository), the SLURM workflow profile (dry run with the
executor selected, no cluster), a real run of two `ci` jobs on 2 cores that produces the gathered table, a second
invocation that does nothing, and a changed parameter file that makes only its own study stale.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("snakemake")

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
SLURM = REPO / "workflow" / "profiles" / "slurm"

SWEEP = """_profile: {description: demo sweep, expected_runtime: "5 s", device: cpu}
_sweep:
  grid: {scale: [0.5, 2.0], n: [3, 10]}
  metrics: [total]
profile: sweep_scale
"""
PAPER = """_profile: {description: full scale, expected_runtime: "3 h", device: gpu, mem_mb: 32000}
profile: paper
n: 1000
"""


@pytest.fixture
def collection(minibook: Path) -> Path:
    """The mini-book with a second study (`demo2`), a 4-point sweep and a GPU `paper` profile of `demo`."""
    shutil.copytree(minibook / "parameters" / "demo", minibook / "parameters" / "demo2")
    (minibook / "book" / "demo2").mkdir()
    shutil.copy(minibook / "book" / "demo" / "demo.md", minibook / "book" / "demo2" / "demo2.md")
    (minibook / "parameters" / "demo" / "sweep_scale.yaml").write_text(SWEEP)
    (minibook / "parameters" / "demo" / "paper.yaml").write_text(PAPER)
    return minibook


def snakemake(root: Path, *args: str, timeout: int = 240) -> str:
    """Run snakemake on ``root``; return its output (stdout and stderr), failing the test on a non-zero exit."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(root), *args]
    # from the repository root, as documented (the SLURM profile names its config file relative to it)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**_env(), "OMP_NUM_THREADS": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{out[-4000:]}"
    return out


def _env() -> dict[str, str]:
    import os

    return dict(os.environ)


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run as {rule: count} (empty when nothing is to be done)."""
    if "Job stats" not in output:
        return {}
    table = output.split("Job stats", 1)[1]
    counts = {}
    for line in table.splitlines()[3:]:
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def stale_runs(output: str) -> set[str]:
    """The run directories a (dry) run would (re)create, from the jobs' outputs."""
    return set(re.findall(r"output: _runs/([^,\s]+)/[^/,\s]+\.ipynb", output))


def test_dry_run_lists_every_job(collection):
    out = snakemake(collection, "-n", "--printshellcmds")
    assert job_counts(out) == {"run": 4, "point": 4, "gather": 1, "all": 1, "total": 10}
    assert stale_runs(out) == {"demo/ci", "demo/lab", "demo2/ci", "demo2/lab", "demo/sweep_scale/scale-0.5_n-3",
                               "demo/sweep_scale/scale-0.5_n-10", "demo/sweep_scale/scale-2.0_n-3",
                               "demo/sweep_scale/scale-2.0_n-10"}
    # the unit of work is the runner (never papermill directly), with the sweep point's overrides
    assert "-m lib run demo --params parameters/demo/sweep_scale.yaml --set scale=2.0 --set n=10" in out
    assert "-m lib run demo2 --profile lab --out _runs/demo2/lab" in out
    # inputs are declared (lib.runtime.run.study_inputs): chapter, library, parameter file
    assert re.search(r"input: book/demo/demo.md, \S+/lib/__init__.py, [^\n]*\S+/lib/core/train.py, [^\n]*"
                     r"parameters/demo/ci.yaml", out)


def test_dry_run_selects_profiles_and_studies(collection):
    out = snakemake(collection, "-n", "--config", "profiles=[paper]", "sweeps=false")
    # demo2 has no paper profile: skipped with a note, not an error
    assert job_counts(out) == {"run": 1, "gather": 1, "all": 1, "total": 3}
    assert "demo2 has no profile 'paper'" in out
    # longest first: the priority is the expected run time in seconds (3 h)
    assert re.search(r"wildcards: study=demo, profile=paper\n\s+priority: 10800\n"
                     r"\s+resources: [^\n]*gpu=1, [^\n]*runtime=540", out)
    out = snakemake(collection, "-n", "--config", "studies=[demo2]", "sweeps=false")
    assert stale_runs(out) == {"demo2/ci", "demo2/lab"}
    # any single run or sweep point can be asked for by its output, whatever the configuration
    point = "_runs/demo/sweep_scale/scale-0.5_n-3/metrics.json"
    out = snakemake(collection, "-n", "--config", "sweeps=false", "--", point)
    assert stale_runs(out) == {"demo/sweep_scale/scale-0.5_n-3"}


def test_slurm_profile_dry_run(collection):
    """The SLURM workflow profile parses; a GPU profile asks for one GPU, its runtime and memory."""
    out = snakemake(collection, "-n", "--workflow-profile", str(SLURM), "--config", "profiles=[ci,paper]",
                    "sweeps=false")
    assert "Using workflow specific profile" in out
    pattern = r"output: _runs/([^,\s]+)/[^/,\s]+\.ipynb.*?resources: ([^\n]+)"
    jobs = {m.group(1): m.group(2) for m in re.finditer(pattern, out, flags=re.S)}
    assert "gres=gpu:1" in jobs["demo/paper"] and "slurm_partition=gpu" in jobs["demo/paper"]
    assert "runtime=540" in jobs["demo/paper"] and "mem_mb=32000" in jobs["demo/paper"]
    assert "gres=," in jobs["demo/ci"] and "slurm_partition=cpu" in jobs["demo/ci"]
    assert "runtime=10" in jobs["demo/ci"]


def test_whole_repository_dry_run():
    """Every landed study's profiles and sweep files validate and expand into jobs."""
    out = snakemake(REPO, "-n", "--quiet", "rules", "--rerun-incomplete")  # a run may be in progress here
    counts = job_counts(out)
    assert counts.get("gather") == 1 or "Nothing to be done" in out


def test_real_run_then_nothing_then_only_the_changed_study(collection):
    args = ["--cores", "2", "--config", "profiles=[ci]", "sweeps=false"]
    out = snakemake(collection, *args)
    assert job_counts(out) == {"run": 2, "gather": 1, "all": 1, "total": 4}
    table = pd.read_csv(collection / "_runs" / "_results" / "runs.csv")
    totals = table[table["metric"] == "total"].set_index("study")["value"]
    assert totals.to_dict() == {"demo": 10.0, "demo2": 10.0}
    assert set(table["status"]) == {"ok"} and table["commit"].notna().all()
    assert json.loads((collection / "_runs" / "demo" / "ci" / "provenance.json").read_text())["status"] == "ok"

    again = snakemake(collection, *args)
    assert "Nothing to be done" in again and job_counts(again) == {}

    demo_prov = (collection / "_runs" / "demo" / "ci" / "provenance.json").stat().st_mtime_ns
    params = collection / "parameters" / "demo2" / "ci.yaml"
    params.write_text(params.read_text().replace("n: 10", "n: 12"))
    dry = snakemake(collection, "-n", *args)
    assert stale_runs(dry) == {"demo2/ci"}
    # the run record decides; Snakemake sees it through the run's .why input, which says why
    assert "Updated input files: " in dry and "_runs/_status/demo2/ci.why" in dry
    why = (collection / "_runs" / "_status" / "demo2" / "ci.why").read_text()
    assert why == "stale: <parameter file> changed\n"
    snakemake(collection, *args)
    table = pd.read_csv(collection / "_runs" / "_results" / "runs.csv")
    totals = table[table["metric"] == "total"].set_index("study")["value"]
    assert totals.to_dict() == {"demo": 10.0, "demo2": 12.0}
    assert (collection / "_runs" / "demo" / "ci" / "provenance.json").stat().st_mtime_ns == demo_prov
