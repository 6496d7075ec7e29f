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
    "box_nlr_pooled",
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


def _prepare(curves: Any, aif: Any, dt: float, dtype: Any = np.float64) -> tuple[np.ndarray, np.ndarray, tuple]:
    c = np.asarray(curves.detach().cpu() if isinstance(curves, torch.Tensor) else curves, dtype=dtype)
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


def _shift_table(mtts: np.ndarray, delays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shifts ``tau`` needed by the box basis and, per grid point ``(i, j)``, the indices of ``d_j`` and ``d_j + M_i``.

    The box basis is ``A(t - d) - A(t - d - MTT)``; both terms are the running AIF integral shifted by
    one of a small set of ``tau`` (73 values for the default grid instead of 1125 grid points).
    """
    M, Dg = np.meshgrid(mtts, delays, indexing="ij")
    taus, inv = np.unique(np.round(np.concatenate([Dg.ravel(), (Dg + M).ravel()]), 9), return_inverse=True)
    G = M.size
    return taus, inv[:G].reshape(M.shape), inv[G:].reshape(M.shape)


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
    search: str = "coarse-to-fine",
    coarse: int = 2,
    rho: float = RHO,
    k_h: float = K_H,
    device: Any = "cpu",
    chunk: int = 4096,
) -> PerfusionEstimate:
    """Bennink's box-shaped nonlinear regression, vectorised.

    The impulse response is a box of height CBF from ``delay`` to ``delay + MTT``, so the
    tissue curve is ``s * [A(t - d) - A(t - d - MTT)]`` with ``A`` the running integral of the
    AIF and ``s = (rho / k_H) CBF``. For fixed ``(MTT, d)`` the least-squares ``s`` is
    ``<b, C> / <b, b>`` (constrained to ``s >= 0``) and the error falls by ``<b, C>^2 / <b, b>``.
    Because ``<b, C> = S(d) - S(d + MTT)`` with ``S(tau) = <A(. - tau), C>``, one matrix
    product with the few distinct shifted integrals (73 for the default grid) gives the
    projections on every grid point. The search over ``(MTT, d)`` is either exhaustive
    (``search="full"``) or ``"coarse-to-fine"``: every ``coarse``-th grid point first, then
    the full-resolution points around the coarse winner. A separable parabolic refinement of
    the squared error around the best grid point follows, re-evaluated exactly (kept only if
    it lowers the error). Arithmetic is float32.

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
    search : {"coarse-to-fine", "full"}
        Grid search strategy (see above).
    coarse : int
        Stride of the coarse stage, grid points (>= 1; 1 equals ``"full"``).
    device : str or torch.device
    chunk : int
        Voxels per batch (memory ``~ chunk * grid points * 4`` bytes).

    Returns
    -------
    PerfusionEstimate
        With ``tmax = delay + MTT / 2`` (centre of the box, the convention of Bennink's group
        and of truncated-SVD residues) and ``delay``.
    """
    c, a, lead = _prepare(curves, aif, dt, dtype=np.float32)
    if mtt_range[0] <= 0 or mtt_range[1] <= mtt_range[0] or delay_range[1] < delay_range[0] or step <= 0:
        raise ValueError("need 0 < mtt_range[0] < mtt_range[1], delay_range[0] <= delay_range[1], step > 0")
    if search not in ("coarse-to-fine", "full"):
        raise ValueError(f"search must be 'coarse-to-fine' or 'full', got {search!r}")
    if int(coarse) < 1:
        raise ValueError(f"coarse must be a positive stride, got {coarse}")
    coarse = 1 if search == "full" else int(coarse)
    T = a.size
    # the 3-tap band-limiting filter of the curves is linear, c_s = c @ K: folded into the basis below
    K = _smooth3(np.eye(T)) if smooth else np.eye(T)
    if smooth:
        a = _smooth3(a)
    t = np.arange(T) * dt
    mtts = np.arange(mtt_range[0], mtt_range[1] + 1e-9, step)
    delays = np.arange(delay_range[0], delay_range[1] + 1e-9, step)
    nM, nD = mtts.size, delays.size
    taus, i_d, i_dm = _shift_table(mtts, delays)
    Ash = _cum_integral(a, dt, t[None, :] - taus[:, None])  # (K, T)
    bb = np.einsum("ijt,ijt->ij", Ash[i_d] - Ash[i_dm], Ash[i_d] - Ash[i_dm])  # (nM, nD), voxel-independent
    dev = _device(device)
    f32 = dict(dtype=torch.float32, device=dev)
    i_d_t = torch.as_tensor(i_d.ravel(), dtype=torch.long, device=dev)
    i_dm_t = torch.as_tensor(i_dm.ravel(), dtype=torch.long, device=dev)
    bbt = torch.as_tensor(np.maximum(bb, 1e-12).ravel(), **f32)
    ci_idx = np.arange(0, nM, coarse)
    cj_idx = np.arange(0, nD, coarse)
    cg_np = (ci_idx[:, None] * nD + cj_idx[None, :]).ravel()
    offs = np.arange(-(coarse - 1), coarse)
    oi_t = torch.as_tensor(np.repeat(offs, offs.size), dtype=torch.long, device=dev)
    oj_t = torch.as_tensor(np.tile(offs, offs.size), dtype=torch.long, device=dev)
    V = c.shape[0]
    mtt = np.empty(V, np.float32)
    dl = np.empty(V, np.float32)
    scale = np.empty(V, np.float32)
    mtts_t = torch.as_tensor(mtts, **f32)
    delays_t = torch.as_tensor(delays, **f32)

    def vertex(s0, sm, sp):
        den = sm - 2 * s0 + sp
        off = torch.where(den > 0, 0.5 * (sm - sp) / torch.where(den > 0, den, torch.ones_like(den)),
                          torch.zeros_like(den))
        return off.clamp(-0.5, 0.5)

    # exact projections at sub-grid shifts: A(t_i - x) = A[i - n] + F a[i - n] + F^2 h[i - n] with
    # n = ceil(x / dt), F = n dt - x and h the half slope, so <A(. - x), C> needs three
    # correlations at integer frame shifts n (one more matrix product)
    n_max = min(T, int(np.ceil((delay_range[1] + mtt_range[1] + step) / dt)) + 1)
    half = np.append(np.diff(a), 0.0) / (2.0 * dt)
    A_cum = np.concatenate([[0.0], np.cumsum(0.5 * (a[1:] + a[:-1]) * dt)])
    tab = np.zeros((T, 3, n_max + 1))
    for n in range(n_max + 1):
        for r, seq in enumerate((A_cum, a, half)):
            tab[n:, r, n] = seq[: T - n]
    # one matrix product per chunk: shifted integrals (K), the coarse grid's normalised basis, the refinement table
    Bc = (Ash[i_d] - Ash[i_dm]).reshape(-1, T)[cg_np] / np.sqrt(np.maximum(bb.ravel(), 1e-12))[cg_np, None]
    W = torch.as_tensor(K @ np.concatenate([Ash.T, Bc.T, tab.reshape(T, -1)], axis=1), **f32)
    nK, nC = Ash.shape[0], Bc.shape[0]
    # <b, b> is voxel-independent: exact on a grid 4x finer than the search (from the Gram matrix of
    # the shifted AIF integrals), interpolated bilinearly at the refined point
    h = step / 4
    off_m = int(np.ceil(mtt_range[0] / h - 1e-9))
    fm = (off_m + np.arange(int(np.floor((mtt_range[1] - off_m * h) / h + 1e-9)) + 1)) * h
    fd = delay_range[0] + h * np.arange(int(np.floor((delay_range[1] - delay_range[0]) / h + 1e-9)) + 1)
    ftau = delay_range[0] + h * np.arange(fd.size + off_m + fm.size)
    Gs = _cum_integral(a, dt, t[None, :] - ftau[:, None])
    gram = Gs @ Gs.T
    jd = np.arange(fd.size)[None, :]
    jm = jd + off_m + np.arange(fm.size)[:, None]
    bb_f = gram[jd, jd] - 2 * gram[jd, jm] + gram[jm, jm]
    bb_ft = torch.as_tensor(bb_f, **f32)
    def bb_at(m: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        u = ((m - fm[0]) / h).clamp(0, fm.size - 1.001)
        w = ((d - fd[0]) / h).clamp(0, fd.size - 1.001)
        i, j = u.long(), w.long()
        fu, fw = u - i, w - j
        return ((1 - fu) * (1 - fw) * bb_ft[i, j] + fu * (1 - fw) * bb_ft[i + 1, j]
                + (1 - fu) * fw * bb_ft[i, j + 1] + fu * fw * bb_ft[i + 1, j + 1])

    for i0 in range(0, V, chunk):
        ct = torch.as_tensor(c[i0 : i0 + chunk], **f32)
        Z = ct @ W
        S = Z[:, :nK]  # (v, K) correlations of the smoothed curves with the shifted AIF integrals
        S3 = Z[:, nK + nC :].reshape(-1, 3, n_max + 1)

        def proj(g, S=S):  # <b, C> and <b, b> at flat grid indices g: (n,) shared or (v, n) per voxel
            if g.ndim == 1:
                return S.index_select(1, i_d_t[g]) - S.index_select(1, i_dm_t[g]), bbt[g][None, :]
            return S.gather(1, i_d_t[g]) - S.gather(1, i_dm_t[g]), bbt[g]

        best = Z[:, nK : nK + nC].argmax(dim=1)  # max of <b, C> / |b|: the largest drop of the SSE
        gi = torch.as_tensor(ci_idx, device=dev)[best // cj_idx.size]
        gj = torch.as_tensor(cj_idx, device=dev)[best % cj_idx.size]
        if coarse > 1:  # full-resolution neighbourhood of the coarse winner
            ii = (gi[:, None] + oi_t[None, :]).clamp(0, nM - 1)
            jj = (gj[:, None] + oj_t[None, :]).clamp(0, nD - 1)
            p, q = proj(ii * nD + jj)
            k = (p.clamp(min=0).square() / q).argmax(dim=1, keepdim=True)
            gi, gj = ii.gather(1, k)[:, 0], jj.gather(1, k)[:, 0]
        g = gi * nD + gj
        p, q = proj(g[:, None])
        s_c = (p[:, 0] / q[:, 0]).clamp_min(0)
        m_c, d_c = mtts_t[gi], delays_t[gj]
        if refine:
            def sse_at(ii, jj):  # SSE minus |C|^2 at grid point (ii, jj) per voxel (|C|^2 cancels below)
                pp, qq = proj((ii.clamp(0, nM - 1) * nD + jj.clamp(0, nD - 1))[:, None])
                return -pp[:, 0].clamp(min=0).square() / qq[:, 0]

            s0 = sse_at(gi, gj)
            om = vertex(s0, sse_at(gi - 1, gj), sse_at(gi + 1, gj))
            od = vertex(s0, sse_at(gi, gj - 1), sse_at(gi, gj + 1))
            om = torch.where((gi > 0) & (gi < nM - 1), om, torch.zeros_like(om))
            od = torch.where((gj > 0) & (gj < nD - 1), od, torch.zeros_like(od))
            m_r, d_r = m_c + om * step, d_c + od * step

            def corr(x, S3=S3):  # <A(. - x), C> per voxel, exact for the piecewise-linear AIF
                n = torch.ceil(x / dt - 1e-6).clamp(0, n_max).long()
                F = (n * dt - x).clamp_min(0)[:, None]
                sv = S3.gather(2, n[:, None, None].expand(-1, 3, 1))[:, :, 0]
                return sv[:, 0] + F[:, 0] * (sv[:, 1] + F[:, 0] * sv[:, 2])

            p_r = corr(d_r) - corr(d_r + m_r)
            q_r = bb_at(m_r, d_r).clamp_min(1e-12)
            s_r = (p_r / q_r).clamp_min(0)
            better = -p_r.clamp(min=0).square() / q_r < s0  # s0: the same at the best grid point
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


def box_nlr_pooled(curves, aif, dt: float, *, mask: np.ndarray, sigma_px: float = 1.0,
                   **kwargs: Any) -> PerfusionEstimate:
    """Spatially regularised box-NLR: each curve is replaced by the Gaussian-weighted mean of the curves of
    its neighbours inside ``mask`` (normalised convolution), then fitted by :func:`box_nlr`.

    Pooling trades noise for resolution: at clinical noise the per-voxel fit is noise-limited,
    while a lesion smaller than about ``2 sigma_px`` pixels is blurred into its surroundings.

    Parameters
    ----------
    curves : array_like, shape (..., H, W, T)
        Tissue enhancement, HU.
    aif : array_like, shape (T,)
    dt : float
        Frame interval, s.
    mask : ndarray of bool, shape (..., H, W)
        Tissue to pool over and to fit (maps are 0 elsewhere).
    sigma_px : float
        Gaussian SD of the neighbourhood, pixels (0: per-voxel fit).
    **kwargs
        Passed to :func:`box_nlr`.
    """
    from scipy import ndimage

    c = np.asarray(curves, dtype=np.float32)
    m = np.asarray(mask, bool)
    if c.ndim < 3 or c.shape[:-1] != m.shape:
        raise ValueError(f"curves must be (..., H, W, T) with mask (..., H, W); got {c.shape} and {m.shape}")
    if sigma_px < 0:
        raise ValueError(f"sigma_px must be >= 0, got {sigma_px}")
    if sigma_px > 0:
        sig = (0,) * (c.ndim - 3) + (sigma_px, sigma_px, 0)
        num = ndimage.gaussian_filter(c * m[..., None], sig, mode="constant")
        den = ndimage.gaussian_filter(m.astype(np.float32), sig[:-1], mode="constant")
        c = num / np.maximum(den, 1e-3)[..., None]
    e = box_nlr(c[m], aif, dt, **kwargs)

    def full(v: np.ndarray) -> np.ndarray:
        out = np.zeros(m.shape, np.float32)
        out[m] = v
        return out

    return PerfusionEstimate(full(e.cbf), full(e.cbv), full(e.mtt), full(e.tmax), full(e.delay), "box-NLR pooled")


METHODS = {"sSVD": ssvd, "bcSVD": bcsvd, "oSVD": osvd, "Tikhonov": tikhonov, "box-NLR": box_nlr}


def deconvolve(curves, aif, dt: float, method: str = "box-NLR", **kwargs: Any) -> PerfusionEstimate:
    """Dispatch to one of :data:`METHODS` by name.

    ``method`` is ``"sSVD"``, ``"bcSVD"``, ``"oSVD"``, ``"Tikhonov"`` or ``"box-NLR"``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {sorted(METHODS)}")
    return METHODS[method](curves, aif, dt, **kwargs)
