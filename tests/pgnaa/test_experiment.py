"""Glue of the PGNAA chapter: model factory, RSM training, accuracy curves, intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from lib.pgnaa import experiment as X
from lib.pgnaa.bayes import MultinomialClassifier


def test_wilson_interval_reference_values():
    # 8 of 10: Wilson 95 % interval (0.490, 0.943), e.g. Agresti & Coull (1998)
    lo, hi = X.wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert X.wilson_interval(0, 0)[0] != X.wilson_interval(0, 0)[0]  # NaN
    lo, hi = X.wilson_interval(50, 50)
    assert hi == 1.0 and lo > 0.9


def test_counts_for_accuracy_interpolates_in_log_k():
    df = pd.DataFrame({"k": [10, 100, 1000] * 2, "method": ["a"] * 3 + ["b"] * 3,
                       "accuracy": [0.5, 0.9, 1.0, 0.1, 0.2, 0.3]})
    s = X.counts_for_accuracy(df, 0.95)
    assert s["a"] == pytest.approx(10 ** 2.5)
    assert np.isnan(s["b"])


def test_bin_channels():
    x = torch.arange(10.0)
    torch.testing.assert_close(X.bin_channels(x, 3), torch.tensor([3.0, 12.0, 21.0]))
    with pytest.raises(ValueError):
        X.bin_channels(x, 0)


@pytest.mark.parametrize("name", ["irv2", "small_cnn", "resnet1d", "gru", "transformer"])
def test_make_model_shapes(name):
    m = X.make_model(name, 3, 300, width=0.0625, repeats=(0, 0, 0), channels=(8, 8, 8, 16)).eval()
    out = X.predict_labels(m, torch.randn(5, 1, 300), batch_size=2, device="cpu")
    assert out.shape == (5,) and set(out) <= {0, 1, 2}
    assert X.n_parameters(m) > 0
    with pytest.raises(ValueError):
        X.make_model("vgg", 3, 300)


def test_train_rsm_and_accuracy_curve():
    """Two well separated classes: training runs, and the likelihood oracle is perfect at high k."""
    n = 64
    src = torch.zeros(2, n, dtype=torch.float64)
    src[0, 10] = src[1, 50] = 1e6
    src += 100.0
    lab = torch.arange(2)
    m = X.make_model("small_cnn", 2, n, channels=(4, 8))
    torch.manual_seed(0)
    res, secs = X.train_rsm(m, src, lab, k=(50, 500), epochs=2, steps_per_epoch=3, batch_size=8, device="cpu")
    assert list(res.history.epoch) == [1, 2] and secs > 0
    lik = MultinomialClassifier(src)
    curve = X.accuracy_vs_k([5, 200], src, lab, 20, {"lik": lambda c: lik.predict(c).numpy(),
                                                     "cnn": X.cnn_classifier(res.model, device="cpu")}, seed=1)
    assert set(curve.columns) >= {"k", "method", "accuracy", "low", "high", "n", "seconds"}
    assert curve[(curve.method == "lik") & (curve.k == 200)].accuracy.item() == 1.0
    assert ((curve.low <= curve.accuracy) & (curve.accuracy <= curve.high)).all()
