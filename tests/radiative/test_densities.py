"""Tests of the density-family generator."""

from __future__ import annotations

import numpy as np
import pytest

from lib.radiative.densities import FAMILIES, box_smooth_valid, generate_densities


def test_shapes_range_and_seed():
    rho, fam = generate_densities(40, rng=np.random.default_rng(0))
    assert rho.shape == (40, 64, 64) and fam.shape == (40,)
    assert rho.min() >= 1.0 - 1e-12 and rho.max() <= 10.0 + 1e-9
    # the 8-cell raw border at 1 survives the smoothing on the outermost cells
    np.testing.assert_allclose(rho[:, 0, :], 1.0, atol=1e-12)
    again, fam2 = generate_densities(40, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(rho, again)
    np.testing.assert_array_equal(fam, fam2)
    other, _ = generate_densities(40, rng=np.random.default_rng(1))
    assert not np.allclose(rho, other)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_has_structure(family):
    rho, fam = generate_densities(6, rng=np.random.default_rng(3), size=32, families=[family])
    assert rho.shape == (6, 32, 32) and np.all(fam == 0)
    assert np.all(rho.max(axis=(1, 2)) > 2.0)  # every map has something above the background


def test_weights_select_families():
    _, fam = generate_densities(50, rng=np.random.default_rng(0), weights=[0, 1, 0, 0, 0])
    assert np.all(fam == 1)


def test_box_smooth_valid_matches_scipy():
    from scipy.ndimage import uniform_filter

    x = np.random.default_rng(0).normal(size=(12, 12))
    ref = uniform_filter(x, size=3, mode="constant")[1:-1, 1:-1]
    np.testing.assert_allclose(box_smooth_valid(x, passes=1), ref, atol=1e-12)


def test_errors():
    with pytest.raises(TypeError, match="Generator"):
        generate_densities(3, rng=0)
    with pytest.raises(ValueError, match="families"):
        generate_densities(3, rng=np.random.default_rng(0), families=["triangles"])
    with pytest.raises(ValueError, match="weights"):
        generate_densities(3, rng=np.random.default_rng(0), weights=[1, 2])


def test_crenau_density():
    from lib.radiative.densities import crenau_densities

    rho, peak = crenau_densities([0.5, 0.3], [0.5, 0.6], [16.0, 4.0], size=28)
    assert rho.shape == (2, 28, 28)
    assert np.isclose(rho.min(), 0.1)
    np.testing.assert_allclose(peak, rho.max(axis=(1, 2)))
    # smoothing conserves the background far away and lowers the peak below the raw height
    assert peak[0] < 16 and peak[1] < 4
    # the bump sits at (x, y): column ~ x N, row ~ y N (y-up rows)
    r, c = np.unravel_index(np.argmax(rho[1]), rho[1].shape)
    assert abs((c + 0.5) / 28 - 0.3) < 0.06 and abs((r + 0.5) / 28 - 0.6) < 0.06
    unsmoothed, pk = crenau_densities([0.5], [0.5], [16.0], size=28, smooth_passes=0)
    assert pk[0] == 16.0
    with pytest.raises(ValueError, match="centres"):
        crenau_densities([1.5], [0.5], [1.0])
