"""Paper profiles proven on CPU: ``studies run STUDY --profile paper --smoke`` for every study (slow).

A smoke run keeps the paper's model and input sizes and applies only the loop-length overrides of
``_profile.smoke`` in ``parameters/<study>/paper.yaml``. Each test runs it through the command line,
as a user would, and records its wall time and peak RSS (``record_property``; shown with ``-rA``).
A paper profile forbids the synthetic fallback, so each smoke run also proves that the real data
are found and verify.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lib.runtime.params import load_parameter_file

REPO = Path(__file__).resolve().parents[2]
STUDIES = ("perfusion", "nuclei", "radiative", "pgnaa")


@pytest.mark.slow
@pytest.mark.parametrize("study", STUDIES)
def test_paper_profile_smoke_run(study, tmp_path, record_property):
    paper = REPO / "parameters" / study / "paper.yaml"
    if not paper.is_file():
        pytest.skip(f"{study} has no paper profile ({paper})")
    if not load_parameter_file(paper)[1].smoke:
        pytest.skip(f"{paper} declares no _profile.smoke overrides yet, so there is no short paper-size run")
    out = tmp_path / f"{study}-paper-smoke"
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"), "PYTHONPATH": str(REPO)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "lib", "run", study, "--profile", "paper", "--smoke", "--quiet", "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=3 * 3600,
    )
    wall = time.perf_counter() - t0
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest child so far (kernel)
    record_property("wall_s", round(wall, 1))
    record_property("peak_rss_mb", round(peak_mb))
    print(f"{study} paper --smoke: {wall:.0f} s wall, peak RSS {peak_mb:.0f} MB")
    assert proc.returncode == 0, proc.stderr[-4000:]
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["status"] == "ok" and prov["synthetic_fallback_allowed"] is False
    assert all(v == "real" for v in (prov.get("data_sources") or {}).values()), prov["data_sources"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert any(not k.startswith("_") for k in metrics), "the smoke run recorded no metric"
