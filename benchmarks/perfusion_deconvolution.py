"""Throughput of the vectorised deconvolution methods and of U-Net inference (perfusion study).

Prints voxels per second for every method of :mod:`lib.perfusion.deconvolution` on phantom
slices (CPU, and CUDA when available), beside a naive per-voxel Nelder-Mead box-NLR (the
usual implementation, e.g. PyPeT's) on a subset, and the U-Net's inference time per slice.

Usage::

    python benchmarks/perfusion_deconvolution.py [--size 128] [--slices 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from scipy.optimize import minimize

from lib.perfusion import deconvolution as D
from lib.perfusion import phantom as P
from lib.perfusion.unet import UNet


def naive_box_nlr(curves: np.ndarray, aif: np.ndarray, dt: float) -> np.ndarray:
    """Per-voxel Nelder-Mead on (CBF scale, MTT, delay), from x0 = (0.01, 4 s, 1 s)."""
    t = np.arange(aif.size) * dt
    out = np.empty(curves.shape[0])
    for v, c in enumerate(curves):
        def sse(p, c=c):
            b = D._box_basis(aif, dt, t, np.array([max(p[1], 0.1)]), np.array([max(p[2], 0.0)]))
            return float(np.sum((c - p[0] * b) ** 2))

        out[v] = minimize(sse, x0=[0.01, 4.0, 1.0], method="Nelder-Mead", options={"maxiter": 400}).x[0]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--slices", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--naive-voxels", type=int, default=200)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ph = P.make_phantom(1, args.slices, size=args.size, rng=np.random.default_rng(0), motion_px=0, motion_deg=0)
    aif = ph.aif[0]
    n0 = D.bolus_arrival(aif)
    C = D.enhancement(ph.frames, n0, axis=1).transpose(0, 2, 3, 1)
    nvox = C[..., 0].size
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{args.slices} slices of {args.size}x{args.size} = {nvox} voxels, 89 frames, {args.threads} CPU threads")
    print(f"{'method':12s} {'device':6s} {'seconds':>8s} {'voxels/s':>12s}")
    for dev in devices:
        for m in D.METHODS:
            D.deconvolve(C[:1, :8, :8], aif, 0.5, m, device=dev)  # warm-up
            t = time.perf_counter()
            D.deconvolve(C, aif, 0.5, m, device=dev)
            if dev == "cuda":
                torch.cuda.synchronize()
            el = time.perf_counter() - t
            print(f"{m:12s} {dev:6s} {el:8.2f} {nvox / el:12.0f}")
    sub = C.reshape(-1, 89)[ph.brain.reshape(-1)][: args.naive_voxels]
    t = time.perf_counter()
    naive_box_nlr(sub, aif, 0.5)
    el = time.perf_counter() - t
    print(f"{'naive NM':12s} {'cpu':6s} {el:8.2f} {sub.shape[0] / el:12.0f}"
          f"   (per-voxel Nelder-Mead, {sub.shape[0]} voxels)")
    print()
    print(f"{'U-Net':24s} {'device':6s} {'ms/slice':>9s}")
    for dev in devices:
        for width, size in [(1.0, 256), (0.125, 512), (0.125, 64)]:
            net = UNet(89, 1, width=width).to(dev).eval()
            x = torch.randn(2, 89, size, size, device=dev)
            with torch.no_grad():
                net(x)
                t = time.perf_counter()
                for _ in range(2):
                    net(x)
                if dev == "cuda":
                    torch.cuda.synchronize()
            print(f"width {width:<5g} {size:>4d}x{size:<4d}      {dev:6s} {(time.perf_counter() - t) / 4 * 1000:9.1f}")


if __name__ == "__main__":
    main()
