"""Throughput and accuracy of the vectorised deconvolution methods and of U-Net inference (perfusion study).

For every method of :mod:`lib.perfusion.deconvolution` on phantom slices (CPU, and CUDA when
available) it prints voxels per second beside the error against the phantom's truth (median
relative CBF error and CBF MAE in the brain), at T = 50 (the first 50 frames) and T = 89; then box-NLR's
full and coarse-to-fine grid searches; the spatially regularised (neighbourhood-pooled) box-NLR at the
clinical noise level (per-pixel noise 103/sqrt(mAs) HU), with its error inside small lesion cores, where
pooling blurs; a naive per-voxel Nelder-Mead box-NLR on a subset; and the U-Net's inference time.

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


def errors(cbf: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Median relative CBF error and CBF MAE (ml/100 g/min) over ``mask``."""
    d = cbf[mask] - truth[mask]
    return float(np.median(np.abs(d) / truth[mask])), float(np.abs(d).mean())


def timed(fn, dev: str) -> tuple[object, float, float]:
    """Result, wall seconds and CPU seconds (all threads) of ``fn()``."""
    t, c = time.perf_counter(), time.process_time()
    out = fn()
    if dev == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - t, time.process_time() - c


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
    b = ph.brain
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    print(f"{args.slices} slices of {args.size}x{args.size} = {nvox} voxels ({b.sum()} brain), "
          f"{args.threads} CPU threads, CUDA {'present' if 'cuda' in devices else 'absent'}; "
          f"noise {ph.subjects.noise_sigma[0]:.2f} HU per pixel")
    print("voxels/s = all voxels / wall s; per CPU-s = all voxels / CPU s of all threads (a loaded machine's "
          "wall time overstates the cost)")
    print(f"{'method':22s} {'device':6s} {'T':>3s} {'wall s':>7s} {'voxels/s':>10s} {'per CPU-s':>10s} "
          f"{'CBF med rel err':>16s} {'CBF MAE':>8s}")
    variants = [(m, {}) for m in D.METHODS] + [("box-NLR", {"search": "full"})]
    for dev in devices:
        for T in (50, 89):
            Ct, at = np.ascontiguousarray(C[..., :T]), aif[:T]
            for m, kw in variants:
                D.deconvolve(Ct[:1, :8, :8], at, 0.5, m, device=dev, **kw)  # warm-up
                def run(m=m, kw=kw, Ct=Ct, at=at, dev=dev):
                    return D.deconvolve(Ct, at, 0.5, m, device=dev, **kw)

                e, el, cpu = timed(run, dev)
                rel, mae = errors(e.cbf, ph.cbf, b)
                name = m + (f" ({kw['search']})" if kw else "")
                print(f"{name:22s} {dev:6s} {T:3d} {el:7.2f} {nvox / el:10.0f} {nvox / max(cpu, 1e-9):10.0f} "
                      f"{rel:16.3f} {mae:8.2f}")
    # spatially regularised box-NLR at the clinical noise level (noise of a 0.49 mm pixel in every pixel)
    print()
    phc = P.make_phantom(1, args.slices, size=args.size, rng=np.random.default_rng(0), motion_px=0, motion_deg=0,
                         noise_ref_mm=None, lesion_fraction=1.0, residue_shapes=("box",))
    Cc = D.enhancement(phc.frames, D.bolus_arrival(phc.aif[0]), axis=1).transpose(0, 2, 3, 1)
    core = phc.core
    print(f"clinical noise {phc.subjects.noise_sigma[0]:.2f} HU per pixel, box residues (noise, not model error, "
          f"limits the fit); {core.sum()} core pixels")
    print(f"{'box-NLR pooled':22s} {'sigma px':>8s} {'seconds':>8s} {'CBF med rel err':>16s} {'CBF MAE':>8s} "
          f"{'core CBF bias':>14s}")
    for sig in (0.0, 1.0, 1.5, 2.0, 3.0):
        e, el, _ = timed(lambda sig=sig: D.box_nlr_pooled(Cc, phc.aif[0], 0.5, mask=phc.brain, sigma_px=sig), "cpu")
        rel, mae = errors(e.cbf, phc.cbf, phc.brain)
        bias = float((e.cbf[core] - phc.cbf[core]).mean()) if core.any() else float("nan")
        print(f"{'':22s} {sig:8.1f} {el:8.2f} {rel:16.3f} {mae:8.2f} {bias:14.2f}")
    sub = C.reshape(-1, 89)[b.reshape(-1)][: args.naive_voxels]
    t = time.perf_counter()
    naive_box_nlr(sub, aif, 0.5)
    el = time.perf_counter() - t
    print(f"\n{'naive NM':12s} {'cpu':6s} {el:8.2f} {sub.shape[0] / el:12.0f}"
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
