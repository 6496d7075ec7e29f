"""Ctrl-C at three moments of a run (issue 21): before the kernel starts, during a cell, after the last cell.

Each test runs the command line in a child process (``cli.main`` behind a few lines that set the
child's SIGINT disposition, since a test started from a background job of a non-interactive shell
inherits SIGINT *ignored*), drives the run into the wanted state and waits for it by polling a file
(no sleep racing the machine's load), then sends SIGINT. Every interrupted run must end with exit
code 130, ``status: interrupted`` in its records, no reusable record and no traceback on stderr (the
asyncio "Task exception was never retrieved" report included).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import nbformat
import pytest

from lib.cli import main
from lib.runtime.record import RunRecord, reuse_problem
from lib.runtime.run import get_study, run_key

REPO = Path(__file__).resolve().parents[2]
#: A safety net only: every wait below ends as soon as its file shows the state.
DEADLINE_S = 300

#: The child: set SIGINT as asked (argv[1]: "default" or "ignored"), optionally hold the runner just
#: after the last cell (argv[2]: a path prefix, or "-"), then run the command line (argv[3:]).
CHILD = r"""
import signal, sys, time
from pathlib import Path

signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
signal.signal(signal.SIGINT, signal.SIG_IGN if sys.argv[1] == "ignored" else signal.default_int_handler)
if sys.argv[2] != "-":
    import lib.runtime.run as run

    reached, go = Path(sys.argv[2] + ".reached"), Path(sys.argv[2] + ".go")
    collect = run.collect_metrics

    def held(nb):
        reached.touch()  # every cell ran; the runner is about to write the run's files
        deadline = time.monotonic() + 600
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return collect(nb)

    run.collect_metrics = held
from lib.cli import main

sys.exit(main(sys.argv[3:]))
"""

#: A "kernel" that says it started, then never answers (the runner waits for it to become ready).
STALLED_KERNEL = r"""
import os, sys, time
tmp = sys.argv[1] + ".tmp"
with open(tmp, "w") as fh:
    fh.write(str(os.getpid()))
os.replace(tmp, sys.argv[1])
time.sleep(600)
"""


#: An IPython start-up file for the kernel: it marks the moment the slow cell's ``time.sleep(600)`` begins,
#: so the test knows the cell is executing, not just about to (papermill saves "running" before the kernel starts it).
SLEEP_MARKER = """
import time

_sleep = time.sleep


def _marked_sleep(seconds, path={path!r}):
    if seconds >= 60:
        open(path, "w").close()
    return _sleep(seconds)


time.sleep = _marked_sleep
"""


@pytest.fixture
def env_root(minibook, monkeypatch):
    monkeypatch.setenv("STUDIES_ROOT", str(minibook))
    return minibook


def _start(root: Path, out: Path, *args: str, sigint: str = "default", hold: str = "-",
           env: dict[str, str] | None = None) -> subprocess.Popen:
    child_env = {**os.environ, "STUDIES_ROOT": str(root), "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, sigint, hold, "run", "demo", "--profile", "ci", "--quiet", "--out", str(out),
         *args],
        cwd=REPO, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for(state: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not state():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (exit {proc.returncode}) before {what}:\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} within {DEADLINE_S} s")
        time.sleep(0.05)


def _interrupt(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "exception was never retrieved" not in stderr, stderr
    return stderr


def _assert_interrupted(run: Path, moment: str) -> dict:
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["status"] == "interrupted" and moment in prov["failed_cell"]
    assert nbformat.read(run / "demo.ipynb", as_version=4).metadata["studies"]["status"] == "interrupted"
    assert reuse_problem(RunRecord.read(run), prov["run_key"]).startswith("interrupted")  # never reused
    return prov


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in state  # exited, not yet reaped by its new parent


def test_interrupt_before_the_kernel_starts(env_root, tmp_path):
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    started = tmp_path / "kernel.pid"
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-c", STALLED_KERNEL, str(started), "{connection_file}"],
        "display_name": "a kernel that never becomes ready", "language": "python"}))
    out = tmp_path / "run"
    proc = _start(env_root, out, env={"JUPYTER_PATH": str(tmp_path / "jupyter")})
    _wait_for(started.is_file, proc, "the kernel process started")
    stderr = _interrupt(proc)
    moment = "before its first cell ran (while the kernel was starting)"
    assert f"was interrupted {moment}" in stderr and f"kept in {out} " in stderr
    _assert_interrupted(out, moment)
    assert _gone(int(started.read_text()))  # the runner killed the kernel it started
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder or lock left


def test_interrupt_during_a_cell_keeps_the_earlier_good_run(env_root, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "demo", "--profile", "ci", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    key = RunRecord.read(out).run_key
    startup = tmp_path / "ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True)
    sleeping = tmp_path / "cell.sleeping"
    (startup / "00-mark-the-slow-cell.py").write_text(SLEEP_MARKER.format(path=str(sleeping)))
    # SIGINT ignored, as inherited by a background job of a script: the runner must honour it anyway
    proc = _start(env_root, out, "--set", "sleep_s=600", sigint="ignored",
                  env={"IPYTHONDIR": str(tmp_path / "ipython")})
    _wait_for(sleeping.is_file, proc, "the slow cell sleeping")
    stderr = _interrupt(proc)
    partial = out / ".partial-interrupted"
    assert "was interrupted in code cell 4" in stderr and f"kept in {partial} " in stderr
    assert f"the finished run in {out} is untouched" in stderr
    prov = _assert_interrupted(partial, "code cell 4")
    assert prov["overrides"] == {"sleep_s": 600}
    # the earlier finished run is where it was, and the book still reuses it
    assert RunRecord.read(out).run_key == key and (out / "figures" / "demo_line.png").is_file()
    assert json.loads((out / "provenance.json").read_text())["status"] == "ok"
    assert reuse_problem(RunRecord.read(out), key) is None  # the key it was recorded with


def test_interrupt_after_the_last_cell_while_saving(env_root, tmp_path):
    out = tmp_path / "run"
    hold = tmp_path / "hold"
    proc = _start(env_root, out, hold=str(hold))
    _wait_for(Path(f"{hold}.reached").is_file, proc, "the last cell finished")
    proc.send_signal(signal.SIGINT)
    Path(f"{hold}.go").touch()  # let the runner go on writing the run's files, with the interrupt pending
    _, stderr = proc.communicate(timeout=DEADLINE_S)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "exception was never retrieved" not in stderr, stderr
    moment = "after its last cell, while the run was being saved"
    assert f"was interrupted {moment}" in stderr
    _assert_interrupted(out, moment)
    assert json.loads((out / "metrics.json").read_text())["total"] == 10.0  # what the run measured is kept
    st = get_study("demo", env_root)
    assert reuse_problem(RunRecord.read(out), run_key(st, st.parameter_dir / "ci.yaml")) is not None
