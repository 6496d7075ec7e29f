"""Deconvolution against analytic cases: known residue -> recovered CBF, CBV, MTT, delay."""

import numpy as np
import pytest
import torch

from lib.perfusion import deconvolution as D
from lib.perfusion import phantom as P

DT = 0.5
TF = np.arange(0, 90, 0.1)
IDX = np.arange(0, TF.size, 5)  # 0.5 s sampling, 180 frames (long enough for complete curves)
CBF = np.array([55.0, 25.0, 40.0, 12.0])
MTT = np.array([4.0, 8.0, 6.0, 10.0])
DELAY = np.array([0.0, 2.0, 1.0, 5.0])


def curves(shape, *, disp=1e-6, delay=DELAY):
    aif = P.aif_curve(TF, t0=8.0, recirc_fraction=0.0)
    c, tmax = P.tissue_curves(TF, aif, CBF, MTT, delay, np.full(CBF.size, disp), shape)
    return c[:, IDX], aif[IDX], tmax


def test_box_nlr_recovers_box_parameters_exactly():
    c, a, tmax = curves("box")
    e = D.box_nlr(c, a, DT, smooth=False)
    np.testing.assert_allclose(e.cbf, CBF, rtol=0.03)
    np.testing.assert_allclose(e.mtt, MTT, atol=0.15)
    np.testing.assert_allclose(e.cbv, CBF * MTT / 60, rtol=0.03)
    np.testing.assert_allclose(e.delay, DELAY, atol=0.1)
    np.testing.assert_allclose(e.tmax, DELAY + MTT / 2, atol=0.15)


def test_box_nlr_refinement_beats_grid():
    c, a, _ = curves("box", delay=DELAY + 0.23)
    coarse = D.box_nlr(c, a, DT, smooth=False, refine=False)
    fine = D.box_nlr(c, a, DT, smooth=False, refine=True)
    assert np.abs(fine.delay - (DELAY + 0.23)).mean() < np.abs(coarse.delay - (DELAY + 0.23)).mean()


# Independent reference: an analytic gamma-variate AIF whose running integral has a closed form
# (the regularised incomplete gamma function), convolved with box and exponential residues on a
# 1 ms grid by direct summation, i.e. without the phantom's FFT code or the solvers' matrices.
RHO, K_H = 1.05, 0.73
T_FINE = np.arange(0, 90, 0.001)


def analytic_aif(t, t0=8.0, alpha=3.0, beta=1.5, peak=400.0):
    s = np.clip(t - t0, 0, None)
    return peak * (s / (alpha * beta)) ** alpha * np.exp(-(s - alpha * beta) / beta)


def reference_curve(shape, cbf, mtt, delay=0.0):
    """C(t) = (rho / k_H) CBF/6000 * (AIF * R)(t - delay) sampled every 0.5 s (180 frames)."""
    from scipy.signal import fftconvolve
    from scipy.special import gammainc

    a = analytic_aif(T_FINE)
    if shape == "box":  # closed form: A(t) - A(t - MTT) with A the AIF integral
        alpha, beta, peak = 3.0, 1.5, 400.0
        scale = peak * (alpha * beta) ** -alpha * np.exp(alpha) * beta ** (alpha + 1) * 6.0  # Gamma(4) = 6
        A = lambda x: scale * gammainc(alpha + 1, np.clip(x - 8.0, 0, None) / beta)  # noqa: E731
        conv = A(T_FINE - delay) - A(T_FINE - delay - mtt)
    else:
        r = np.exp(-T_FINE / mtt)
        conv = fftconvolve(a, r)[: T_FINE.size] * 0.001
        shift = int(round(delay / 0.001))
        conv = np.concatenate([np.zeros(shift), conv[: conv.size - shift]])
    return (RHO / K_H) * cbf / 6000.0 * conv[::500], a[::500]


