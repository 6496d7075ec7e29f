"""The workflow's SLURM profile against a real (single-host) SLURM cluster, not a dry run.

``snakemake --workflow-profile workflow/profiles/slurm`` submits every job with ``sbatch`` through
snakemake-executor-plugin-slurm; the job runs the runner on the node (``srun`` inside the allocation) and its
outputs land in ``_runs/``. Checked against the cluster's own records (``sacct -c``, ``scontrol show job``):
every job went through SLURM, a failing job is FAILED there and named by the workflow while the others finish,
the resources derived from the parameter files' ``_profile`` reach sbatch, and a real chapter at ``ci`` gives the
metrics of a local run.

`make test` runs the first test (two SLURM jobs, one after the other); the two slow ones (a failure and its retry, a
real chapter) run with `make test-all`, and `.ci/run` runs them after `make test`.

Settings every run here adds to the profile, for a 2-core test node without slurmdbd: ``--slurm-status-command
squeue`` (the plugin's default, sacct, needs accounting; the controller keeps finished jobs for an hour), a first
status check after 1 s instead of 40 s, and at most 2 threads per job (the profile's 4 do not fit on 2 cores).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

pytest.importorskip("snakemake")
pytest.importorskip("snakemake_executor_plugin_slurm")

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "workflow" / "Snakefile"
PROFILE = REPO / "workflow" / "profiles" / "slurm"
SITE = yaml.safe_load((PROFILE / "cluster.yaml").read_text())
TEST_CLUSTER_ARGS = ["--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
                     "--latency-wait", "10"]

# a GPU profile of the fixture study: partition `gpu`, one (fake) GPU, its own memory and run time
GPU = """_profile: {description: fake GPU job, expected_runtime: "5 min", device: gpu, mem_mb: 1200}
profile: gpu
n: 7
"""


def slurm_snakemake(cluster, root: Path, *args: str, ok: bool = True, timeout: int = 600) -> str:
    """Run snakemake with the SLURM workflow profile on ``root`` against ``cluster``; return its output."""
    cmd = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "-d", str(root),
           "--workflow-profile", str(PROFILE), *TEST_CLUSTER_ARGS, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=cluster.env(OMP_NUM_THREADS="1"))
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-6000:]}"
    return out


def submitted(output: str) -> dict[str, str]:
    """{run directory (study/profile): SLURM job id} of the jobs a snakemake run submitted."""
    jobs = {}
    for m in re.finditer(r"submitted with SLURM jobid (\d+) \(log: \S+/rule_run/(\w+)_(\w+)/\d+\.log\)", output):
        jobs[f"{m.group(2)}/{m.group(3)}"] = m.group(1)
    return jobs


def add_study(book: Path, name: str) -> None:
    """A second study: a copy of the fixture's `demo` under another name."""
    shutil.copytree(book / "parameters" / "demo", book / "parameters" / name)
    (book / "book" / name).mkdir()
    shutil.copy(book / "book" / "demo" / "demo.md", book / "book" / name / f"{name}.md")


def test_every_job_through_sbatch_with_the_profiles_resources_then_nothing(slurm_cluster, minibook):
    (minibook / "parameters" / "demo" / "gpu.yaml").write_text(GPU)
    args = ["--config", "profiles=[ci,gpu]", "sweeps=false", "--set-threads", "run=2"]
    out = slurm_snakemake(slurm_cluster, minibook, *args)
    jobs = submitted(out)
    assert set(jobs) == {"demo/ci", "demo/gpu"}, out[-3000:]

    # sbatch ran them, on the node, and they completed
    acct = slurm_cluster.sacct(list(jobs.values()))
    table = slurm_cluster.sacct_lines(list(jobs.values()))
    assert {acct[j]["State"] for j in jobs.values()} == {"COMPLETED"}, table
    assert acct[jobs["demo/ci"]]["Partition"] == SITE["slurm_partition"]
    assert acct[jobs["demo/gpu"]]["Partition"] == SITE["slurm_gpu_partition"]

    # the outputs came back into _runs/ (the table gathered locally from them)
    for run in jobs:
        metrics = json.loads((minibook / "_runs" / run / "metrics.json").read_text())
        assert metrics["total"] == {"demo/ci": 10.0, "demo/gpu": 7.0}[run]
        assert json.loads((minibook / "_runs" / run / "provenance.json").read_text())["status"] == "ok"
    runs = pd.read_csv(minibook / "_runs" / "_results" / "runs.csv")
    assert set(runs[runs["metric"] == "total"]["profile"]) == {"ci", "gpu"}

    # the resources the parameter files' _profile asks for, as SLURM recorded them:
    # ci: expected 5 s -> 10 min (the minimum), no mem_mb -> cluster.yaml's; gpu: 5 min x 3, 1200 MB, one GPU
    ci, gpu = slurm_cluster.job(jobs["demo/ci"]), slurm_cluster.job(jobs["demo/gpu"])
    assert ci["TimeLimit"] == "00:10:00" and ci["MinMemoryNode"] == f"{SITE['mem_mb']}M"
    assert ci["NumCPUs"] == "2" and ci["Partition"] == "cpu" and "gres" not in ci.get("TresPerNode", "")
    assert ci["Comment"] == "rule_run_wildcards_demo_ci"
    assert gpu["TimeLimit"] == "00:15:00" and gpu["MinMemoryNode"] == "1200M"
    assert gpu["Partition"] == "gpu" and gpu["TresPerNode"] == "gres:gpu:1"
    assert gpu["NumCPUs"] == "2"

    # a second invocation submits nothing
    again = slurm_snakemake(slurm_cluster, minibook, *args)
    assert "Nothing to be done" in again and submitted(again) == {}
    print(table)  # for the record (pytest -s)


