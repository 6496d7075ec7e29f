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


def test_keras_r2_uses_the_batch_mean_of_all_targets():
    # the notebook's Keras metric, written out by hand for one batch of two samples:
    # K.mean(y_true) = mean of all 6 targets = (0.5 + 0.5 + 8 + 0.3 + 0.7 + 2) / 6 = 2.0
    t = np.array([[0.5, 0.5, 8.0], [0.3, 0.7, 2.0]])
    p = t + np.array([[0.1, -0.1, 0.5], [0.0, 0.1, -0.5]])
    ss_tot = [1.5**2 + 1.5**2 + 6.0**2, 1.7**2 + 1.3**2 + 0.0**2]  # 40.5 and 4.58
    ss_res = [0.01 + 0.01 + 0.25, 0.0 + 0.01 + 0.25]
    expected = np.mean([1 - r / (s + 1e-7) for r, s in zip(ss_res, ss_tot)])
    assert keras_r2(t, p) == pytest.approx(expected, rel=1e-9)
    assert keras_r2(t, t) == pytest.approx(1.0)
    # a per-sample mean instead (the earlier, wrong reading) gives a very different value here
    per_sample_mean = np.mean([1 - r / ((ti - ti.mean()) ** 2).sum() for r, ti in zip(ss_res, t)])
    assert abs(keras_r2(t, p) - per_sample_mean) > 0.01


def test_keras_r2_batches_like_keras_evaluate():
    rng = np.random.default_rng(0)
    t = np.c_[rng.uniform(0.2, 0.8, (70, 2)), rng.uniform(0.1, 10, 70)]
    p = t + 0.2 * rng.standard_normal(t.shape)
    per_batch = []
    for s in range(0, 70, 32):  # batches of 32, 32, 6: the mean is that of each batch
        tb, pb = t[s:s + 32], p[s:s + 32]
        per_batch += [1 - ((a - b) ** 2).sum() / (((a - tb.mean()) ** 2).sum() + 1e-7) for a, b in zip(tb, pb)]
    assert keras_r2(t, p) == pytest.approx(np.mean(per_batch), rel=1e-12)
    one = np.mean([1 - ((a - b) ** 2).sum() / (((a - t.mean()) ** 2).sum() + 1e-7) for a, b in zip(t, p)])
    assert keras_r2(t, p, batch_size=None) == pytest.approx(one, rel=1e-12)
    # predicting the mean label of each target scores far below the seed's 98.81 %
    assert keras_r2(t, np.broadcast_to(t.mean(0), t.shape)) < 0.8
    with pytest.raises(ValueError):
        keras_r2(t, p, batch_size=0)


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