@pytest.mark.parametrize("method", ["sSVD", "bcSVD", "oSVD", "Tikhonov", "box-NLR"])
@pytest.mark.parametrize("shape", ["box", "exponential"])
def test_known_residue_recovered(method, shape):
    cbf, mtt = np.array([55.0, 25.0, 40.0]), np.array([4.0, 8.0, 6.0])
    rows = [reference_curve(shape, f, m) for f, m in zip(cbf, mtt)]
    c, a = np.stack([r[0] for r in rows]), rows[0][1]
    e = D.deconvolve(c, a, DT, method)
    true_cbv = cbf * mtt / 60.0  # ml/100 g: central volume theorem on the known residue
    if method == "box-NLR" and shape == "exponential":
        # the box cannot follow the tail: known negative CBV bias, but the right order of magnitude
        assert np.all(e.cbv < true_cbv) and np.all(e.cbv > 0.5 * true_cbv)
        return
    np.testing.assert_allclose(e.cbv, true_cbv, rtol=0.03)
    if shape == "exponential":
        # truncation smooths the sharp peak R(0) = 1 of an exponential residue: CBF is underestimated
        # (Wu et al. 2003), and MTT = CBV / CBF overestimated accordingly, but not by more than 40 %
        assert np.all((e.cbf < 1.02 * cbf) & (e.cbf > 0.6 * cbf))
        assert np.all((e.mtt > 0.98 * mtt) & (e.mtt < 1.7 * mtt))
        return
    # CBF (the residue's height): exact for box-NLR on a box, regularised SVD loses some of the peak
    tol = 0.03 if method == "box-NLR" else 0.25
    np.testing.assert_allclose(e.cbf, cbf, rtol=tol)
    np.testing.assert_allclose(e.mtt, mtt, rtol=tol + 0.03)


def test_gamma_integral_reference_is_consistent():
    # the closed-form box curve equals direct numerical convolution (guards the reference itself)
    c_closed, _ = reference_curve("box", 40.0, 6.0, delay=1.0)
    a = analytic_aif(T_FINE)
    box = (T_FINE < 6.0).astype(float)
    from scipy.signal import fftconvolve

    num = fftconvolve(a, box)[: T_FINE.size] * 0.001
    num = np.concatenate([np.zeros(1000), num[:-1000]])[::500] * (RHO / K_H) * 40.0 / 6000.0
    np.testing.assert_allclose(c_closed, num, atol=0.02 * c_closed.max())


def test_box_nlr_search_strategies_agree_without_noise():
    c, a, _ = curves("box")
    full = D.box_nlr(c, a, DT, smooth=False, search="full")
    c2f = D.box_nlr(c, a, DT, smooth=False, search="coarse-to-fine")
    np.testing.assert_allclose(c2f.cbf, full.cbf, rtol=1e-3)
    np.testing.assert_allclose(c2f.delay, full.delay, atol=1e-3)
    with pytest.raises(ValueError, match="search"):
        D.box_nlr(c, a, DT, search="random")


def test_ssvd_is_delay_sensitive_and_bcsvd_is_not():
    c0, a, _ = curves("exponential", delay=np.zeros(4))
    c5, _, _ = curves("exponential", delay=np.full(4, 5.0))
    s0, s5 = D.ssvd(c0, a, DT).cbf, D.ssvd(c5, a, DT).cbf
    b0, b5 = D.bcsvd(c0, a, DT).cbf, D.bcsvd(c5, a, DT).cbf
    assert np.abs(b5 / b0 - 1).max() < 0.08
    assert np.mean(s5 / s0) < np.mean(b5 / b0)


def test_svd_exact_without_truncation():
    # with a tiny threshold and an impulse-like AIF, sSVD inverts the Toeplitz system exactly
    T = 40
    a = np.zeros(T)
    a[2:6] = [50, 200, 100, 30]
    k = np.exp(-np.arange(T) * DT / 4.0) * (30 / 6000) * P.RHO / P.K_H
    A = np.array([[a[i - j] if i >= j else 0 for j in range(T)] for i in range(T)]) * DT
    c = (P.RHO / P.K_H) * A @ (k * P.K_H / P.RHO)
    e = D.ssvd(c[None], a, DT, threshold=1e-8)
    assert e.cbf[0] == pytest.approx(30.0 * P.RHO / P.K_H * P.K_H / P.RHO, rel=1e-3)


