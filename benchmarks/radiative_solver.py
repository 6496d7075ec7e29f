"""Throughput of the batched P1 solver, and (optionally) the original C++ program side by side.

Run::

    python benchmarks/radiative_solver.py [--sizes 64] [--batches 1 16 64 256] [--backend numba numpy torch] [--threads 1 2]
    python benchmarks/radiative_solver.py --sizes 64 --reference-binary PATH/build/transfer
    python benchmarks/radiative_solver.py --sizes 64 --batches 256 --backend torch --device cuda --gpu-record

Prints, per backend, thread count, grid and batch size, the wall and CPU time of one batched call (one
source edge, the authors' configuration: 383 steps at N = 64) and the amortised seconds per simulation
and simulations per second. B = 1 is the unbatched use of the same code. With one thread the time per
simulation is CPU time (robust to other jobs sharing the cores); with several threads it is wall time
(the parallel throughput), so run those on a quiet machine. ``--threads`` sets ``numba.set_num_threads``
and ``torch.set_num_threads``; the NumPy backend is single-threaded whatever it is. The Numba kernel is
compiled (or loaded from its cache) once before timing, and that time is printed. With ``--device cuda``
(torch backend) the GPU throughput is measured by wall time.

With ``--reference-binary`` (the authors' program built from ``ddrous/inverse-problem-vnet``:
``cmake -H. -Bbuild && cmake --build build``), the same density is also run through the original program
(one thread, left-edge source, binary SDS export) in a temporary working directory; its signals are
checked against ours (first ``--backend``, one thread) and the measured ratio of the times per simulation
is written, with the machine and the date, to ``--record`` (default
``benchmarks/radiative_solver_record.json``). The chapter quotes a speed-up only from such a record.

With ``--gpu-record`` (and ``--device cuda``), the torch backend is timed at the largest batch on the GPU and
the Numba kernel on all CPU cores of the same machine on the same densities; if their signals agree, the GPU
throughput, the machine and the date go to ``benchmarks/radiative_solver_gpu_record.json``, which the chapter
quotes (and says that none was measured when the file is absent).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from lib.radiative.densities import generate_densities
from lib.radiative.p1 import BACKENDS, simulate, step_count
from lib.radiative.sds import read_sds

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RECORD = REPO / "benchmarks" / "radiative_solver_record.json"
DEFAULT_GPU_RECORD = REPO / "benchmarks" / "radiative_solver_gpu_record.json"

# The original program's reader (src/config.cpp) loops `while (!file.eof()) { file >> name; ... }`: after a
# trailing newline the last `>>` fails, leaves `name` unchanged and counts that key twice ("Paramètre
# 'simu_count' dupliqué", exit 1). Its own templates end without one, and so must this text.
_CFG = """rho numpy:data/inputs/rho.npy
export_file data/outputs/rho.sds
x_min 0
x_max 1
c 299
a 0.01372
C_v 0.14361
CFL 0.5
precision 1e-6
t_0 0
t_f 0.01
sigma_a rho*T
sigma_c rho*T
E_0 0.01372*(5^4)
F_0_x 0
F_0_y 0
T_0 5
E_u neumann
F_u_x neumann
F_u_y neumann
T_u neumann
E_d neumann
F_d_x neumann
F_d_y neumann
T_d neumann
E_l ponctuel(0,1)
F_l_x 0
F_l_y 0
T_l 5
E_r neumann
F_r_x neumann
F_r_y neumann
T_r neumann
export_mode binary
write_mode truncate
simu_count 1"""


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.node()} ({cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()})"


def run_reference(binary: Path, rho: np.ndarray, *, repeats: int = 1) -> tuple[list[float], list[float], np.ndarray]:
    """Run the original program on one y-up density (left source), ``repeats`` times.

    The program runs in a temporary working directory holding ``data/inputs``, ``data/outputs`` and
    ``data/anim`` (its paths are relative), on ``data/inputs/rho.npy`` in image rows (it maps numpy row ``r``
    to cell row ``N - r``), and writes one simulation to ``data/outputs/rho.sds``.

    Returns
    -------
    cpu_seconds, wall_seconds : list of float
        Per run, the child's CPU time (user + sys; robust to other jobs on the cores) and its wall time.
    signals : ndarray, shape (4, 3, S, N), float32
        ``[measured_edge, channel, step, position]`` read back from the SDS file.

    Raises
    ------
    SystemExit
        The binary is missing or not executable, it fails, or its SDS output does not hold the density it was given.
    """
    binary = Path(binary).resolve()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        raise SystemExit(f"--reference-binary {binary} is not an executable file; build the authors' program with "
                         "benchmarks/build_reference_solver.sh (or `cmake -H. -Bbuild && cmake --build build` in "
                         "its checkout) and pass build/transfer.")
    cpu, wall = [], []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for sub in ("data/inputs", "data/outputs", "data/anim"):
            (work / sub).mkdir(parents=True)
        np.save(work / "data/inputs/rho.npy", np.ascontiguousarray(np.flipud(rho), dtype=np.float64))  # image rows
        (work / "run.cfg").write_text(_CFG)
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        for _ in range(repeats):
            r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
            proc = subprocess.run([str(binary), "run.cfg"], cwd=work, env=env, capture_output=True, text=True)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall.append(time.perf_counter() - t0)
            cpu.append((r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime))
            if proc.returncode != 0:
                raise SystemExit(f"the reference program failed (rc {proc.returncode}):\n"
                                 f"{(proc.stdout[-1000:] + proc.stderr[-2000:]).strip()}")
        sds = read_sds(work / "data/outputs/rho.sds")
    if sds.n_sim != 1 or sds.source_edge[0] != 2:
        raise SystemExit(f"the reference SDS holds {sds.n_sim} simulation(s) with source edge codes "
                         f"{sds.source_edge.tolist()}; expected one left-source (code 2) run.")
    if sds.density is None or not np.array_equal(sds.density[0], np.asarray(rho, dtype=np.float32)):
        raise SystemExit("the density in the reference SDS is not the y-up density that was passed (orientation "
                         "mismatch between the .npy written here and the program's reader).")
    return cpu, wall, np.asarray(sds.signals)[0]


def _set_threads(n: int) -> None:
    """Threads of the Numba kernel and of torch (the NumPy backend is single-threaded)."""
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover
        pass


def _warm_up(backend: str, device: str | None) -> float:
    """Compile (or load from the cache) the kernels of ``backend``; return the seconds it took."""
    t0 = time.perf_counter()
    simulate(np.ones((1, 8, 8)), "left", n_steps=2, signal_dtype=np.float32, backend=backend, device=device)
    return time.perf_counter() - t0


def signal_difference(ours: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Max |ours - reference| per channel, relative to the channel's max |reference| (channels E, |F|, T).

    ``ours`` and ``reference`` are ``(4, 3, S, N)`` signals ``[measured_edge, channel, step, position]``.
    Per channel, so that the small flux channel is not hidden behind the scale of E.
    """
    ours, ref = np.asarray(ours, np.float64), np.asarray(reference, np.float64)
    if ours.shape != ref.shape:
        raise SystemExit(f"our signals {ours.shape} and the reference program's {ref.shape} differ in shape "
                         "(grid or step count); they cannot be compared.")
    return {ch: float(np.abs(ours[:, c] - ref[:, c]).max() / np.abs(ref[:, c]).max())
            for c, ch in enumerate(("E", "F", "T"))}


