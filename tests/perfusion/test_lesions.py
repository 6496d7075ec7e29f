"""Lesion labelling, volumes and agreement against hand-computed cases."""

import numpy as np
import pytest

from lib.perfusion import lesions as pm


def test_relative_to_contralateral_on_symmetric_map():
    brain = np.ones((1, 16, 16), bool)
    x = np.full((1, 16, 16), 50.0)
    x[0, 4:8, 2:5] = 10.0  # lesion on the left of the image
    r = pm.relative_to_contralateral(x, brain, sigma_px=0, ref_sigma_px=0)
    assert r[0, 5, 3] == pytest.approx(0.2)
    assert r[0, 5, 12] == pytest.approx(5.0)  # mirrored side sees the lesion as reference
    assert r[0, 12, 3] == pytest.approx(1.0)
    d = pm.delay_to_contralateral(x / 10, brain, sigma_px=0, ref_sigma_px=0)
    assert d[0, 5, 3] == pytest.approx(-4.0)


def test_lesion_labels_rules():
    brain = np.ones((1, 20, 20), bool)
    cbf = np.full((1, 20, 20), 50.0)
    cbv = np.full((1, 20, 20), 3.0)
    ttp = np.full((1, 20, 20), 15.0)
    tmax = np.full((1, 20, 20), 2.0)
    cbf[0, 5:12, 2:8] = 25.0  # penumbra: rCBF 0.5
    ttp[0, 5:12, 2:8] = 22.0
    tmax[0, 5:12, 2:8] = 9.0
    cbf[0, 7:10, 3:6] = 5.0  # core: rCBF 0.1
    cbv[0, 7:10, 3:6] = 0.8
    kw = dict(min_px=1, sigma_px=0, ref_sigma_px=0)
    core, pen = pm.lesion_labels({"cbf": cbf, "tmax": tmax}, brain, rule="tmax", **kw)
    assert core.sum() == 9 and pen.sum() == 42 - 9
    core2, pen2 = pm.lesion_labels({"cbf": cbf, "cbv": cbv, "ttp": ttp}, brain, rule="paper", **kw)
    assert core2.sum() >= 9 and (core2 & ~core).sum() <= 4
    core3, pen3 = pm.lesion_labels({"cbf": cbf, "cbv": cbv}, brain, rule="mtt", **kw)
    # penumbra MTT = 60 * 3 / 25 = 7.2 s against 3.6 s normal: relative MTT 2 > 1.45
    assert core3.sum() == 9 and pen3.sum() == 42 - 9
    with pytest.raises(ValueError, match="missing"):
        pm.lesion_labels({"cbf": cbf}, brain, rule="tmax")


def test_remove_small():
    m = np.zeros((10, 10), bool)
    m[1, 1] = True
    m[5:8, 5:8] = True
    out = pm.remove_small(m, 4)
    assert out.sum() == 9 and not out[1, 1]


def test_volumes_and_agreement_hand_computed():
    t = np.zeros((4, 10, 10), bool)
    p = np.zeros((4, 10, 10), bool)
    t[0, :2, :5] = True  # subject 0: 10 px
    p[0, :2, :4] = True  # 8 px, all inside -> dice = 16/18
    t[2, :4, :5] = True  # subject 1: 20 px
    p[3, :4, :5] = True  # 20 px elsewhere -> dice 0
    groups = np.array([0, 0, 1, 1])
    assert pm.lesion_volume_ml(t, 2.0, 5.0)[0] == pytest.approx(10 * 4 * 5 / 1000)
    a = pm.lesion_agreement(t, p, groups, 2.0, 5.0)
    assert a["dice"] == pytest.approx((16 / 18 + 0) / 2)
    np.testing.assert_allclose(a["vol_true"], [0.2, 0.4])
    np.testing.assert_allclose(a["vol_pred"], [0.16, 0.4])
    assert a["bias"] == pytest.approx(-0.02)
