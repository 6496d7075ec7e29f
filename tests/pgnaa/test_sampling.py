"""Random sampling methods: exact totals and first/second moments against theory."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.pgnaa import sampling as S


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


COUNTS = torch.tensor([0.0, 40.0, 10.0, 150.0, 0.0, 300.0, 500.0])


@pytest.mark.parametrize("fn", [S.rsm3, S.rsm3_tree, S.rsm3_categorical])
def test_rsm3_multinomial_moments(fn):
    p = COUNTS / COUNTS.sum()
    k, n = 200, 20000
    x = fn(p.expand(n, -1).contiguous(), k, generator=gen())
    assert torch.all(x.sum(dim=1) == k)
    mean, var = x.double().mean(0).numpy(), x.double().var(0).numpy()
    pd_ = p.double().numpy()
    np.testing.assert_allclose(mean, k * pd_, atol=5 * np.sqrt(k * pd_ * (1 - pd_) / n).max() + 1e-9)
    np.testing.assert_allclose(var, k * pd_ * (1 - pd_), rtol=0.05, atol=1e-9)
    # covariance of two channels: -k p_i p_j
    cov = torch.cov(x[:, [3, 5]].double().T)[0, 1]
    assert float(cov) == pytest.approx(-k * pd_[3] * pd_[5], rel=0.1)


def test_rsm3_large_k_exact_total_and_zero_channels():
    x = S.rsm3(COUNTS.expand(4, -1), 5 * 10**8, generator=gen())
    assert torch.all(x.double().sum(1) == 5 * 10**8)
    assert torch.all(x[:, [0, 4]] == 0)


def test_rsm2_binomial_moments():
    k, n = 250, 20000
    x = S.rsm2(COUNTS.expand(n, -1).contiguous(), k, generator=gen(1)).double()
    q = k / COUNTS.sum()
    np.testing.assert_allclose(x.mean(0), COUNTS * q, atol=0.15)
    np.testing.assert_allclose(x.var(0), COUNTS * q * (1 - q), rtol=0.06, atol=1e-9)
    tot = x.sum(1)
    assert float(tot.mean()) == pytest.approx(k, rel=0.01)
    assert float(tot.var()) == pytest.approx(k * (1 - float(q)), rel=0.06)


def test_rsm1_hypergeometric_and_errors():
    k, n = 500, 4000
    ev = S.rsm1_events(COUNTS.expand(n, -1).contiguous(), k, generator=gen(2))
    h = S.histogram(ev, COUNTS.numel()).double()
    assert torch.all(h.sum(1) == k)
    assert torch.all(h <= COUNTS)  # without replacement: never more than measured
    T = float(COUNTS.sum())
    p = COUNTS.double() / T
    hyper_var = k * p * (1 - p) * (T - k) / (T - 1)
    np.testing.assert_allclose(h.var(0), hyper_var, rtol=0.08, atol=1e-9)
    # the whole event list: the sample equals the measurement
    full = S.rsm1(COUNTS, int(T), generator=gen(3))
    torch.testing.assert_close(full, COUNTS)
    with pytest.raises(ValueError, match="exceeds the total counts"):
        S.rsm1(COUNTS, int(T) + 1)
    with pytest.raises(ValueError, match="integer"):
        S.rsm1(COUNTS + 0.5, 3)


def test_rsm4_image_shapes_and_modes():
    c = torch.arange(512.0).expand(3, -1) + 10
    hist = S.rsm4(c, 1000, height=16, width=32, mode="histogram", generator=gen())
    sc = S.rsm4(c, 1000, height=16, width=32, mode="scatter", generator=gen())
    assert hist.shape == sc.shape == (3, 1, 16, 32)
    assert torch.all(sc.sum(dim=2) <= 1) and torch.all(hist.sum(dim=2) >= sc.sum(dim=2))
    with pytest.raises(ValueError, match="mode"):
        S.rsm4(c, 10, mode="pie")


def test_k_validation_and_rsm_batch():
    with pytest.raises(ValueError, match="non-negative integer"):
        S.rsm3(COUNTS, 2.5)
    src = torch.stack([COUNTS, COUNTS.flip(0)]) * 1000
    tf = S.RSMBatch(src, (100, 1000), seed=0)
    x, y = tf(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 1]))
    assert x.shape == (3, 1, COUNTS.numel()) and x.dtype == torch.float32
    # sqrt(n * N / k) sums of squares recover N
    assert torch.allclose((x**2).sum(-1), torch.full((3, 1), float(COUNTS.numel())))
    tf4 = S.RSMBatch(src, 200, method="rsm4", image_size=(8, 7))
    assert tf4(torch.tensor([0]), torch.tensor([0]))[0].shape == (1, 1, 8, 7)


def test_rsm3_matches_scipy_multinomial_pmf():
    """Frequencies of every outcome of a 3-channel, 4-count multinomial against scipy.stats.multinomial."""
    from scipy import stats

    p = np.array([0.2, 0.5, 0.3])
    n = 40000
    for fn in (S.rsm3, S.rsm3_tree):
        x = fn(torch.as_tensor(p).expand(n, -1).contiguous(), 4, generator=gen(5)).numpy().astype(int)
        outcomes, counts = np.unique(x, axis=0, return_counts=True)
        expected = stats.multinomial.pmf(outcomes, 4, p) * n
        assert expected.sum() == pytest.approx(n)  # every possible outcome occurred
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < stats.chi2.ppf(0.999, len(outcomes) - 1), fn.__name__


def test_rsm3_per_row_k_and_reproducible():
    p = COUNTS / COUNTS.sum()
    k = torch.tensor([0, 1, 10, 1000])
    x = S.rsm3(p.expand(4, -1).contiguous(), k, generator=gen(7))
    assert x.sum(1).tolist() == [0, 1, 10, 1000]
    torch.testing.assert_close(x, S.rsm3(p.expand(4, -1).contiguous(), k, generator=gen(7)))
    with pytest.raises(ValueError, match="shape"):
        S.rsm3(p.expand(4, -1), torch.tensor([1, 2]))


def test_rsm_batch_counts_output_and_per_sample_k():
    src = torch.stack([COUNTS, COUNTS.flip(0)]) * 1000
    tf = S.RSMBatch(src, (10, 10000), output="counts", seed=1)
    x, _ = tf(torch.tensor([0, 1, 0, 1, 0, 1]), torch.zeros(6))
    assert x.shape == (6, 1, COUNTS.numel())
    tot = x.sum(-1).squeeze(1)
    assert torch.all((tot >= 10) & (tot <= 10000)) and len(set(tot.tolist())) > 1  # one k per sample
    with pytest.raises(ValueError, match="output"):
        S.RSMBatch(src, 10, output="images")
