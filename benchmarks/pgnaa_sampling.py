"""PGNAA throughput: RSM sampling, CNN inference and training (CPU; CUDA too when present).

Prints one table. Target: sampling is never the bottleneck of training, i.e. drawing a
batch costs less than a training step on it.

    OMP_NUM_THREADS=1 python benchmarks/pgnaa_sampling.py [--channels 16384] [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

from lib.pgnaa import sampling as S
from lib.pgnaa.inception_resnet1d import InceptionResNetV2_1D


def timeit(fn, repeat: int = 3) -> float:
    fn()  # warm-up
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
    ap.add_argument("--channels", type=int, default=16384)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--width", type=float, default=0.125)
    args = ap.parse_args()
    n, b = args.channels, args.batch
    rng = np.random.default_rng(0)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    full = torch.as_tensor(rng.poisson(6000.0 * rng.random((12, n)) ** 4), dtype=torch.float64)
    p_np = (full / full.sum(1, keepdim=True)).numpy()
    for k in (20_000, 500_000):
        idx = rng.integers(0, 12, b)
        t = timeit(lambda k=k, idx=idx: [rng.multinomial(k, p_np[i]) for i in idx], repeat=1)
        rows.append({"what": f"RSM-3 numpy loop, k={k}", "device": "cpu", "per second": b / t})
        for dev in devices:
            src = full.to(dev)
            g = torch.Generator(device=dev).manual_seed(0)
            ii = torch.as_tensor(idx, device=dev)
            t = timeit(lambda s=src, i=ii, k=k, g=g: S.rsm3(s[i], k, generator=g))
            rows.append({"what": f"RSM-3 binomial tree (batched), k={k}", "device": dev, "per second": b / t})
            if k <= 20_000 or dev == "cuda":
                t = timeit(lambda s=src, i=ii, k=k, g=g: S.rsm3_categorical(s[i], k, generator=g), repeat=1)
                rows.append({"what": f"RSM-3 categorical (batched), k={k}", "device": dev, "per second": b / t})
            t = timeit(lambda s=src, i=ii, k=k, g=g: S.rsm2(s[i], k, generator=g), repeat=1)
            rows.append({"what": f"RSM-2 binomial thinning, k={k}", "device": dev, "per second": b / t})
    length = 7896
    for dev in devices:
        m = InceptionResNetV2_1D(12, width=args.width, repeats=(1, 1, 1)).to(dev)
        x = torch.randn(b, 1, length, device=dev)
        y = torch.randint(0, 12, (b,), device=dev)
        m.eval()
        with torch.no_grad():
            t = timeit(lambda m=m, x=x: m(x), repeat=2)
        rows.append({"what": f"IRv2-1D inference (width {args.width}, L={length})", "device": dev, "per second": b / t})
        m.train()
        opt = torch.optim.Adam(m.parameters())

        def step(m=m, x=x, y=y, opt=opt):
            loss = torch.nn.functional.cross_entropy(m(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = timeit(step, repeat=2)
        rows.append({"what": f"IRv2-1D training step (width {args.width}, L={length})", "device": dev,
                     "per second": b / t})
    df = pd.DataFrame(rows)
    df["per second"] = df["per second"].map(lambda v: f"{v:,.0f} spectra/s")
    print(f"batch {b}, {n} channels, torch threads {torch.get_num_threads()}")
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
