"""Tests of the continuous-map reconstruction metrics added for the radiative study."""

from __future__ import annotations

import numpy as np
import pytest

from lib.core.metrics import image_regression_report, relative_l2, soft_dice_loss


def test_relative_l2_against_numpy():
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=(4, 5, 5)), rng.normal(size=(4, 5, 5))
    expected = [np.linalg.norm(p[i] - t[i]) / np.linalg.norm(t[i]) for i in range(4)]
    np.testing.assert_allclose(relative_l2(t, p), expected)


def test_soft_dice_reduces_to_dice_on_binary_maps():
    t = np.zeros((1, 4, 4))
    p = np.zeros((1, 4, 4))
    t[0, :2] = 1
    p[0, 1:3] = 1
    # dice = 2 * 4 / (8 + 8) = 0.5
    assert soft_dice_loss(t, p, smooth=0)[0] == pytest.approx(0.5)


def test_image_regression_report_against_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(1)
    t = rng.uniform(0.1, 1, (3, 16, 16))
    p = t + rng.normal(0, 0.05, t.shape)
    rep = image_regression_report(t, p, data_range=0.9)
    assert rep["ssim"][1] == pytest.approx(structural_similarity(t[1], p[1], data_range=0.9, win_size=7))
    assert rep["psnr"][2] == pytest.approx(peak_signal_noise_ratio(t[2], p[2], data_range=0.9))
    same = image_regression_report(t, t, data_range=0.9)
    np.testing.assert_allclose(same["ssim"], 1.0)
    np.testing.assert_allclose(same["r2"], 1.0)
    with pytest.raises(ValueError):
        image_regression_report(t[0], p[0], data_range=1.0)
