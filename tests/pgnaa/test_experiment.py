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


# --- the chapter's helpers (moved out of book/pgnaa/pgnaa.md) ---------------------------------------------------


def _two_line_sources(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    src = torch.full((2, n), 100.0, dtype=torch.float64)
    src[0, 10] += 1e5
    src[1, 50] += 1e5
    return src, torch.arange(2)


def test_crop_bin_is_a_slice_then_a_sum_of_adjacent_channels():
    x = np.random.default_rng(0).poisson(5.0, size=(3, 40)).astype(np.int64)
    want = x[:, 3:30].reshape(3, 9, 3).sum(-1)  # channels 3..29 in bins of 3
    np.testing.assert_array_equal(X.crop_bin(x, lo=3, hi=30, factor=3), want)
    got = X.crop_bin(torch.as_tensor(x, dtype=torch.float64), lo=3, hi=31, factor=3)  # remainder channel 30 dropped
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), want)
    np.testing.assert_array_equal(X.crop_bin(np.arange(10.0), lo=2, hi=8, factor=2), [5.0, 9.0, 13.0])
    with pytest.raises(TypeError):
        X.crop_bin(x, 3, 30, 3)  # options are keyword-only


def test_irv2_counts_model_takes_raw_counts_with_or_without_a_linear_path():
    from lib.pgnaa.linear_path import CountsClassifier

    for linear in (True, False):
        m = X.irv2_counts_model(3, 512, bin_factor=4, width=0.0625, repeats=[0, 0, 0], linear_path=linear)
        ref = X.make_model("irv2", 3, 512, width=0.0625, repeats=(0, 0, 0), bin_factor=4, linear_path=linear)
        assert isinstance(m, CountsClassifier) and m.bin_factor == 4 and m.length == 512
        assert (m.linear is not None) is linear and X.n_parameters(m) == X.n_parameters(ref)
        assert m.eval()(torch.rand(5, 512) * 10).shape == (5, 3)


def test_rsm_train_kwargs_are_train_rsm_options():
    kw = X.rsm_train_kwargs(3, (10, 100), steps_per_epoch=2, batch_size=4, lr=0.01, lr_linear=0.5)
    assert kw == {"k": (10, 100), "epochs": 3, "steps_per_epoch": 2, "batch_size": 4, "lr": 0.01, "lr_linear": 0.5}
    src, lab = _two_line_sources()
    m = X.make_model("small_cnn", 2, 64, channels=(4, 4))
    res, _ = X.train_rsm(m, src, lab, device="cpu", **X.rsm_train_kwargs(2, 50, steps_per_epoch=1, batch_size=4,
                                                                          lr=1e-3, lr_linear=None))
    assert list(res.history.epoch) == [1, 2]


def test_baseline_classifiers_names_order_shapes_and_the_binned_likelihood():
    from lib.pgnaa.bayes import MultinomialClassifier

    src, lab = _two_line_sources()
    binned = X.bin_channels(src, 4)
    clfs = X.baseline_classifiers(MultinomialClassifier(src), MultinomialClassifier(binned), binned, bin_factor=4)
    assert list(clfs) == ["likelihood (0.7 keV channels)", "likelihood (network bins)", "NCC", "chi-square"]
    x, y = X.draw_test_set(src, lab, 500, 6, generator=torch.Generator().manual_seed(0))
    for name, fn in clfs.items():
        pred = fn(x)
        assert isinstance(pred, np.ndarray) and pred.shape == (12,), name
        np.testing.assert_array_equal(pred, y, err_msg=name)  # the lines are far apart: all correct at 500 counts
    np.testing.assert_array_equal(clfs["likelihood (network bins)"](x),
                                  MultinomialClassifier(binned).predict(X.bin_channels(x, 4)).numpy())
    lik = X.likelihood_classifier(MultinomialClassifier(src))
    np.testing.assert_array_equal(lik(x), MultinomialClassifier(src).predict(x).numpy())
    np.testing.assert_array_equal(X.on_bins(lambda c: c.sum(-1).numpy(), bin_factor=4)(x[:, :10]),
                                  x[:, :8].sum(-1).numpy())  # the 2 remainder channels are dropped


def test_linear_path_classifier_is_the_argmax_of_the_linear_logits():
    m = X.irv2_counts_model(3, 128, bin_factor=4, width=0.0625, repeats=(0, 0, 0), linear_path=True)
    with torch.no_grad():
        m.linear.weight.copy_(torch.randn(3, 128))
    x = torch.rand(7, 128, dtype=torch.float64) * 20
    m.train()
    pred = X.linear_path_classifier(m, device="cpu")(x)
    assert pred.shape == (7,) and not m.training
    np.testing.assert_array_equal(pred, (x.float() / x.float().sum(-1, keepdim=True).sqrt() @ m.linear.weight.T
                                         ).argmax(1).numpy())


def test_mixture_classifiers_names_order_shapes():
    src, lab = _two_line_sources()
    tr = torch.cat([src, src * 1.1])
    lab_tr = torch.cat([lab, lab])
    tmpl = np.stack([tr[lab_tr == c].sum(0).numpy() for c in range(2)])
    clfs = X.mixture_classifiers(tr, lab_tr, tmpl, n_classes=2)
    assert list(clfs) == ["likelihood (mixture of training spectra)", "likelihood (class-mean template)", "NCC",
                          "chi-square"]
    x, y = X.draw_test_set(src, lab, 300, 5, generator=torch.Generator().manual_seed(1))
    for name, fn in clfs.items():
        pred = fn(x)
        assert isinstance(pred, np.ndarray) and pred.shape == (10,), name
        np.testing.assert_array_equal(pred, y, err_msg=name)


