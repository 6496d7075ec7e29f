"""Vectorised Otsu baseline against scikit-image."""

import numpy as np
import pytest
from skimage.filters import threshold_otsu

from lib.nuclei.otsu import otsu_segment, otsu_thresholds


def test_thresholds_match_skimage():
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(0, 1, (4, 30, 40)), rng.normal(4, 1.5, (4, 20, 40))], 1)
    x *= np.array([1, 10, 0.1, 3])[:, None, None]
    np.testing.assert_allclose(otsu_thresholds(x), [threshold_otsu(xi) for xi in x], rtol=1e-12)


def test_polarity():
    img = np.full((1, 20, 20), 200.0)
    img[0, 5:9, 5:9] = 20.0  # dark nucleus on a bright background
    m = otsu_segment(img)
    assert m.sum() == 16 and m[0, 6, 6]
    assert otsu_segment(img, "bright").sum() == 400 - 16
    with pytest.raises(ValueError):
        otsu_segment(img, "both")
