"""PGNAA throughput: RSM-3 draws/s (NumPy and torch) and training/inference spectra/s of the lab and paper networks.

Prints one table. The networks are the chapter's: the 1D Inception-ResNet-V2 with its
linear path on full-resolution counts (``lib.pgnaa.experiment.make_model(..., bin_factor=...)``),
at the lab profile's size (width 1/8, repeats 1/1/1, trunk bins of 8) and the paper's
(width 1, repeats 10/20/9, no binning). Sampling should never be the bottleneck of training.

    OMP_NUM_THREADS=1 python benchmarks/pgnaa_sampling.py [--batch 64] [--skip-paper]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from lib.pgnaa import experiment as X
from lib.pgnaa import sampling as S


def timeit(fn, repeat: int = 3) -> float:
    """Best wall time of ``repeat`` calls after one warm-up (seconds)."""
    fn()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return min(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=7896, help="channels per spectrum (Experiment I: 104-7999)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--skip-paper", action="store_true", help="skip the full-size paper network")
    args = ap.parse_args()
    n, b = args.channels, args.batch
    rng = np.random.default_rng(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    full = torch.as_tensor(rng.poisson(6000.0 * rng.random((12, n)) ** 4), dtype=torch.float64)
    p_np = (full / full.sum(1, keepdim=True)).numpy()
    idx = rng.integers(0, 12, b)
    for k in (1000, 20_000, 500_000):
        t = timeit(lambda k=k: rng.multinomial(k, p_np[idx]), repeat=2)
        rows.append({"what": f"RSM-3 numpy.multinomial, k={k}", "device": "cpu", "per second": b / t})
        for dev in devices:
            src = full.to(dev)
            g = torch.Generator(device=dev).manual_seed(0)
            ii = torch.as_tensor(idx, device=dev)
            t = timeit(lambda s=src, i=ii, k=k, g=g: S.rsm3(s[i], k, generator=g), repeat=2)
            rows.append({"what": f"RSM-3 lib rsm3 (used in training), k={k}", "device": dev, "per second": b / t})
            t = timeit(lambda s=src, i=ii, k=k, g=g: S.rsm3_tree(s[i], k, generator=g), repeat=2)
            rows.append({"what": f"RSM-3 torch binomial tree, k={k}", "device": dev, "per second": b / t})
    nets = [("lab", dict(width=0.125, repeats=(1, 1, 1), bin_factor=8))]
    if not args.skip_paper:
        nets.append(("paper", dict(width=1.0, repeats=(10, 20, 9), bin_factor=1)))
    for name, kw in nets:
        for dev in devices:
            m = X.make_model("irv2", 12, n, linear_path=True, **kw).to(dev)
            bb = b if name == "lab" or dev == "cuda" else 4
            x = torch.as_tensor(rng.multinomial(20_000, p_np[rng.integers(0, 12, bb)]), dtype=torch.float32,
                                device=dev)
            y = torch.randint(0, 12, (bb,), device=dev)
            m.eval()
            with torch.no_grad():
                t = timeit(lambda m=m, x=x: m(x), repeat=2)
            rows.append({"what": f"IRv2-1D + linear path inference ({name}, batch {bb})", "device": dev,
                         "per second": bb / t})
            m.train()
            opt = torch.optim.Adam(m.parameters())

            def step(m=m, x=x, y=y, opt=opt):
                loss = torch.nn.functional.cross_entropy(m(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            t = timeit(step, repeat=2)
            rows.append({"what": f"IRv2-1D + linear path training ({name}, batch {bb})", "device": dev,
                         "per second": bb / t})
    df = pd.DataFrame(rows)
    df["per second"] = df["per second"].map(lambda v: f"{v:,.0f} spectra/s")
    print(f"batch {b}, {n} channels, torch threads {torch.get_num_threads()}")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