def test_live_time_axis_reads_counts_as_seconds():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_xscale("log")
    ax.set_xlim(100, 1e5)
    sec = X.live_time_axis(ax, 8000.0)
    fig.canvas.draw()
    np.testing.assert_allclose(sec.get_xlim(), (100 / 8000.0, 1e5 / 8000.0))
    plt.close(fig)


def test_class_cams_average_over_correct_spectra_only():
    from lib.pgnaa.cam import model_cam

    torch.manual_seed(0)
    m = X.irv2_counts_model(3, 512, bin_factor=4, width=0.0625, repeats=(0, 0, 0), linear_path=True)
    with torch.no_grad():  # a linear path that decides: channels 0-99 -> class 0, 200-299 -> class 1
        m.linear.weight.zero_()
        m.linear.weight[0, :100] = 1000.0
        m.linear.weight[1, 200:300] = 1000.0
    x = torch.zeros(6, 512, dtype=torch.float64)
    x[:2, :100] = x[4:, :100] = 5.0  # classes 0 and 2 look alike: class 2 is predicted 0, never correct
    x[2:4, 200:300] = 5.0
    x += torch.rand(6, 512, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = np.array([0, 0, 1, 1, 2, 2])
    cams = X.class_cams(m, x, y, device="cpu")
    assert cams.shape == (3, 128)
    assert np.isnan(cams[2]).all() and np.isfinite(cams[:2]).all()
    with torch.no_grad():
        xin = m.trunk_input(x.float())
        for c in (0, 1):
            sel = torch.as_tensor(y == c)
            ref = model_cam(m.trunk, xin[sel], classes=torch.full((2,), c)).mean(0).numpy()
            np.testing.assert_allclose(cams[c], ref, rtol=1e-5, atol=1e-6)


def test_time_rsm_methods_runs_the_four_methods_in_order_on_one_generator():
    from lib.pgnaa import sampling as S

    src = torch.as_tensor(np.random.default_rng(0).poisson(50.0, size=(3, 64)), dtype=torch.float64)
    g = torch.Generator().manual_seed(5)
    t = X.time_rsm_methods(src, 100, generator=g, n_spectra=8, image_size=(8, 16))
    assert list(t) == ["rsm1", "rsm2", "rsm3", "rsm4"] and all(v > 0 for v in t.values())
    g_ref = torch.Generator().manual_seed(5)
    batch = src[torch.arange(8) % 3]
    S.rsm1(batch, 100, generator=g_ref)
    S.rsm2(batch, 100, generator=g_ref)
    S.rsm3(batch, 100, generator=g_ref)
    S.rsm4(batch, 100, height=8, width=16, generator=g_ref)
    assert torch.equal(g.get_state(), g_ref.get_state())  # the generator advanced exactly as by the four calls


def test_plain_model_factory_builds_the_papers_networks_without_a_linear_path():
    from lib.pgnaa.linear_path import CountsClassifier

    make = X.plain_model_factory(4, 128, width=0.0625, repeats=[0, 1, 0])
    for arch in ("irv2", "small_cnn"):
        m = make(arch)
        assert not isinstance(m, CountsClassifier)
        ref = X.make_model(arch, 4, 128, width=0.0625, repeats=(0, 1, 0))
        assert type(m) is type(ref) and X.n_parameters(m) == X.n_parameters(ref)
        assert m.eval()(torch.randn(2, 1, 128)).shape == (2, 4)


def test_table2_with_paper_adds_the_papers_columns():
    t2 = pd.DataFrame({"combination": ["likelihood limit", "small_cnn+rsm3", "irv2+rsm2", "image2d+rsm4", "new+rsm9"],
                       "accuracy": [0.96, 0.6, 0.5, 0.2, 0.1]})
    out = X.table2_with_paper(t2, {"rsm3": 0.025, "rsm2": 0.02, "rsm4": 0.3})
    assert list(t2.columns) == ["combination", "accuracy"]  # the input is not modified
    assert list(out.columns) == ["combination", "accuracy", "paper row", "paper accuracy", "paper sampling s",
                                 "sampling s (128 spectra)"]
    assert out["paper row"].tolist() == ["-", "custom 1D + RSM-3", "Inception-ResNet-V2 + RSM-2",
                                         "NASNet/PNASNet + RSM-4a", "-"]
    assert out["paper accuracy"].tolist() == ["-", "≈ 65%", "-", "< 80%", "-"]
    np.testing.assert_array_equal(out["paper sampling s"], [np.nan, 0.073, 1.488, 0.696, np.nan])
    np.testing.assert_array_equal(out["sampling s (128 spectra)"], [np.nan, 0.025, 0.02, 0.3, np.nan])
    assert X.PAPER_TABLE2["irv2+rsm3"] == ("Inception-ResNet-V2 + RSM-3", "≈ 90%", 0.073)
    assert len(X.PAPER_TABLE2) == 9 and all(c.count("+") == 1 for c in X.PAPER_TABLE2)
    num = out.set_index("combination")["paper accuracy"].map(X.parse_paper_accuracy)
    np.testing.assert_allclose(num.to_numpy(), [np.nan, 0.65, np.nan, 0.8, np.nan])


def test_parse_paper_accuracy():
    assert X.parse_paper_accuracy("≈ 65%") == pytest.approx(0.65)
    assert X.parse_paper_accuracy("< 40%") == pytest.approx(0.4)
    assert np.isnan(X.parse_paper_accuracy("-")) and np.isnan(X.parse_paper_accuracy(""))