def side_by_side(binary: Path, n: int, record: Path, *, batch: int, repeats: int, tolerance: float = 1e-4,
                 backend: str = "auto", threads: int = 1) -> dict:
    """Time the original program and ours on the same N x N density (left source) and write the record.

    The record is written only if the signals agree (each channel within ``tolerance`` of the reference
    program's maximum): a speed ratio between two programs that compute different things means nothing.
    Both sides are timed in CPU seconds at one thread; ours once batched (``batch`` densities, amortised) and
    once unbatched (B = 1, the density the reference ran on). With ``threads`` > 1, ours is also timed batched
    on that many threads by the wall clock (throughput of the machine; the original program forces one thread).
    """
    rho_all, _ = generate_densities(batch, rng=np.random.default_rng(0), size=n)
    ref_cpu, ref_walls, ref_sig = run_reference(binary, rho_all[0], repeats=repeats)
    ref_s, ref_wall = float(np.median(ref_cpu)), float(np.median(ref_walls))
    _set_threads(1)
    _warm_up(backend, None)
    c0 = time.process_time()
    one = simulate(rho_all[:1], "left", mode="faithful", signal_dtype=np.float32, backend=backend).signals
    ours_one_s = time.process_time() - c0
    c0, t0 = time.process_time(), time.perf_counter()
    res = simulate(rho_all, "left", mode="faithful", signal_dtype=np.float32, backend=backend)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    ours = res.signals
    ours_s = cpu / batch
    diff = signal_difference(ours[0], ref_sig)
    err = max(diff.values())
    if not np.array_equal(one[0], ours[0]):
        raise SystemExit("our batched and unbatched runs of the same density differ; fix the solver first.")
    if not err <= tolerance:
        raise SystemExit(f"our signals and the reference program's disagree (max relative difference per channel "
                         f"{diff}, tolerance {tolerance:g}); no speed record written.")
    rec = {"grid": n, "steps": step_count(n), "reference_seconds": ref_s, "reference_wall_seconds": ref_wall,
           "repeats": repeats, "reference_seconds_runs": [round(v, 3) for v in ref_cpu],
           "reference_wall_seconds_runs": [round(v, 3) for v in ref_walls],
           "ours_seconds": ours_s, "ours_wall_seconds_batch": wall, "batch": batch,
           "ratio": ref_s / ours_s, "ours_seconds_unbatched": ours_one_s, "ratio_unbatched": ref_s / ours_one_s,
           "backend": res.backend, "threads": 1,
           "max_rel_signal_difference": err, "max_rel_signal_difference_per_channel": diff,
           "machine": _machine(), "load_average_1min": round(os.getloadavg()[0], 2), "clock": "cpu",
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "notes": "reference: CPU seconds (user+sys) per run of the original program, one thread, median of "
                    "`repeats` runs (its wall time alongside); ours: CPU seconds per simulation at one thread, "
                    f"{res.backend} backend, amortised over `batch` densities (`ours_seconds`) and for one density alone "
                    "(`ours_seconds_unbatched`); ratio = reference_seconds / ours_seconds"}
    if threads > 1:
        _set_threads(threads)
        t0 = time.perf_counter()
        simulate(rho_all, "left", mode="faithful", signal_dtype=np.float32, backend=backend)
        par = (time.perf_counter() - t0) / batch
        _set_threads(1)
        rec.update({"parallel_threads": threads, "ours_wall_seconds_parallel": par, "ratio_parallel": ref_s / par,
                    "notes_parallel": f"ours batched on {threads} threads, wall seconds per simulation (throughput of "
                                      "the machine, inflated by any other load); ratio_parallel = reference_seconds / "
                                      "ours_wall_seconds_parallel"})
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(rec, indent=2) + "\n")
    return rec