@pytest.mark.slow  # three SLURM jobs, two of them one after the other (> 1 min); .ci/run runs it after `make test`
def test_failing_job_is_retried_named_failed_in_sacct_and_the_others_finish(slurm_cluster, minibook):
    add_study(minibook, "demo2")
    bad = minibook / "parameters" / "demo2" / "ci.yaml"
    bad.write_text(bad.read_text() + "fail: true\n")
    out = slurm_snakemake(slurm_cluster, minibook, "--config", "profiles=[ci]", "sweeps=false",
                          "--set-threads", "run=1", "--retries", "1", ok=False)
    attempts = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S+/rule_run/demo2_ci/", out)
    jobs = submitted(out)
    assert set(jobs) == {"demo/ci", "demo2/ci"} and len(attempts) == 2, out[-3000:]  # one retry, as asked
    acct = slurm_cluster.sacct([jobs["demo/ci"], *attempts])
    table = slurm_cluster.sacct_lines([jobs["demo/ci"], *attempts])
    for job in attempts:
        assert acct[job]["State"] == "FAILED" and acct[job]["ExitCode"] != "0:0", table
    assert acct[jobs["demo/ci"]]["State"] == "COMPLETED", table
    # the workflow names the failed job (rule, SLURM id and state, outputs, log) ...
    error = out.rsplit("Error in rule run:", 1)[1].split("external_jobid", 1)[0]  # the last attempt's
    assert f"SLURM-job '{attempts[-1]}' failed, SLURM status is: 'FAILED'" in error
    assert "output: _runs/demo2/ci/demo2.ipynb" in error and "log: _runs/_logs/demo2/ci.log" in error
    log = minibook / "_runs" / "_logs" / "demo2" / "ci.log"
    assert "deliberate failure requested by the parameter `fail`" in log.read_text()
    # ... and kept going: the other study's run is complete, the failed one left no metrics
    assert json.loads((minibook / "_runs" / "demo" / "ci" / "metrics.json").read_text())["total"] == 10.0
    assert not (minibook / "_runs" / "demo2" / "ci" / "metrics.json").exists()
    print(table)


# metrics that measure the machine (wall-clock speed), not the science: equal only up to timing noise
_TIMING = re.compile(r"(speedup|seconds|_ms_|_s$|wall)")


@pytest.mark.slow  # two ci runs of a real chapter at once (~1-3 min); .ci/run runs it after `make test`
def test_real_chapter_at_ci_through_slurm_equals_a_local_run(slurm_cluster, tmp_path):
    """The cheapest real chapter (radiative, ci) through SLURM and locally, at the same time: the same metrics."""
    study = "radiative"
    root = tmp_path / "collection"  # this repository's studies; its _runs/ stays untouched
    for name in ("book", "parameters"):
        shutil.copytree(REPO / name, root / name)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(REPO / name, root / name)
    local = subprocess.Popen([sys.executable, "-m", "lib", "run", study, "--profile", "ci", "--out",
                              str(tmp_path / "local"), "--quiet"], cwd=REPO, env=slurm_cluster.env(
                                  OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out = slurm_snakemake(slurm_cluster, root, "--config", "profiles=[ci]", f"studies=[{study}]",
                              "sweeps=false", "--set-threads", "run=1")
    finally:
        log, _ = local.communicate(timeout=900)
    assert local.returncode == 0, log[-3000:]
    jobs = submitted(out)
    assert list(jobs) == [f"{study}/ci"], out[-3000:]
    assert slurm_cluster.sacct(list(jobs.values()))[jobs[f"{study}/ci"]]["State"] == "COMPLETED"

    remote = json.loads((root / "_runs" / study / "ci" / "metrics.json").read_text())
    here = json.loads((tmp_path / "local" / "metrics.json").read_text())
    assert set(remote) == set(here)
    same = {k for k in here if not _TIMING.search(k)}
    assert len(same) > 10, sorted(here)
    differ = {k: (remote[k], here[k]) for k in same
              if not (remote[k] == here[k] or (isinstance(here[k], float) and math.isnan(here[k])
                                               and math.isnan(remote[k])))}
    assert not differ, f"metrics differ between the SLURM and the local run: {differ}"
