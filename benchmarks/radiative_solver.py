"""Throughput of the batched P1 solver (simulations per second), beside the original C++ program.

Run: ``OMP_NUM_THREADS=1 python benchmarks/radiative_solver.py [--sizes 32 64] [--batches 1 16 64]``

Prints, per grid and batch size, the wall and CPU time of one batched call (one source edge, the authors'
configuration: 383 steps at N = 64), the amortised CPU seconds per simulation (robust to other jobs on a shared machine) and the speed-up over the
original program's measured 36-47 s (N = 64) / 3.9-6.0 s (N = 32) per simulation single-threaded
(``shared/data/rt/README.md``). B = 1 is the unbatched (naive) use of the same code.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from lib.radiative.densities import generate_densities
from lib.radiative.p1 import simulate, step_count

CPP_SECONDS = {16: (0.75, 0.92), 32: (3.9, 6.0), 64: (35.6, 46.8), 128: (290.0, 290.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--mode", default="faithful", choices=["faithful", "physical"])
    ap.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        rho_all, _ = generate_densities(max(args.batches), rng=np.random.default_rng(0), size=n)
        for b in args.batches:
            t0, c0 = time.perf_counter(), time.process_time()
            simulate(rho_all[:b], "left", mode=args.mode, signal_dtype=np.float32, backend=args.backend)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            per = cpu / b  # CPU time: robust to other jobs sharing the cores (single-threaded run)
            lo, hi = CPP_SECONDS.get(n, (np.nan, np.nan))
            rows.append({"N": n, "steps": step_count(n), "batch": b, "wall_s": wall, "cpu_s": cpu,
                         "cpu_s_per_sim": per, "sims_per_cpu_s": 1 / per, "C++ s/sim": f"{lo}-{hi}",
                         "speed-up vs C++": f"{lo / per:.0f}-{hi / per:.0f}x"})
            print(pd.DataFrame(rows[-1:]).to_string(index=False, header=len(rows) == 1), flush=True)
    df = pd.DataFrame(rows)
    print("\n" + df.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    n64 = df[(df.N == 64)]
    if len(n64):
        best = n64.cpu_s_per_sim.min()
        print(f"\npaper dataset (2900 densities x 4 edges at N=64): ~{2900 * 4 * best / 60:.0f} CPU-min "
              f"(~{2900 * 4 * best / 60 / 2:.0f} min on 2 cores with 2 processes)")


if __name__ == "__main__":
    main()
