"""The counts network: its linear path can be the Bayes classifier, and it checks its input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.pgnaa import experiment as X
from lib.pgnaa.bayes import MultinomialClassifier
from lib.pgnaa.linear_path import CountsClassifier, bin_sum


def _model(n_classes=3, length=64, f=4):
    return X.make_model("small_cnn", n_classes, length, channels=(4, 8), bin_factor=f, linear_path=True)


def test_linear_path_with_log_templates_is_the_likelihood_classifier():
    """W = log p and a silent trunk give exactly the multinomial likelihood decision (closed form)."""
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.full(64, 0.3), size=3)
    m = _model().eval()
    with torch.no_grad():
        m.linear.weight.copy_(torch.as_tensor(np.log(p)))
        m.trunk.classifier.weight.zero_()
        m.trunk.classifier.bias.zero_()
    x = torch.as_tensor(np.stack([rng.multinomial(k, p[c]) for k in (5, 50, 500) for c in range(3) for _ in range(30)]),
                        dtype=torch.float32)
    with torch.no_grad():
        net = m(x).argmax(1).numpy()
    # the reference: argmax_c sum_i n_i log p_ci computed independently in NumPy
    ref = (x.numpy() @ np.log(p).T).argmax(1)
    np.testing.assert_array_equal(net, ref)
    lik = MultinomialClassifier(torch.as_tensor(p * 1e12)).predict(x.double()).numpy()
    assert (lik == ref).mean() > 0.97  # the library's classifier (pseudo counts) agrees


def test_trunk_input_is_binned_sqrt_and_linear_starts_at_zero():
    m = _model()
    x = torch.arange(64.0)[None]
    t = m.trunk_input(x)
    ref = np.sqrt(x.numpy().reshape(16, 4).sum(1) * 16 / x.sum().item())
    np.testing.assert_allclose(t[0, 0].numpy(), ref, rtol=1e-6)
    assert torch.all(m.linear_logits(x) == 0)
    torch.testing.assert_close(bin_sum(torch.arange(10.0), 3), torch.tensor([3.0, 12.0, 21.0]))


def test_counts_classifier_rejects_wrong_length():
    m = _model()
    with pytest.raises(ValueError, match="expected counts"):
        m(torch.ones(2, 63))
    with pytest.raises(ValueError, match="shorter than one bin"):
        CountsClassifier(torch.nn.Identity(), 2, 3, bin_factor=4)


def test_training_learns_the_linear_decision():
    """Two classes differing in one line: the trained network separates them at high counts."""
    n = 64
    src = torch.full((2, n), 1000.0, dtype=torch.float64)
    src[0, 10] += 3e4
    src[1, 50] += 3e4
    lab = torch.arange(2)
    m = _model(2, n)
    torch.manual_seed(0)
    res, _ = X.train_rsm(m, src, lab, k=(20, 2000), epochs=3, steps_per_epoch=10, batch_size=16, lr=0.01,
                         lr_linear=0.05, device="cpu")
    curve = X.accuracy_vs_k([1000], src, lab, 50, {"net": X.cnn_classifier(res.model, device="cpu")}, seed=3)
    assert curve.accuracy.item() >= 0.95  # chance is 0.5
