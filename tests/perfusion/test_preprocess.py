"""Preprocessing: registration recovers an applied shift, bilateral filter, brain mask, AIF/VOF."""

import numpy as np
import pytest
from scipy import ndimage

from lib.perfusion import phantom as P
from lib.perfusion import preprocess as pp
from lib.perfusion.deconvolution import bolus_arrival


@pytest.fixture(scope="module")
def ph():
    return P.make_phantom(1, 1, size=64, rng=np.random.default_rng(2), motion_px=0.0, motion_deg=0.0,
                          keep_clean=True)


def test_registration_recovers_applied_shift(ph):
    ref = ph.clean[0, 0]
    moved = ndimage.shift(ref, (1.5, -2.0), order=1, mode="nearest")
    out, params = pp.register_frames(np.stack([ref, moved, ref]), spacing_mm=1.0, return_params=True)
    # the transform maps fixed -> moving points: translation = applied shift (x = columns, y = rows)
    assert params[1, 1] == pytest.approx(-2.0, abs=0.15)
    assert params[1, 2] == pytest.approx(1.5, abs=0.15)
    brain = ph.brain[0]
    err_before = np.abs(moved - ref)[brain].mean()
    err_after = np.abs(out[1] - ref)[brain].mean()
    assert err_after < 0.3 * err_before


def test_bilateral_filter_reduces_noise_keeps_edges():
    rng = np.random.default_rng(0)
    clean = np.full((3, 48, 48), 30.0, np.float32)
    clean[:, :, 24:] = 1000.0  # bone edge
    noisy = clean + rng.normal(0, 7.0, clean.shape).astype(np.float32)
    out = pp.bilateral_filter(noisy, 1.0)  # 3 mm spatial sigma = 3 pixels at 1 mm spacing
    assert (out - clean)[:, 4:-4, 4:20].std() < 0.3 * 7.0  # flat tissue: noise strongly reduced
    assert np.abs(out[:, :, 22] - 30).mean() < 5 and np.abs(out[:, :, 25] - 1000).mean() < 5  # edge kept
    with pytest.raises(ValueError, match="positive"):
        pp.bilateral_filter(noisy, 1.0, domain_mm=0)


def test_brain_mask_matches_truth(ph):
    n0 = bolus_arrival(ph.aif[0])
    m = pp.brain_mask(pp.bilateral_filter(ph.frames[0], ph.pixel_mm), n0)
    t = ph.brain[0]
    assert 2 * (m & t).sum() / (m.sum() + t.sum()) > 0.9


def test_aif_vof_selection_and_partial_volume_scaling(ph):
    fr = pp.bilateral_filter(ph.frames[0], ph.pixel_mm)
    n0 = bolus_arrival(ph.aif[0])
    inf = pp.select_input_functions(fr, n0, ph.protocol.dt)
    assert np.all(ph.labels[0][inf.aif_mask] == P.LABELS["artery"])
    assert np.all(ph.labels[0][inf.vof_mask] == P.LABELS["vein"])
    pv = ph.subjects.artery_pv[0]
    assert inf.pv_scale == pytest.approx(1 / pv, rel=0.1)
    assert inf.aif.sum() == pytest.approx(ph.aif[0].sum(), rel=0.1)


def test_bad_frames():
    with pytest.raises(ValueError, match="shape"):
        pp.bilateral_filter(np.zeros((4, 4)), 1.0)
