"""The side-by-side speed record of ``benchmarks/radiative_solver.py``, with a stand-in for the original program.

The stand-in reads the program's inputs exactly as the C++ code does (``data/inputs/rho.npy`` in image
rows, a config file argument, outputs in ``data/outputs/``), so the test checks the plumbing and the
record's contents; the chapter reads the record with :func:`lib.radiative.experiment.read_speed_record`.
"""

from __future__ import annotations

import importlib.util
import json
import stat
import sys
from pathlib import Path

import pytest

from lib.radiative import experiment

REPO = Path(__file__).resolve().parents[2]

_FAKE = """#!{python}
import sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, {repo!r})
from lib.radiative.p1 import simulate
from lib.radiative.sds import write_sds
cfg = dict(line.split(" ", 1) for line in Path(sys.argv[1]).read_text().splitlines() if line.strip())
assert cfg["E_l"] == "ponctuel(0,1)" and cfg["rho"] == "numpy:data/inputs/rho.npy"
rho = np.flipud(np.load("data/inputs/rho.npy"))  # the program reads image rows
time.sleep(0.3)
res = simulate(rho, "left", signal_dtype=np.float32)
write_sds("data/outputs/rho.sds", res.signals, density=rho[None], source_edge=["left"])
"""


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("radiative_solver_bench", REPO / "benchmarks" / "radiative_solver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_side_by_side_record(tmp_path):
    fake = tmp_path / "transfer"
    fake.write_text(_FAKE.format(python=sys.executable, repo=str(REPO)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    bench = _load_benchmark()
    record = tmp_path / "rec.json"
    rec = bench.side_by_side(fake, 16, record, batch=2, repeats=1)
    assert rec["max_rel_signal_difference"] < 1e-6  # same density, same orientation, same solver
    assert rec["reference_seconds"] >= 0.3
    assert rec["ratio"] == pytest.approx(rec["reference_seconds"] / rec["ours_seconds"])
    stored = experiment.read_speed_record(record)
    assert stored == json.loads(record.read_text()) and stored["grid"] == 16


def test_missing_binary_is_a_clear_error(tmp_path):
    bench = _load_benchmark()
    with pytest.raises(SystemExit, match="not an executable"):
        bench.run_reference(tmp_path / "nope", None)
