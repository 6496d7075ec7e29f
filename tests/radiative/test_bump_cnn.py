"""Tests of the M1 bump CNN and its scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.radiative.bump_cnn import BumpCNN, bump_score, keras_r2


def test_original_parameter_count_matches_seed():
    # research note: DRNN 2 has Flatten (388,608) and 194.8 M parameters
    with torch.device("meta"):
        m = BumpCNN()
    assert m.flat_features == 388_608
    assert sum(p.numel() for p in m.parameters()) == 194_760_263


@pytest.mark.parametrize("n_time,pool", [(42, False), (120, True)])
def test_small_cnn_shapes(n_time, pool):
    m = BumpCNN(48, n_time, 28, filters=(4, 4, 8, 8, 8, 8), hidden=(16, 8), pool=pool)
    assert m(torch.randn(3, 48, n_time, 28)).shape == (3, 3)
    with pytest.raises(ValueError, match="expected input"):
        m(torch.randn(3, 48, n_time, 20))


def test_too_small_input():
    with pytest.raises(ValueError, match="too small"):
        BumpCNN(48, 20, 28)


def test_keras_r2_is_per_sample():
    t = np.array([[0.5, 0.5, 8.0], [0.3, 0.7, 2.0]])
    p = t + np.array([[0.1, -0.1, 0.5], [0.0, 0.1, -0.5]])
    expected = np.mean([1 - ((t[i] - p[i]) ** 2).sum() / ((t[i] - t[i].mean()) ** 2).sum() for i in range(2)])
    assert keras_r2(t, p) == pytest.approx(expected, rel=1e-6)
    assert keras_r2(t, t) == pytest.approx(1.0)


def test_bump_score():
    t = np.array([[0.5, 0.5, 8.0], [0.3, 0.7, 2.0], [0.4, 0.4, 5.0], [0.6, 0.6, 5.0]])
    p = t + np.array([[0.05, -0.05, 0.9], [0.2, 0.0, 0.0], [0.0, 0.0, 1.5], [0.0, -0.11, 0.0]])
    s = bump_score(t, p)
    assert s == {"score": 25.0, "x": 75.0, "y": 75.0, "h": 75.0}
    with pytest.raises(ValueError):
        bump_score(t[:, :2], p[:, :2])


def _independent_bump_cnn_count(cin=48, n_time=168, n_pos=28, filters=(64, 32, 64, 64, 128, 128), kernel=(6, 2),
                                hidden=(500, 50), n_out=3) -> int:
    """DRNN 2 from its description: 'valid' (6, 2) Conv2D layers (kh kw cin cout + cout), Flatten, Dense layers
    (n_in n_out + n_out)."""
    kh, kw = kernel
    n, c = 0, cin
    for f in filters:
        n += kh * kw * c * f + f
        c = f
    flat = (n_time - len(filters) * (kh - 1)) * (n_pos - len(filters) * (kw - 1)) * c
    dims = [flat, *hidden, n_out]
    return n + sum(a * b + b for a, b in zip(dims[:-1], dims[1:]))


def test_parameter_count_independent_of_module():
    assert _independent_bump_cnn_count() == 194_760_263
    assert round(_independent_bump_cnn_count() / 1e6, 1) == 194.8  # published: 194.8 M
    small = dict(n_time=42, filters=(16, 16, 32, 32, 32, 32), hidden=(128, 32))
    m = BumpCNN(48, 42, 28, filters=small["filters"], hidden=small["hidden"])
    assert sum(p.numel() for p in m.parameters()) == _independent_bump_cnn_count(**small)
