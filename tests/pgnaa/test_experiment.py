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


def test_draw_test_set_moments_against_multinomial():
    """Mean and variance per channel of the test draws: k p and k p (1 - p) (scipy.stats.multinomial)."""
    from scipy import stats

    src = torch.tensor([[100.0, 300.0, 600.0], [500.0, 250.0, 250.0]], dtype=torch.float64)
    x, y = X.draw_test_set(src, torch.tensor([3, 7]), 50, 4000, generator=torch.Generator().manual_seed(0))
    assert x.shape == (8000, 3) and set(y) == {3, 7} and (y[:4000] == 3).all()
    for r, lab in enumerate((3, 7)):
        xs = x[torch.as_tensor(y == lab)].double().numpy()
        p = (src[r] / src[r].sum()).numpy()
        ref = stats.multinomial(50, p)
        np.testing.assert_allclose(xs.mean(0), ref.mean(), atol=0.15)
        np.testing.assert_allclose(xs.var(0), np.diag(ref.cov()), rtol=0.07)


def test_normalise_counts_closed_form():
    from lib.pgnaa.sampling import normalise_counts

    c = torch.tensor([[0.0, 1.0, 3.0, 12.0]])
    out = normalise_counts(c)
    np.testing.assert_allclose(out[0, 0].numpy(), np.sqrt(np.array([0, 1, 3, 12]) * 4 / 16), rtol=1e-6)


def test_ordering_text_follows_the_numbers():
    ours = pd.Series({"a": 0.9, "b": 0.8, "c": 0.7})
    assert "agrees" in X.ordering_text(ours, pd.Series({"a": 0.95, "b": 0.9, "c": 0.5}))
    t = X.ordering_text(ours, pd.Series({"a": 0.5, "b": 0.9, "c": float("nan")}))
    assert "1 pair(s)" in t and "a above b" in t


def test_train_rsm_schedule_warms_up_then_decays_to_two_percent():
    """Per epoch (lr logged for the epoch it trained): half the peak, the peak, half way, 2 % at the last epoch."""
    src = torch.full((2, 32), 100.0, dtype=torch.float64)
    m = X.make_model("small_cnn", 2, 32, channels=(4, 4))
    res, _ = X.train_rsm(m, src, torch.arange(2), k=100, epochs=4, steps_per_epoch=1, batch_size=4, lr=0.1,
                         device="cpu")
    assert res.history["lr"].tolist() == pytest.approx([0.05, 0.1, 0.1 * (0.02 + 0.98 * 0.5), 0.002], abs=1e-15)


def test_compare_and_table2_on_two_lines():
    n = 64
    src = torch.full((2, n), 100.0, dtype=torch.float64)
    src[0, 10] += 1e5
    src[1, 50] += 1e5
    lab = torch.arange(2)
    cur, clfs, secs = X.compare_on_counts(src, lab, [5, 500], 20, model=None, train_kwargs={}, bin_factor=4)
    assert secs == 0 and set(cur.method) == {"likelihood (0.7 keV channels)", "NCC", "chi-square"}
    assert cur[(cur.k == 500)].accuracy.min() == 1.0
    t2 = X.table2_rows(["small_cnn+rsm3"], src, lab, 200, 10, bin_factor=2, device="cpu",
                       make=lambda a: X.make_model(a, 2, n // 2, channels=(4, 8)),
                       train_kwargs=dict(epochs=1, steps_per_epoch=2, batch_size=4, lr=1e-3))
    assert list(t2.combination) == ["likelihood limit", "small_cnn+rsm3"]
    assert t2.accuracy.iloc[0] == 1.0 and (t2.low <= t2.accuracy).all() and t2.train_s.iloc[1] > 0
    with pytest.raises(ValueError, match="model\\+rsmN"):
        X.table2_rows(["small_cnn"], src, lab, 200, 2, make=lambda a: None, train_kwargs={}, bin_factor=2)


def test_split_sources_holds_out_spectra_never_seen_in_training():
    """The NIST split by spectrum: disjoint parts, the chapter's exact draw, test sources absent from training."""
    rng = np.random.default_rng(1)
    labels = np.array([0] * 7 + [1] * 2 + [2] * 1 + [3] * 10 + [4] * 4)
    counts = rng.poisson(50.0, size=(labels.size, 16)).astype(np.float64) + np.arange(labels.size)[:, None] * 1000
    split, parts = X.split_sources(counts, labels, seed=60)
    tr, te = split.index["train"], split.index["test"]
    assert set(tr).isdisjoint(te) and sorted([*tr, *te]) == list(range(labels.size))
    # the chapter's inline draw before the helper: default_rng(seed), per class permutation, round(0.3 n), >= 1
    g = np.random.default_rng(60)
    want = set()
    for c in np.unique(labels):
        idx = g.permutation(np.flatnonzero(labels == c))
        if len(idx) >= 2:
            want |= set(idx[: max(1, int(round(0.3 * len(idx))))].tolist())
    assert te.tolist() == sorted(want) and np.bincount(labels[te], minlength=5).tolist() == [2, 1, 0, 3, 1]
    (src_tr, lab_tr), (src_te, lab_te) = parts["train"], parts["test"]
    assert src_tr.dtype == torch.float64 and lab_tr.dtype == torch.int64
    np.testing.assert_array_equal(src_te.numpy(), counts[te])
    np.testing.assert_array_equal(lab_te.numpy(), labels[te])
    np.testing.assert_array_equal(lab_tr.numpy(), labels[tr])
    # no held-out spectrum is among the training sources (rows are all distinct here)
    assert not (src_te[:, None, :] == src_tr[None, :, :]).all(-1).any()
    assert src_tr.shape[0] + src_te.shape[0] == labels.size
    with pytest.raises(ValueError, match="one label per spectrum"):
        X.split_sources(counts, labels[:-1], seed=0)