def gpu_throughput(n: int, record: Path, *, batch: int = 256, repeats: int = 3, device: str = "cuda",
                   cpu_threads: int | None = None, tolerance: float = 1e-4) -> dict:
    """Time the torch backend on a CUDA device at ``batch`` densities and write the GPU record.

    The same ``batch`` densities (left source) run through the torch backend on ``device`` ``repeats`` times
    (wall clock; :func:`lib.radiative.p1.simulate` returns host arrays, so each call ends synchronised) and
    once through the fused Numba kernel on this machine's CPU cores (``cpu_threads``, default all), so the
    record holds a side-by-side GPU/CPU throughput of one machine. The record is written only if the two
    backends' signals agree (each channel within ``tolerance`` of its maximum).
    """
    import torch

    if not torch.cuda.is_available() or not str(device).startswith("cuda"):
        raise SystemExit("--gpu-record needs a CUDA device (--device cuda) and a CUDA build of torch; "
                         "no GPU measurement is written on a machine without one.")
    rho_all, _ = generate_densities(batch, rng=np.random.default_rng(0), size=n)
    _warm_up("torch", device)
    walls, gpu_sig = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        gpu_sig = simulate(rho_all, "left", mode="faithful", signal_dtype=np.float32, backend="torch",
                           device=device).signals
        walls.append(time.perf_counter() - t0)
    threads = cpu_threads or os.cpu_count() or 1
    _set_threads(threads)
    _warm_up("numba", None)
    t0 = time.perf_counter()
    cpu_sig = simulate(rho_all, "left", mode="faithful", signal_dtype=np.float32, backend="numba").signals
    cpu_wall = time.perf_counter() - t0
    diff = {ch: float(np.abs(np.asarray(gpu_sig, np.float64)[:, :, c] - np.asarray(cpu_sig, np.float64)[:, :, c]).max()
                      / np.abs(np.asarray(cpu_sig, np.float64)[:, :, c]).max())
            for c, ch in enumerate(("E", "F", "T"))}
    if not max(diff.values()) <= tolerance:
        raise SystemExit(f"torch on {device} and the Numba kernel disagree (max relative difference per channel "
                         f"{diff}); no GPU record written.")
    gpu_s = float(np.median(walls)) / batch
    props = torch.cuda.get_device_properties(torch.device(device))
    rec = {"device_name": props.name, "grid": n, "steps": step_count(n), "batch": batch, "repeats": repeats,
           "seconds_per_simulation": gpu_s, "simulations_per_second": 1.0 / gpu_s,
           "wall_seconds_runs": [round(v, 4) for v in walls],
           "cpu_backend": "numba", "cpu_threads": threads, "cpu_seconds_per_simulation": cpu_wall / batch,
           "cpu_simulations_per_second": batch / cpu_wall, "gpu_over_cpu": (cpu_wall / batch) / gpu_s,
           "max_rel_signal_difference_per_channel": diff,
           "torch_version": torch.__version__, "cuda_version": torch.version.cuda,
           "machine": _machine(), "clock": "wall",
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "notes": f"torch backend on {props.name}: wall seconds per simulation, median of `repeats` batched calls "
                    f"of `batch` densities (N={n}, faithful mode, float32 signals, host arrays returned); CPU: the "
                    f"fused Numba kernel on {threads} threads of the same machine, one batched call; gpu_over_cpu = "
                    "cpu_seconds_per_simulation / seconds_per_simulation"}
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(rec, indent=2) + "\n")
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64, 256])
    ap.add_argument("--mode", default="faithful", choices=["faithful", "physical"])
    ap.add_argument("--backend", nargs="+", default=["numba", "numpy"], choices=[b for b in BACKENDS],
                    help="backends to time (auto resolves to numba for the default opacities)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2],
                    help="thread counts (numba.set_num_threads / torch.set_num_threads)")
    ap.add_argument("--device", default=None, help="torch device for --backend torch (cpu, cuda)")
    ap.add_argument("--reference-binary", type=Path, default=None,
                    help="the original C++ program (build/transfer): run it side by side and write a record")
    ap.add_argument("--record", type=Path, default=DEFAULT_RECORD, help="where the side-by-side record goes")
    ap.add_argument("--repeats", type=int, default=1, help="runs of the reference program (median)")
    ap.add_argument("--gpu-record", type=Path, nargs="?", const=DEFAULT_GPU_RECORD, default=None,
                    help="with --device cuda: time the torch backend at the largest batch against the Numba kernel "
                         "on all CPU cores of this machine and write a GPU record (default path "
                         "benchmarks/radiative_solver_gpu_record.json)")
    args = ap.parse_args()
    rows = []
    for backend in args.backend:
        print(f"{backend}: compile/load + warm-up {_warm_up(backend, args.device):.2f} s", flush=True)
        for threads in args.threads:
            _set_threads(threads)
            for n in args.sizes:
                rho_all, _ = generate_densities(max(args.batches), rng=np.random.default_rng(0), size=n)
                for b in args.batches:
                    t0, c0 = time.perf_counter(), time.process_time()
                    res = simulate(rho_all[:b], "left", mode=args.mode, signal_dtype=np.float32, backend=backend,
                                   device=args.device)
                    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                    gpu = backend == "torch" and (args.device or "").startswith("cuda")
                    use_wall = gpu or threads > 1  # parallel throughput is a wall-clock quantity
                    per = (wall if use_wall else cpu) / b  # CPU time is robust to other jobs sharing the cores
                    rows.append({"backend": res.backend, "threads": threads, "N": n, "steps": step_count(n),
                                 "batch": b, "wall_s": wall, "cpu_s": cpu, "cpu_s_per_sim": cpu / b,
                                 "s_per_sim": per, "sims_per_s": 1 / per, "clock": "wall" if use_wall else "cpu"})
                    print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    print("\n" + pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.reference_binary is not None:
        for n in args.sizes:
            rec = side_by_side(args.reference_binary, n, args.record, batch=max(args.batches), repeats=args.repeats,
                               backend=args.backend[0], threads=max(args.threads))
            par = (f"; {rec['parallel_threads']} threads: {rec['ours_wall_seconds_parallel']:.3f} s wall per simulation "
                   f"-> ratio {rec['ratio_parallel']:.0f}") if "ratio_parallel" in rec else ""
            print(f"\nN={n}: original {rec['reference_seconds']:.2f} s, ours {rec['ours_seconds']:.3f} s per simulation "
                  f"({rec['backend']}, one thread, CPU) -> ratio {rec['ratio']:.0f}{par} (signals agree to "
                  f"{rec['max_rel_signal_difference']:.1e}); record written to {args.record}")
    else:
        print("\n(no --reference-binary: our times only, no speed-up against the original program is claimed)")
    if args.gpu_record is not None:
        for n in args.sizes:
            rec = gpu_throughput(n, args.gpu_record, batch=max(args.batches), device=args.device or "cuda")
            print(f"\nN={n}, batch {rec['batch']}: torch on {rec['device_name']} {rec['seconds_per_simulation']:.4f} s "
                  f"per simulation ({rec['simulations_per_second']:.0f}/s); Numba on {rec['cpu_threads']} CPU threads "
                  f"{rec['cpu_seconds_per_simulation']:.4f} s ({rec['gpu_over_cpu']:.1f}x); record written to "
                  f"{args.gpu_record}")


if __name__ == "__main__":
    main()