def test_osvd_noisy_bias_bounds():
    rng = np.random.default_rng(0)
    c, a, _ = curves("exponential", delay=np.zeros(4))
    noisy = np.repeat(c, 50, axis=0) + rng.normal(0, 1.0, (200, c.shape[1]))
    e = D.osvd(noisy, a, DT)
    ratio = e.cbf.reshape(4, 50).mean(1) / CBF
    assert np.all((ratio > 0.5) & (ratio < 1.2))
    # box-NLR on box residues: unbiased within 10 % under noise; on exponential residues the
    # box model cuts the tail, a known negative CBV bias (this is the "labeller bias" of the chapter)
    cb, _, _ = curves("box", delay=np.zeros(4))
    noisy_box = np.repeat(cb, 50, axis=0) + rng.normal(0, 1.0, (200, cb.shape[1]))
    nlr = D.box_nlr(noisy_box, a, DT)
    cbv_ratio = nlr.cbv.reshape(4, 50).mean(1) / (CBF * MTT / 60)
    assert np.all((cbv_ratio > 0.9) & (cbv_ratio < 1.1))
    nlr_exp = D.box_nlr(noisy, a, DT)
    assert np.all(nlr_exp.cbv.reshape(4, 50).mean(1) / (CBF * MTT / 60) < 0.95)


def test_oscillation_index_of_smooth_and_noisy():
    smooth = torch.exp(-torch.arange(50.0) / 10)[None]
    noisy = smooth + 0.3 * torch.tensor([(-1.0) ** i for i in range(50)])[None]
    assert D.oscillation_index(smooth) < 0.035 < D.oscillation_index(noisy)


def test_shapes_preserved_and_errors():
    c, a, _ = curves("box")
    e = D.bcsvd(np.broadcast_to(c, (2, 3, 4, c.shape[1])), a, DT)
    assert e.cbf.shape == (2, 3, 4)
    with pytest.raises(ValueError, match="last axis"):
        D.bcsvd(c.T, a, DT)
    with pytest.raises(ValueError, match="dt"):
        D.bcsvd(c, a, 0.0)
    with pytest.raises(ValueError, match="unknown method"):
        D.deconvolve(c, a, DT, "fSVD")


def test_ttp_and_baseline_helpers():
    t = np.arange(0, 30, 0.5)
    curve = np.exp(-((t - 12.3) ** 2) / 8)
    assert D.time_to_peak(curve[None], 0.5, smooth=False)[0] == pytest.approx(12.3, abs=0.05)
    aif = P.aif_curve(t, t0=6.0)
    n0 = D.bolus_arrival(aif)
    assert 0 < n0 * 0.5 <= 6.5
    frames = np.ones((10, 2, 2)) * 30
    frames[5:] += 10
    assert np.allclose(D.enhancement(frames, 3)[5:], 10)


def _box_residual(e, c, a):
    """Exact SSE of the box model of estimate ``e`` against the unsmoothed curves ``c`` (float64)."""
    t = np.arange(a.size) * DT
    s = np.asarray(e.cbf, np.float64) * (D.RHO / D.K_H) / D.CBF_UNIT
    mtt, delay = np.asarray(e.mtt, np.float64), np.asarray(e.delay, np.float64)
    fit = s[:, None] * D._box_basis(a.astype(np.float64), DT, t[None, :], mtt[:, None], delay[:, None])
    return ((fit - c) ** 2).sum(1)


def test_box_nlr_refinement_never_worsens_a_noisy_fit():
    """The sub-grid refinement is kept only where it lowers the error: on noisy curves, voxel by voxel."""
    rng = np.random.default_rng(11)
    n = 400
    cbf, mtt = rng.uniform(10, 60, n), rng.uniform(3, 14, n)
    delay = rng.uniform(0, 6, n)
    aif = P.aif_curve(TF, t0=8.0, recirc_fraction=0.0)
    clean, _ = P.tissue_curves(TF, aif, cbf, mtt, delay, np.full(n, 1e-6), "box")
    c, a = clean[:, IDX], aif[IDX]
    c = c + rng.normal(0, 3.0, c.shape)  # HU noise: parabolic vertices now often miss
    coarse = D.box_nlr(c, a, DT, smooth=False, refine=False)
    kept = D.box_nlr(c, a, DT, smooth=False, refine=True)
    r_coarse, r_kept = _box_residual(coarse, c, a), _box_residual(kept, c, a)
    # a kept refinement may not raise the exact residual (slack: float32 rounding of the returned maps)
    worse = r_kept > r_coarse * (1 + 1e-7)
    assert not worse.any(), (f"{worse.sum()} of {n} voxels kept a refinement that raised the residual "
                             f"(by up to {np.max(r_kept - r_coarse):.3g} HU^2)")
    moved = (kept.mtt != coarse.mtt) | (kept.delay != coarse.delay)
    assert 0.5 < moved.mean() < 1.0  # the refinement helps most voxels and is refused on some
    assert r_kept[moved].mean() < r_coarse[moved].mean()
