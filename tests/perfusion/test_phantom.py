"""Tests of the CT-perfusion phantom: formulas, central volume theorem, noise, truth consistency."""

import numpy as np
import pytest

from lib.perfusion import phantom as P


def test_gamma_variate_peak_time_and_value():
    t = np.arange(0, 40, 0.01)
    g = P.gamma_variate(t, t0=8.0, alpha=3.0, beta=1.5, peak=400.0)
    assert t[np.argmax(g)] == pytest.approx(8.0 + 3.0 * 1.5, abs=0.01)
    assert g.max() == pytest.approx(400.0, rel=1e-6)
    assert np.all(g[t <= 8.0] == 0)
    # AUC of A s^a e^{-s/b} is A b^{a+1} Gamma(a+1); with A = 400 / (tp^a e^{-a}) -> ~2680 HU s (research note)
    assert np.trapezoid(g, t) == pytest.approx(400 * 1.5**4 * 6 / (4.5**3 * np.exp(-3)), rel=1e-3)


def test_gamma_variate_rejects_bad_shape():
    with pytest.raises(ValueError, match="alpha"):
        P.gamma_variate(np.arange(3.0), 0.0, -1.0, 1.0, 1.0)


def test_noise_sigma_formula():
    assert P.noise_sigma(200) == pytest.approx(103.09 / np.sqrt(200))
    assert P.noise_sigma(15) == pytest.approx(26.6, abs=0.05)
    with pytest.raises(ValueError, match="mAs"):
        P.noise_sigma(0)


def test_correlated_noise_has_requested_sigma_and_correlation():
    rng = np.random.default_rng(0)
    n = P.correlated_noise((20, 64, 64), 7.3, rng, corr_px=0.8)
    assert n.std() == pytest.approx(7.3, rel=0.03)
    lag1 = np.mean(n[:, :, 1:] * n[:, :, :-1]) / n.var()
    assert 0.4 < lag1 < 0.9  # spatially correlated
    lagt = np.mean(n[1:] * n[:-1]) / n.var()
    assert abs(lagt) < 0.05  # independent between frames


@pytest.mark.parametrize("shape", ["box", "exponential", "linear"])
def test_residue_area_is_mtt(shape):
    t = np.arange(0, 200, 0.1)
    r = P.residue(t, 6.0, shape, bin_width=0.1)
    assert r[0] == pytest.approx(1.0, abs=0.02)
    assert r.sum() * 0.1 == pytest.approx(6.0, rel=1e-6)


@pytest.mark.parametrize("shape", ["box", "exponential", "linear"])
def test_central_volume_theorem_for_tissue_curves(shape):
    tf = np.arange(0, 200, 0.1)
    aif = P.aif_curve(tf, t0=8.0)
    cbf = np.array([55.0, 20.0, 8.0])
    mtt = np.array([4.0, 10.0, 12.0])
    c, tmax = P.tissue_curves(tf, aif, cbf, mtt, np.array([0.0, 3.0, 6.0]), np.array([0.5, 1.5, 3.0]), shape)
    cbv = (P.K_H / P.RHO) * 100 * c.sum(1) / aif.sum()
    np.testing.assert_allclose(cbv, cbf * mtt / 60.0, rtol=1e-6)
    assert np.all(tmax >= np.array([0.0, 3.0, 6.0]))


def test_tissue_enhancement_matches_research_note():
    # GM CBF 55, CBV 4 -> MTT 4.36 s, AIF peak 400 HU, box: about 20.7 HU peak (research note table)
    tf = np.arange(0, 60, 0.1)
    aif = P.gamma_variate(tf, 8.0, 3.0, 1.5, 400.0)
    c, _ = P.tissue_curves(tf, aif, np.array([55.0]), np.array([60 * 4 / 55]), np.zeros(1), np.full(1, 1e-6), "box")
    assert c.max() == pytest.approx(20.7, abs=0.5)


@pytest.fixture(scope="module")
def ph():
    return P.make_phantom(3, 2, size=48, rng=np.random.default_rng(1), keep_clean=True, lesion_fraction=1.0)


def test_phantom_shapes_and_truth(ph):
    N, T = 6, 89
    assert ph.frames.shape == (N, T, 48, 48) and ph.frames.dtype == np.float32
    for m in ph.maps.values():
        assert m.shape == (N, 48, 48)
    b = ph.brain
    np.testing.assert_allclose(ph.cbv[b], ph.cbf[b] * ph.mtt[b] / 60, rtol=1e-4)
    assert np.all(ph.cbf[~b] == 0)
    assert (ph.core & ~b).sum() == 0 and (ph.penumbra & ph.core).sum() == 0
    assert ph.core.any() and ph.penumbra.any()
    # lesion values below normal tissue, delay rising in the lesion
    assert ph.cbf[ph.core].mean() < 0.3 * ph.cbf[b & ~ph.core & ~ph.penumbra].mean()
    assert ph.tmax[ph.penumbra].mean() > 6.0 > ph.tmax[b & ~ph.core & ~ph.penumbra].mean()
    assert len(ph.subjects) == 3 and set(ph.subjects.residue) <= {"box", "exponential", "linear"}


def test_phantom_noise_level_and_clean_frames(ph):
    noise = (ph.frames - ph.clean)[:, 0]  # frame 0 has no motion
    assert noise.std() == pytest.approx(P.pixel_noise_sigma(200, ph.pixel_mm), rel=0.05)
    assert ph.subjects.noise_sigma[0] == pytest.approx(P.pixel_noise_sigma(200, ph.pixel_mm))


def test_pixel_noise_sigma_averaging():
    assert P.pixel_noise_sigma(200, 0.488) == pytest.approx(P.noise_sigma(200))
    assert P.pixel_noise_sigma(200, 3.44) == pytest.approx(P.noise_sigma(200) * 1.3839 / 3.44, rel=1e-3)


def test_phantom_is_seeded():
    a = P.make_phantom(1, 1, size=32, rng=np.random.default_rng(7))
    b = P.make_phantom(1, 1, size=32, rng=np.random.default_rng(7))
    np.testing.assert_array_equal(a.frames, b.frames)


def test_shuttle_protocol_timing():
    ph = P.make_phantom(1, 1, size=32, protocol=P.SHUTTLE, rng=np.random.default_rng(0))
    assert ph.frames.shape[1] == 18
    np.testing.assert_allclose(np.diff(ph.times), 2.81)


def test_bad_arguments():
    with pytest.raises(ValueError, match="size"):
        P.make_phantom(1, 1, size=8)
    with pytest.raises(ValueError, match="residue shape"):
        P.residue(np.arange(3.0), 1.0, "gauss")
