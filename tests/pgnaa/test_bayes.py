"""Likelihood classifier and template matching on toy problems with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.pgnaa import bayes as B
from lib.pgnaa.sampling import rsm3


def test_likelihood_recovers_class_and_matches_bruteforce():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [0.34, 0.33, 0.33]])
    clf = B.MultinomialClassifier(p)
    n = torch.tensor([[7.0, 2.0, 1.0], [0.0, 1.0, 9.0], [3.0, 4.0, 3.0]])
    assert clf.predict(n).tolist() == [0, 1, 2]
    # brute force: scipy multinomial log-pmf differs only by a class-independent constant
    from scipy.stats import multinomial

    s = clf.scores(n).numpy()
    for i in range(3):
        ref = np.array([multinomial.logpmf(n[i].numpy(), int(n[i].sum()), p[c]) for c in range(3)])
        np.testing.assert_allclose(s[i] - s[i, 0], ref - ref[0], atol=1e-6)
    post = clf.predict_proba(n)
    torch.testing.assert_close(post.sum(1), torch.ones(3, dtype=torch.float64))


def test_likelihood_accuracy_matches_exact_two_class_error():
    """Two classes on two channels: accuracy equals the exact binomial computation."""
    from scipy.stats import binom

    p0, p1, k = 0.45, 0.55, 101
    clf = B.MultinomialClassifier(np.array([[p0, 1 - p0], [p1, 1 - p1]]))
    g = torch.Generator().manual_seed(0)
    y = torch.arange(2).repeat(20000)
    probs = torch.tensor([[p0, 1 - p0], [p1, 1 - p1]], dtype=torch.float64)[y]
    acc = (clf.predict(rsm3(probs, k, generator=g)) == y).double().mean().item()
    exact = 0.5 * (binom.cdf(50, k, p0) + binom.sf(50, k, p1))  # decide 1 iff n0 > 50
    assert acc == pytest.approx(exact, abs=0.01)


def test_mixture_and_exclusion():
    t = np.array([[10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    cls = [0, 0, 1]
    n = np.array([[5.0, 0.0, 0.0]])
    s = B.mixture_log_likelihood(n, t, cls, 2)
    assert int(s.argmax()) == 0
    s_ex = B.mixture_log_likelihood(n, t, cls, 2, exclude=[0])
    assert s_ex[0, 0] < s[0, 0]


def test_ncc_and_chi2_pick_the_right_template():
    t = np.array([[1.0, 5.0, 1.0, 1.0], [1.0, 1.0, 1.0, 5.0]])
    n = np.array([[2.0, 20.0, 3.0, 1.0], [1.0, 2.0, 2.0, 18.0]])
    assert B.ncc_scores(n, t).argmax(1).tolist() == [0, 1]
    assert B.chi2_scores(n, t).argmax(1).tolist() == [0, 1]
    # chi-square value against the direct formula
    k = n[0].sum()
    p = t[1] / t[1].sum()
    assert float(-B.chi2_scores(n[:1], t[1:])) == pytest.approx(((n[0] - k * p) ** 2 / (k * p)).sum())


def test_chernoff_information():
    p, q = np.array([0.5, 0.5]), np.array([0.5, 0.5])
    assert B.chernoff_information(p, q) == pytest.approx(0.0, abs=1e-12)
    # Bernoulli(a) vs Bernoulli(1-a): symmetric, optimum at lambda=1/2: C = -log(2 sqrt(a(1-a)))
    a = 0.2
    assert B.chernoff_information([a, 1 - a], [1 - a, a]) == pytest.approx(-np.log(2 * np.sqrt(a * (1 - a))), rel=1e-6)


def test_template_validation():
    with pytest.raises(ValueError, match="non-negative"):
        B.MultinomialClassifier(np.array([[1.0, -1.0]]))
    with pytest.raises(ValueError, match="channels"):
        B.MultinomialClassifier(np.ones((2, 3))).scores(np.ones((1, 4)))


def test_count_templates_of_unequal_totals_match_scipy_multinomial():
    """Templates are normalised per class (row): with unequal totals a wrong axis changes the class scores."""
    from scipy.special import logsumexp
    from scipy.stats import multinomial

    t = np.array([[700.0, 200.0, 100.0, 0.0], [10.0, 20.0, 70.0, 0.0], [3400.0, 3300.0, 3300.0, 50.0]])
    p = (t + 0.5) / (t + 0.5).sum(1, keepdims=True)  # Jeffreys pseudo count, then each row sums to 1
    np.testing.assert_allclose(B.template_log_probs(t).exp().sum(1).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(B.template_log_probs(t).numpy(), np.log(p), rtol=1e-12)
    n = np.array([[7.0, 2.0, 1.0, 0.0], [0.0, 1.0, 9.0, 0.0], [3.0, 4.0, 3.0, 1.0], [5.0, 5.0, 5.0, 5.0]])
    ref = np.array([[multinomial.logpmf(row, int(row.sum()), p[c]) for c in range(3)] for row in n])
    s = B.MultinomialClassifier(t).scores(n).numpy()
    # equal up to a constant per spectrum (the multinomial coefficient)
    np.testing.assert_allclose(s - s[:, :1], ref - ref[:, :1], atol=1e-9)
    assert B.MultinomialClassifier(t).predict(n).tolist() == ref.argmax(1).tolist()
    # mixture of these templates in two classes: log of the mean pmf of each class's templates
    mix = B.mixture_log_likelihood(n, t, [0, 0, 1], 2).numpy()
    ref_mix = np.stack([logsumexp(ref[:, :2], axis=1) - np.log(2), ref[:, 2]], axis=1)
    np.testing.assert_allclose(mix - mix[:, :1], ref_mix - ref_mix[:, :1], atol=1e-9)
