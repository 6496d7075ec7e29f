"""Model-based CT-perfusion deconvolution, vectorised over voxels (PyTorch, CPU or GPU).

All solvers take baseline-subtracted tissue curves ``C`` (HU above baseline) of shape
``(..., T)``, an arterial input function ``aif`` (HU above baseline) of shape ``(T,)`` and
the frame interval ``dt`` (s), and return a :class:`PerfusionEstimate` with maps of shape
``(...)`` in clinical units:

* CBF in ml/100 g/min, CBV in ml/100 g, MTT, Tmax and delay in s;
* the discretised model is ``C = (rho / k_H) * dt * A @ k`` with ``A`` the AIF convolution
  matrix and ``k(t) = CBF * R(t)`` (1/s), so ``CBF = max(k) * (k_H / rho) * 6000``;
* SVD-type methods take ``CBV = (k_H / rho) * 100 * sum(C) / sum(aif)`` (area ratio) and
  ``MTT = 60 CBV / CBF`` (central volume theorem); ``Tmax = argmax(k) * dt``.

Methods
-------
:func:`ssvd`      standard truncated SVD of the lower-triangular Toeplitz matrix (Østergaard 1996).
:func:`bcsvd`     block-circulant SVD (zero-padded to ``2T``, Simpson weights; Wu et al. 2003).
:func:`osvd`      block-circulant SVD with per-voxel threshold chosen by the oscillation index.
:func:`tikhonov`  block-circulant Tikhonov filter factors ``s / (s^2 + lambda^2)``.
:func:`box_nlr`   Bennink's box-shaped impulse response, fitted by a vectorised grid search
                  (the model is linear in CBF for fixed MTT and delay) plus parabolic refinement.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lib.core.repro import resolve_device
from lib.perfusion.physics import CBF_UNIT, K_H, RHO

__all__ = [
    "PerfusionEstimate",
    "METHODS",
    "enhancement",
    "bolus_arrival",
    "area_cbv",
    "time_to_peak",
    "ssvd",
    "bcsvd",
    "osvd",
    "tikhonov",
    "box_nlr",
    "deconvolve",
]


@dataclass
class PerfusionEstimate:
    """Perfusion maps from one method; every array has the leading shape of the input curves.

    Attributes
    ----------
    cbf : ndarray   ml/100 g/min
    cbv : ndarray   ml/100 g
    mtt : ndarray   s
    tmax : ndarray  s (time of the maximum of the impulse response, from the AIF arrival)
    delay : ndarray or None   s (box-NLR only)
    method : str
    """

    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    tmax: np.ndarray
    delay: np.ndarray | None
    method: str

    def as_dict(self) -> dict[str, np.ndarray]:
        d = {"cbf": self.cbf, "cbv": self.cbv, "mtt": self.mtt, "tmax": self.tmax}
        if self.delay is not None:
            d["delay"] = self.delay
        return d


def _device(device: Any) -> torch.device:
    return resolve_device(device)


def _prepare(curves: Any, aif: Any, dt: float) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    c = np.asarray(curves.detach().cpu() if isinstance(curves, torch.Tensor) else curves, dtype=np.float64)
    a = np.asarray(aif.detach().cpu() if isinstance(aif, torch.Tensor) else aif, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"aif must be 1-D (T,), got shape {a.shape}")
    if c.ndim < 1 or c.shape[-1] != a.size:
        raise ValueError(
            f"curves must have shape (..., T) with T = len(aif) = {a.size}; got {c.shape}. "
            "Put time on the last axis, e.g. frames.transpose(1, 2, 0) for (T, H, W) input"
        )
    if not np.isfinite(dt) or dt <= 0:
        raise ValueError(f"dt must be a positive frame interval in seconds, got {dt}")
    if not np.all(np.isfinite(a)) or a.sum() <= 0:
        raise ValueError("aif must be finite with a positive area; subtract the baseline, not the peak")
    if not np.all(np.isfinite(c)):
        raise ValueError("curves contain NaN or inf; mask such voxels before deconvolution")
    lead = c.shape[:-1]
    return c.reshape(-1, a.size), a, lead


def enhancement(frames: np.ndarray, n_baseline: int, *, axis: int = 0) -> np.ndarray:
    """Subtract the pre-contrast baseline (mean of the first ``n_baseline`` frames along ``axis``)."""
    if n_baseline < 1:
        raise ValueError(f"n_baseline must be >= 1, got {n_baseline}")
    x = np.asarray(frames, dtype=np.float32)
    base = np.take(x, np.arange(n_baseline), axis=axis).mean(axis=axis, keepdims=True)
    return x - base


def bolus_arrival(aif: np.ndarray, *, fraction: float = 0.1) -> int:
    """Index of the last frame before the AIF first exceeds ``fraction`` of its peak (>= 1).

    Use it as ``n_baseline`` for :func:`enhancement`.
    """
    a = np.asarray(aif, dtype=float)
    a = a - a[0]
    i = int(np.argmax(a > fraction * a.max()))
    return max(i - 1, 1)


def area_cbv(curves: Any, aif: Any, dt: float, *, rho: float = RHO, k_h: float = K_H) -> np.ndarray:
    """CBV (ml/100 g) as ``(k_H / rho) * 100 * area(C) / area(aif)`` (trapezoid rule)."""
    c, a, lead = _prepare(curves, aif, dt)
    return ((k_h / rho) * 100.0 * np.trapezoid(c, dx=dt, axis=-1) / np.trapezoid(a, dx=dt)).reshape(lead)


def _smooth3(x: np.ndarray) -> np.ndarray:
    """3-tap [1/4, 1/2, 1/4] filter along the last axis with nearest-neighbour edges."""
    p = np.concatenate([x[..., :1], x, x[..., -1:]], axis=-1)
    return 0.25 * p[..., :-2] + 0.5 * p[..., 1:-1] + 0.25 * p[..., 2:]


def time_to_peak(curves: Any, dt: float, *, smooth: bool = True) -> np.ndarray:
    """Model-free time to peak (s from the first frame) with parabolic sub-frame refinement.

    Parameters
    ----------
    curves : array_like, shape (..., T)
    dt : float
        Frame interval, s.
    smooth : bool
        Apply the 3-tap band-limiting filter first.
    """
    c = np.asarray(curves, dtype=np.float64)
    if smooth:
        c = _smooth3(c)
    T = c.shape[-1]
    i = np.argmax(c, axis=-1)
    im = np.clip(i - 1, 0, T - 1)
    ip = np.clip(i + 1, 0, T - 1)
    y0 = np.take_along_axis(c, i[..., None], -1)[..., 0]
    ym = np.take_along_axis(c, im[..., None], -1)[..., 0]
    yp = np.take_along_axis(c, ip[..., None], -1)[..., 0]
    den = ym - 2 * y0 + yp
    off = np.where((i > 0) & (i < T - 1) & (den < 0), 0.5 * (ym - yp) / np.where(den < 0, den, -1.0), 0.0)
    return (i + np.clip(off, -0.5, 0.5)) * dt


def _toeplitz(aif: np.ndarray, dt: float) -> np.ndarray:
    T = aif.size
    idx = np.arange(T)[:, None] - np.arange(T)[None, :]
    return np.where(idx >= 0, aif[np.clip(idx, 0, None)], 0.0) * dt


def _circulant(aif: np.ndarray, dt: float) -> np.ndarray:
    """Block-circulant AIF matrix of size 2T with Simpson weights (Wu et al. 2003)."""
    T = aif.size
    N = 2 * T
    col = np.zeros(N)
    col[0] = aif[0]
    col[1 : T - 1] = (aif[0 : T - 2] + 4 * aif[1 : T - 1] + aif[2:T]) / 6.0
    col[T - 1] = (aif[T - 2] + 4 * aif[T - 1]) / 6.0
    col[T] = aif[T - 1] / 6.0
    idx = (np.arange(N)[:, None] - np.arange(N)[None, :]) % N
    return col[idx] * dt


def _finish(k: torch.Tensor, c: np.ndarray, a: np.ndarray, dt: float, lead, method, rho, k_h) -> PerfusionEstimate:
    kmax, imax = k.max(dim=-1)
    cbf = (kmax.clamp_min(0) * (k_h / rho) * CBF_UNIT).cpu().numpy()
    cbv = (k_h / rho) * 100.0 * np.trapezoid(c, dx=dt, axis=-1) / np.trapezoid(a, dx=dt)
    cbv = np.clip(cbv, 0, None)
    mtt = np.where(cbf > 1e-6, 60.0 * cbv / np.maximum(cbf, 1e-6), 0.0)
    tmax = imax.cpu().numpy() * dt
    return PerfusionEstimate(
        cbf.reshape(lead), cbv.reshape(lead), mtt.reshape(lead), tmax.reshape(lead), None, method
    )


def _svd_filter(M: np.ndarray, factors) -> np.ndarray:
    U, s, Vt = np.linalg.svd(M)
    return (Vt.T * factors(s)) @ U.T


def _apply(P: np.ndarray, c: np.ndarray, dev: torch.device, pad_to: int | None = None) -> torch.Tensor:
    Pt = torch.as_tensor(P, dtype=torch.float32, device=dev)
    ct = torch.as_tensor(c, dtype=torch.float32, device=dev)
    if pad_to is not None and pad_to > ct.shape[-1]:
        ct = torch.nn.functional.pad(ct, (0, pad_to - ct.shape[-1]))
    return ct @ Pt.T


def ssvd(curves, aif, dt: float, *, threshold: float = 0.2, rho: float = RHO, k_h: float = K_H,
         device: Any = "cpu") -> PerfusionEstimate:
    """Standard truncated SVD: singular values below ``threshold * s_max`` are discarded.

    Parameters
    ----------
    curves : array_like, shape (..., T)
        Tissue enhancement, HU.
    aif : array_like, shape (T,)
        Arterial enhancement, HU.
    dt : float
        Frame interval, s.
    threshold : float
        Relative truncation P_SVD (Østergaard 1996: 0.2).
    rho, k_h : float
        Tissue density (g/ml) and haematocrit correction.
    device : str or torch.device
    """
    c, a, lead = _prepare(curves, aif, dt)
    P = _svd_filter(_toeplitz(a, dt), lambda s: np.where(s >= threshold * s.max(), 1.0 / s, 0.0))
    k = _apply(P, c, _device(device))
    return _finish(k, c, a, dt, lead, "sSVD", rho, k_h)


def bcsvd(curves, aif, dt: float, *, threshold: float = 0.1, rho: float = RHO, k_h: float = K_H,
          device: Any = "cpu") -> PerfusionEstimate:
    """Block-circulant truncated SVD (delay-insensitive), global threshold ``threshold * s_max``."""
    c, a, lead = _prepare(curves, aif, dt)
    P = _svd_filter(_circulant(a, dt), lambda s: np.where(s >= threshold * s.max(), 1.0 / s, 0.0))
    k = _apply(P, c, _device(device), pad_to=2 * a.size)
    return _finish(k, c, a, dt, lead, "bcSVD", rho, k_h)


def tikhonov(curves, aif, dt: float, *, lam: float = 0.1, rho: float = RHO, k_h: float = K_H,
             device: Any = "cpu") -> PerfusionEstimate:
    """Tikhonov-regularised block-circulant deconvolution with ``lambda = lam * s_max``.

    ``k = argmin ||G k - C||^2 + lambda^2 ||k||^2``, computed with filter factors
    ``s / (s^2 + lambda^2)`` of the SVD of the block-circulant matrix ``G``.
    """
    c, a, lead = _prepare(curves, aif, dt)
    P = _svd_filter(_circulant(a, dt), lambda s: s / (s**2 + (lam * s.max()) ** 2))
    k = _apply(P, c, _device(device), pad_to=2 * a.size)
    return _finish(k, c, a, dt, lead, "Tikhonov", rho, k_h)


def oscillation_index(k: torch.Tensor) -> torch.Tensor:
    """Oscillation index ``(1/N) (1/max k) sum_j |k_j - 2 k_{j-1} + k_{j-2}|`` over the last axis."""
    N = k.shape[-1]
    d2 = torch.diff(k, n=2, dim=-1).abs_().sum(-1)
    return d2 / (N * k.max(-1).values.clamp_min(1e-12))


def osvd(curves, aif, dt: float, *, oi: float = 0.035, thresholds: np.ndarray | None = None,
         rho: float = RHO, k_h: float = K_H, device: Any = "cpu", chunk: int = 8192) -> PerfusionEstimate:
    """Oscillation-index SVD (Wu et al. 2003) on the block-circulant matrix.

    For each voxel the truncation is raised through ``thresholds`` (default 5 %, 10 %, ...,
    95 % of ``s_max``) and the first one whose residue has oscillation index below ``oi``
    is used (the largest threshold if none qualifies).
    """
    c, a, lead = _prepare(curves, aif, dt)
    th = np.arange(0.05, 0.951, 0.05) if thresholds is None else np.sort(np.asarray(thresholds, float))
    if th.size == 0 or np.any((th <= 0) | (th >= 1)):
        raise ValueError("thresholds must be fractions in (0, 1)")
    U, s, Vt = np.linalg.svd(_circulant(a, dt))
    dev = _device(device)
    N = 2 * a.size
    # truncation at P keeps the m(P) largest singular values; the residues are nested partial
    # sums k_m = sum_{i<m} (u_i . c / s_i) v_i, so all thresholds cost one N x N product
    m = np.array([int(np.sum(s >= t * s.max())) for t in th])  # non-increasing in P
    Ut = torch.as_tensor(U / s[None, :], dtype=torch.float32, device=dev)  # (N, N): columns u_i / s_i
    Vtt = torch.as_tensor(Vt, dtype=torch.float32, device=dev)
    order = np.argsort(m, kind="stable")  # ascending number of components
    ks = []
    for i0 in range(0, c.shape[0], chunk):
        ct = torch.as_tensor(c[i0 : i0 + chunk], dtype=torch.float32, device=dev)
        ct = torch.nn.functional.pad(ct, (0, N - ct.shape[-1]))
        z = ct @ Ut  # (V, N) coefficients
        kall = torch.empty((ct.shape[0], th.size, N), dtype=torch.float32, device=dev)
        acc = torch.zeros((ct.shape[0], N), dtype=torch.float32, device=dev)
        done = 0
        for j in order:
            if m[j] > done:
                acc = acc + z[:, done : m[j]] @ Vtt[done : m[j]]
                done = int(m[j])
            kall[:, j] = acc
        ok = oscillation_index(kall) < oi
        ok[:, -1] = True
        first = ok.float().argmax(dim=1)  # first (lowest) threshold meeting the OI target
        ks.append(kall[torch.arange(kall.shape[0], device=dev), first])
    k = torch.cat(ks) if ks else torch.zeros((0, N), device=dev)
    return _finish(k, c, a, dt, lead, "oSVD", rho, k_h)


def _cum_integral(aif: np.ndarray, dt: float, tau: np.ndarray) -> np.ndarray:
    """Exact integral from 0 to ``tau`` of the piecewise-linear interpolant of ``aif`` (0 for tau < 0)."""
    T = aif.size
    A = np.concatenate([[0.0], np.cumsum(0.5 * (aif[1:] + aif[:-1]) * dt)])
    u = np.clip(tau / dt, 0.0, T - 1)
    k = np.clip(np.floor(u).astype(int), 0, T - 2)
    f = (u - k) * dt
    slope = (aif[k + 1] - aif[k]) / dt
    return A[k] + aif[k] * f + 0.5 * slope * f**2


def _box_basis(aif: np.ndarray, dt: float, t: np.ndarray, mtt: np.ndarray, delay: np.ndarray) -> np.ndarray:
    """``A(t - d) - A(t - d - MTT)``, broadcasting ``mtt``/``delay`` of shape (..., 1) against ``t`` (T,)."""
    return _cum_integral(aif, dt, t - delay) - _cum_integral(aif, dt, t - delay - mtt)


def box_nlr(
    curves,
    aif,
    dt: float,
    *,
    mtt_range: tuple[float, float] = (2.0, 24.0),
    delay_range: tuple[float, float] = (0.0, 12.0),
    step: float = 0.5,
    smooth: bool = True,
    refine: bool = True,
    rho: float = RHO,
    k_h: float = K_H,
    device: Any = "cpu",
    chunk: int = 8192,
) -> PerfusionEstimate:
    """Bennink's box-shaped nonlinear regression, vectorised.

    The impulse response is a box of height CBF from ``delay`` to ``delay + MTT``, so the
    tissue curve is ``s * [A(t - d) - A(t - d - MTT)]`` with ``A`` the running integral of the
    AIF and ``s = (rho / k_H) CBF``. For fixed ``(MTT, d)`` the least-squares ``s`` is
    ``<b, C> / <b, b>`` (constrained to ``s >= 0``), so all voxels are fitted at once by a
    grid search over ``(MTT, d)`` (one matrix product), followed by a separable parabolic
    refinement of the sum of squared errors around the best grid point and an exact
    re-evaluation there (kept only if it lowers the error).

    Parameters
    ----------
    curves : array_like, shape (..., T)
        Tissue enhancement, HU.
    aif : array_like, shape (T,)
        Arterial enhancement, HU (partial-volume corrected).
    dt : float
        Frame interval, s.
    mtt_range, delay_range : (float, float)
        Search ranges, s. MTT below 2 s is not physiological in brain tissue; allowing it
        lets noise buy very high CBF with very short boxes.
    step : float
        Grid step, s.
    smooth : bool
        Band-limit AIF and curves with the 3-tap [1/4, 1/2, 1/4] filter (Bennink).
    refine : bool
        Parabolic sub-grid refinement.

    Returns
    -------
    PerfusionEstimate
        With ``tmax = delay + MTT / 2`` (centre of the box, the convention of Bennink's group
        and of truncated-SVD residues) and ``delay``.
    """
    c, a, lead = _prepare(curves, aif, dt)
    if mtt_range[0] <= 0 or mtt_range[1] <= mtt_range[0] or delay_range[1] < delay_range[0] or step <= 0:
        raise ValueError("need 0 < mtt_range[0] < mtt_range[1], delay_range[0] <= delay_range[1], step > 0")
    if smooth:
        c = _smooth3(c)
        a = _smooth3(a)
    T = a.size
    t = np.arange(T) * dt
    mtts = np.arange(mtt_range[0], mtt_range[1] + 1e-9, step)
    delays = np.arange(delay_range[0], delay_range[1] + 1e-9, step)
    M, D = np.meshgrid(mtts, delays, indexing="ij")  # (nM, nD)
    B = _box_basis(a, dt, t, M.reshape(-1, 1), D.reshape(-1, 1))  # (G, T)
    bb = np.einsum("gt,gt->g", B, B)
    dev = _device(device)
    Bt = torch.as_tensor(B, dtype=torch.float32, device=dev)
    bbt = torch.as_tensor(np.maximum(bb, 1e-12), dtype=torch.float32, device=dev)
    nM, nD = mtts.size, delays.size
    V = c.shape[0]
    mtt = np.empty(V)
    dl = np.empty(V)
    scale = np.empty(V)
    a_t = torch.as_tensor(a, dtype=torch.float32, device=dev)
    A_t = torch.as_tensor(np.concatenate([[0.0], np.cumsum(0.5 * (a[1:] + a[:-1]) * dt)]), dtype=torch.float32,
                          device=dev)
    t_t = torch.as_tensor(t, dtype=torch.float32, device=dev)
    mtts_t = torch.as_tensor(mtts, dtype=torch.float32, device=dev)
    delays_t = torch.as_tensor(delays, dtype=torch.float32, device=dev)

    def cum_int(tau: torch.Tensor) -> torch.Tensor:  # torch version of _cum_integral
        u = (tau / dt).clamp(0.0, T - 1)
        k = u.floor().long().clamp(0, T - 2)
        f = (u - k) * dt
        ak = a_t[k]
        return A_t[k] + ak * f + 0.5 * (a_t[k + 1] - ak) / dt * f * f

    def vertex(s0, sm, sp):
        den = sm - 2 * s0 + sp
        off = torch.where(den > 0, 0.5 * (sm - sp) / torch.where(den > 0, den, torch.ones_like(den)),
                          torch.zeros_like(den))
        return off.clamp(-0.5, 0.5)

    for i0 in range(0, V, chunk):
        ct = torch.as_tensor(c[i0 : i0 + chunk], dtype=torch.float32, device=dev)
        P = ct @ Bt.T  # (V, G)
        score = P.clamp_(min=0).square_().div_(bbt)  # reduction of the SSE, in place
        g = score.argmax(dim=1)
        gi, gj = g // nD, g % nD
        m_c, d_c = mtts_t[gi], delays_t[gj]
        b = Bt[g]
        s_c = ((b * ct).sum(1) / bbt[g]).clamp_min(0)
        if refine:
            cc = (ct * ct).sum(1)
            v = torch.arange(ct.shape[0], device=dev)

            def sse_at(ii, jj, cc=cc, score=score, v=v):  # SSE at grid point (ii, jj), gathered per voxel
                return cc - score[v, ii.clamp(0, nM - 1) * nD + jj.clamp(0, nD - 1)]

            s0 = sse_at(gi, gj)
            om = vertex(s0, sse_at(gi - 1, gj), sse_at(gi + 1, gj))
            od = vertex(s0, sse_at(gi, gj - 1), sse_at(gi, gj + 1))
            om = torch.where((gi > 0) & (gi < nM - 1), om, torch.zeros_like(om))
            od = torch.where((gj > 0) & (gj < nD - 1), od, torch.zeros_like(od))
            m_r, d_r = m_c + om * step, d_c + od * step
            tt = t_t[None, :]
            b_r = cum_int(tt - d_r[:, None]) - cum_int(tt - d_r[:, None] - m_r[:, None])
            s_r = ((b_r * ct).sum(1) / (b_r * b_r).sum(1).clamp_min(1e-12)).clamp_min(0)
            sse_r = ((ct - s_r[:, None] * b_r) ** 2).sum(1)
            sse_g = ((ct - s_c[:, None] * b) ** 2).sum(1)
            better = sse_r < sse_g
            m_c = torch.where(better, m_r, m_c)
            d_c = torch.where(better, d_r, d_c)
            s_c = torch.where(better, s_r, s_c)
        sl = slice(i0, i0 + ct.shape[0])
        mtt[sl], dl[sl], scale[sl] = m_c.cpu().numpy(), d_c.cpu().numpy(), s_c.cpu().numpy()
    cbf = scale * (k_h / rho) * CBF_UNIT
    cbv = cbf * mtt / 60.0
    tmax = dl + mtt / 2.0
    rs = lambda x: x.reshape(lead)  # noqa: E731
    return PerfusionEstimate(rs(cbf), rs(cbv), rs(mtt), rs(tmax), rs(dl), "box-NLR")


METHODS = {"sSVD": ssvd, "bcSVD": bcsvd, "oSVD": osvd, "Tikhonov": tikhonov, "box-NLR": box_nlr}


def deconvolve(curves, aif, dt: float, method: str = "box-NLR", **kwargs: Any) -> PerfusionEstimate:
    """Dispatch to one of :data:`METHODS` by name.

    ``method`` is ``"sSVD"``, ``"bcSVD"``, ``"oSVD"``, ``"Tikhonov"`` or ``"box-NLR"``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method](curves, aif, dt, **kwargs)
