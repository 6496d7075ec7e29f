"""Training and inference throughput (images/s) of MultiResUNet and U-Net at 256x256.

Usage: ``python benchmarks/nuclei_throughput.py [--size 256] [--batch 8] [--steps 3] [--device auto]``.
Prints one row per (model, width, mode). CPU numbers depend heavily on thread count and load.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd
import torch

from lib.core.repro import resolve_device
from lib.nuclei.multiresunet import MultiResUNet
from lib.nuclei.unet2d import UNet2D


def bench(model: torch.nn.Module, size: int, batch: int, steps: int, dev: torch.device) -> tuple[float, float]:
    model.to(dev)
    x = torch.rand(batch, 3, size, size, device=dev)
    y = (torch.rand(batch, 1, size, size, device=dev) > 0.85).float()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    loss_fn = torch.nn.BCEWithLogitsLoss()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for i in range(steps + 1):  # first step is warm-up
        if i == 1:
            sync()
            t0 = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    sync()
    train_ips = steps * batch / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            model(x)
        sync()
    infer_ips = steps * batch / (time.perf_counter() - t0)
    return train_ips, infer_ips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="auto")
    a = ap.parse_args()
    dev = resolve_device(a.device)
    rows = []
    for name, make in (
        ("MultiResUNet U=32 (seed)", lambda: MultiResUNet(base_filters=32)),
        ("MultiResUNet U=8 (lab)", lambda: MultiResUNet(base_filters=8)),
        ("U-Net 32-512", lambda: UNet2D(base_filters=32)),
        ("U-Net 8-128 (lab)", lambda: UNet2D(base_filters=8)),
    ):
        m = make()
        tr, inf = bench(m, a.size, a.batch, a.steps, dev)
        rows.append({"model": name, "params": sum(p.numel() for p in m.parameters()), "device": dev.type,
                     "threads": torch.get_num_threads(), "size": a.size,
                     "train img/s": round(tr, 2), "inference img/s": round(inf, 2)})
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
