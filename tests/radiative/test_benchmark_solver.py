"""The side-by-side speed record of ``benchmarks/radiative_solver.py``, with a stand-in for the original program.

The stand-in reads the program's inputs as the C++ code does (``data/inputs/rho.npy`` in image rows, a
config file argument parsed with the same duplicate-key rule, paths relative to its working directory,
outputs in ``data/outputs/``), so the tests check the plumbing and the record's contents; the chapter reads
the record with :func:`lib.radiative.experiment.read_speed_record`. With ``RT_REFERENCE_BINARY`` set to the
authors' program (built by ``benchmarks/build_reference_solver.sh``), one more test runs it at N = 16.
"""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from lib.radiative import experiment

REPO = Path(__file__).resolve().parents[2]

_FAKE = """#!{python}
import os, sys, time
from pathlib import Path
import numpy as np
sys.path.insert(0, {repo!r})
from lib.radiative.p1 import simulate
from lib.radiative.sds import write_sds
# the C++ reader (src/config.cpp): `while (!eof) {{ file >> name; file >> value; }}` counts every key and
# fails on a duplicate; a trailing newline makes the last `>>` fail and count the last key twice
text = Path(sys.argv[1]).read_text()
tokens = text.split()
names = tokens[0::2]
if text != text.rstrip():
    names.append(names[-1])
dup = sorted({{k for k in names if names.count(k) > 1}})
if dup:
    sys.exit("ERREUR: Paramètre '" + dup[0] + "' dupliqué dans le fichier de configuration")
cfg = dict(zip(tokens[0::2], tokens[1::2]))
assert cfg["E_l"] == "ponctuel(0,1)" and cfg["rho"] == "numpy:data/inputs/rho.npy", cfg
for d in ("data/inputs", "data/outputs", "data/anim"):
    assert Path(d).is_dir(), d  # the program's paths are relative to its working directory
rho = np.flipud(np.load("data/inputs/rho.npy"))  # the program reads image rows
c0 = time.process_time()
while time.process_time() - c0 < 0.3:  # burn CPU: the benchmark times the child's CPU, not its wall clock
    pass
res = simulate(rho, "left", signal_dtype=np.float32)
sig = res.signals * np.float32(os.environ.get("FAKE_SCALE", "1"))
write_sds(cfg["export_file"], sig, density=rho[None], source_edge=["left"])
"""


def _fake(tmp_path):
    fake = tmp_path / "transfer"
    fake.write_text(_FAKE.format(python=sys.executable, repo=str(REPO)))
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("radiative_solver_bench", REPO / "benchmarks" / "radiative_solver.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_side_by_side_record(tmp_path):
    bench = _load_benchmark()
    record = tmp_path / "rec.json"
    rec = bench.side_by_side(_fake(tmp_path), 16, record, batch=2, repeats=1)
    assert rec["max_rel_signal_difference"] < 1e-6  # same density, same orientation, same solver
    assert set(rec["max_rel_signal_difference_per_channel"]) == {"E", "F", "T"}
    assert rec["reference_seconds"] >= 0.3  # child CPU time, which includes the stand-in's 0.3 s busy loop
    assert rec["reference_wall_seconds"] >= rec["reference_seconds"] * 0.9
    assert len(rec["reference_seconds_runs"]) == 1 and rec["reference_seconds_runs"][0] >= 0.3
    assert rec["ratio"] == pytest.approx(rec["reference_seconds"] / rec["ours_seconds"])
    assert rec["ratio_unbatched"] == pytest.approx(rec["reference_seconds"] / rec["ours_seconds_unbatched"])
    assert rec["clock"] == "cpu" and rec["steps"] == 96
    stored = experiment.read_speed_record(record)
    assert stored == json.loads(record.read_text()) and stored["grid"] == 16


def test_config_is_read_by_the_programs_parser(tmp_path):
    """The config text must not end with whitespace: the original reader would count its last key twice."""
    bench = _load_benchmark()
    assert bench._CFG == bench._CFG.rstrip()
    keys = bench._CFG.split()[0::2]
    assert len(keys) == len(set(keys)) == 36


def test_disagreeing_reference_writes_no_record(tmp_path, monkeypatch):
    bench = _load_benchmark()
    monkeypatch.setenv("FAKE_SCALE", "1.01")
    record = tmp_path / "rec.json"
    with pytest.raises(SystemExit, match="disagree"):
        bench.side_by_side(_fake(tmp_path), 16, record, batch=1, repeats=1)
    assert not record.exists()


def test_signal_difference_is_per_channel():
    bench = _load_benchmark()
    ref = np.ones((4, 3, 5, 8))
    ref[:, 1] = 1e-3  # the flux channel is small
    ours = ref.copy()
    ours[:, 1] += 1e-4  # 10 % of the flux channel, 1e-4 of the global maximum
    diff = bench.signal_difference(ours, ref)
    assert diff["F"] == pytest.approx(0.1) and diff["E"] == 0 and diff["T"] == 0
    with pytest.raises(SystemExit, match="shape"):
        bench.signal_difference(ours[:, :, :4], ref)


@pytest.mark.skipif(not os.environ.get("RT_REFERENCE_BINARY"),
                    reason="set RT_REFERENCE_BINARY to the original program (benchmarks/build_reference_solver.sh)")
def test_real_reference_program_matches_the_port(tmp_path):
    """The authors' program itself (N = 16, 96 steps, about 1 s): our faithful port reproduces its signals."""
    bench = _load_benchmark()
    rec = bench.side_by_side(Path(os.environ["RT_REFERENCE_BINARY"]), 16, tmp_path / "rec.json", batch=1, repeats=1,
                             tolerance=1e-5)
    assert rec["max_rel_signal_difference"] < 1e-5
    assert rec["reference_seconds"] > 0


def test_missing_binary_is_a_clear_error(tmp_path):
    bench = _load_benchmark()
    with pytest.raises(SystemExit, match="not an executable"):
        bench.run_reference(tmp_path / "nope", None)
