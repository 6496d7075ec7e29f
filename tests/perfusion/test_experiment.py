"""lib.perfusion.experiment: every public function against independent references or known answers."""

import numpy as np
import pandas as pd
import pytest
import torch

from lib.perfusion import experiment as pipe
from lib.perfusion import phantom as P


@pytest.fixture(scope="module")
def small():
    """Two noisy 32x32 slices of one subject (no motion) with their preprocessing."""
    ph = P.make_phantom(1, 2, size=32, rng=np.random.default_rng(3), motion_px=0, motion_deg=0, lesion_fraction=1.0)
    return ph, pipe.preprocess(ph.frames, ph.protocol.dt, ph.pixel_mm)


def test_map_windows_and_subsample_frames():
    w = pipe.map_windows(44.5)
    assert w["cbv"] == (0.0, 4.0) and w["ttp"] == (0.0, 44.5)
    idx = pipe.subsample_frames(89, 18)
    assert idx[0] == 0 and idx.size == 18 and np.all(np.diff(idx) == 5)  # floor(88 / 17) = 5
    assert pipe.subsample_frames(89, 89).tolist() == list(range(89))
    with pytest.raises(ValueError, match="n must be"):
        pipe.subsample_frames(89, 1)


def test_preprocess_finds_the_aif_and_the_brain(small):
    ph, pre = small
    assert pre.frames.shape == ph.frames.shape and pre.aif.shape == ph.aif.shape
    # the partial-volume-corrected AIF has (nearly) the area of the true full-volume AIF
    np.testing.assert_allclose(pre.aif.sum(1) / ph.aif.sum(1), 1.0, atol=0.2)
    # the baseline ends before the true bolus arrival (AIF above 10 % of its peak)
    arrival = np.argmax(ph.aif > 0.1 * ph.aif.max(1, keepdims=True), axis=1)
    assert np.all(pre.n_baseline <= arrival)
    # the automatic mask covers most of the true brain and little else
    inter = (pre.mask & ph.brain).sum()
    assert inter / ph.brain.sum() > 0.8 and inter / pre.mask.sum() > 0.7
    with pytest.raises(ValueError, match="N, T, H, W"):
        pipe.preprocess(ph.frames[0], 0.5, ph.pixel_mm)


def test_deconvolve_slices_maps_close_to_truth(small):
    ph, pre = small
    out = pipe.deconvolve_slices(pre, "oSVD", mask=ph.brain)
    assert set(out) >= {"cbf", "cbv", "mtt", "tmax", "ttp"}
    assert out["cbf"].shape == ph.cbf.shape
    assert np.all(out["cbf"][~ph.brain] == 0)
    gm = (ph.labels == P.LABELS["gm"]) & ~ph.core & ~ph.penumbra
    # grey-matter mean CBV within 20 % of the truth (area ratio, independent of the residue shape)
    assert out["cbv"][gm].mean() == pytest.approx(ph.cbv[gm].mean(), rel=0.2)
    # model-free TTP within 1.5 s of the true TTP on average
    assert np.abs(out["ttp"] - ph.ttp)[ph.brain].mean() < 1.5
    # fewer frames: dt is scaled, so the TTP stays in seconds
    idx = pipe.subsample_frames(89, 45)
    half = pipe.deconvolve_slices(pre, "oSVD", mask=ph.brain, frame_idx=idx)
    assert np.abs(half["ttp"] - ph.ttp)[ph.brain].mean() < 2.0


def test_cnn_inputs_window_and_standardisation():
    x = np.array([-1000.0, -160.0, 40.0, 240.0, 2000.0]).reshape(1, 5, 1, 1)
    u = pipe.cnn_inputs(x)[0, :, 0, 0] * pipe.INPUT_STD + pipe.INPUT_MEAN
    np.testing.assert_allclose(u, [0.0, 0.0, 0.5, 1.0, 1.0], atol=1 / 255)
    assert pipe.cnn_inputs(x, np.array([1, 3])).shape == (1, 2, 1, 1)


def test_enhancement_inputs_subtract_each_pixels_baseline():
    f = np.full((2, 6, 2, 2), 30.0, np.float32)
    f[:, 3:] += np.array([10.0, 25.0, 200.0])[:, None, None]
    f[1] += 7.0  # another baseline, same enhancement
    e = pipe.enhancement_inputs(f, np.array([3, 3]))
    np.testing.assert_allclose(e[:, :3], 0.0, atol=1e-6)
    np.testing.assert_allclose(e[0, 3:, 0, 0], [10 / 25, 1.0, 100 / 25])  # 200 HU clipped at 100
    np.testing.assert_allclose(e[0], e[1])
    assert pipe.enhancement_inputs(f, np.array([3, 3]), np.array([0, 5])).shape == (2, 2, 2, 2)
    with pytest.raises(ValueError, match="n_baseline"):
        pipe.enhancement_inputs(f, np.array([0, 3]))


def test_targets_round_trip_within_8_bit():
    rng = np.random.default_rng(0)
    win = pipe.map_windows(44.5)
    maps = {"cbv": rng.uniform(0, 4, (2, 4, 4)), "cbf": rng.uniform(0, 100, (2, 4, 4)),
            "ttp": rng.uniform(0, 44.5, (2, 4, 4))}
    y = pipe.cnn_targets(maps, ("cbv", "cbf", "ttp"), win)
    assert y.shape == (2, 3, 4, 4) and y.min() >= 0 and y.max() <= 1
    back = pipe.targets_to_maps(torch.as_tensor(y), ("cbv", "cbf", "ttp"), win)
    for k, (lo, hi) in win.items():
        assert np.abs(back[k] - maps[k]).max() <= (hi - lo) / 255 + 1e-5
    with pytest.raises(ValueError, match="missing"):
        pipe.cnn_targets(maps, ("mtt",), win)


def test_map_loss_weights_equalise_variances():
    rng = np.random.default_rng(1)
    y = np.stack([rng.normal(0.5, 0.2, (3, 8, 8)), rng.normal(0.5, 0.05, (3, 8, 8))], axis=1)
    brain = np.ones((3, 8, 8), bool)
    w = pipe.map_loss_weights(y, brain)
    assert w.mean() == pytest.approx(1.0)
    # weighted variances are equal: w_k var_k = const
    v = y.transpose(1, 0, 2, 3).reshape(2, -1).var(1)
    assert w[0] * v[0] == pytest.approx(w[1] * v[1], rel=1e-5)
    with pytest.raises(ValueError, match="empty"):
        pipe.map_loss_weights(y, np.zeros_like(brain))


def test_map_loss_ignores_the_background_when_asked():
    out = torch.zeros(1, 2, 4, 4)
    y = torch.zeros(1, 3, 4, 4)
    y[:, 2, :2] = 1.0  # brain: top half
    y[:, 0, 2:] = 5.0  # error only outside the brain
    assert pipe.map_loss(out, y, background_weight=0.0).item() == 0.0
    y[:, 1, 0, 0] = 2.0  # one brain pixel off by 2 in map 1: squared error 4 over 8 brain px x 2 maps
    assert pipe.map_loss(out, y, background_weight=0.0).item() == pytest.approx(4 / 16)
    w = torch.tensor([1.0, 3.0])
    assert pipe.map_loss(out, y, w, background_weight=0.0).item() == pytest.approx(12 / 16)
    with pytest.raises(ValueError, match="mask channel"):
        pipe.map_loss(out, y[:, :2])


def test_train_map_unet_learns_and_predicts():
    # targets: two of the input channels, smoothed (a mapping the U-Net can represent)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (80, 4, 16, 16)).astype(np.float32)
    y = x[:, :2].copy()
    brain = np.ones((80, 16, 16), bool)
    res = pipe.train_map_unet(x[:64], y[:64], x[64:], y[64:], width=0.25, epochs=12, lr=5e-3, seed=0,
                              device="cpu", schedule="cosine", brain_train=brain[:64], brain_val=brain[64:],
                              balance_maps=True)
    h = res.history
    assert h.val_loss.min() < 0.3 * h.val_loss.iloc[0]
    win = {"a": (0.0, 1.0), "b": (0.0, 1.0)}
    pred = pipe.predict_maps(res.model, x[64:], ("a", "b"), win, device="cpu")
    assert pred["a"].shape == (16, 16, 16)
    # far better than predicting the mean (MAE of a constant 0.5 on U(0, 1) is 0.25)
    assert np.abs(pred["a"] - y[64:, 0]).mean() < 0.12
    with pytest.raises(ValueError, match="both"):
        pipe.train_map_unet(x, y, x, y, epochs=1, brain_train=brain)


def test_map_errors_against_pandas():
    rng = np.random.default_rng(2)
    truth = {"cbf": rng.uniform(10, 60, (2, 5, 5))}
    est = {"cbf": truth["cbf"] + rng.normal(1.0, 2.0, (2, 5, 5))}
    classes = {"a": rng.random((2, 5, 5)) < 0.5, "empty": np.zeros((2, 5, 5), bool)}
    tab = pipe.map_errors(est, truth, classes, ("cbf", "ttp"))
    assert tab["class"].tolist() == ["a"]  # empty classes and missing maps are skipped
    d = pd.Series((est["cbf"] - truth["cbf"])[classes["a"]])
    assert tab.mae.iloc[0] == pytest.approx(d.abs().mean())
    assert tab.bias.iloc[0] == pytest.approx(d.mean())


def test_lesion_scores_perfect_and_empty(small):
    ph, _ = small
    tab, labels = pipe.lesion_scores({"truth": ph.maps}, ph.core, ph.penumbra, ph.brain, ph.subject,
                                     ph.pixel_mm, ph.slice_mm)
    assert set(tab.rule) == {"paper", "mtt", "tmax"}
    # scored against its own labels every Dice is 1
    c, p = labels[("truth", "paper")]
    self_tab, _ = pipe.lesion_scores({"truth": ph.maps}, c, p, ph.brain, ph.subject, ph.pixel_mm, ph.slice_mm,
                                     rules=("paper",))
    if self_tab["n core"].iloc[0] > 0:
        assert self_tab["core Dice"].iloc[0] == pytest.approx(1.0)
    assert self_tab["penumbra Dice"].iloc[0] == pytest.approx(1.0)
    # empty predictions score 0
    zero = {k: np.zeros_like(v) for k, v in ph.maps.items()}
    ztab, _ = pipe.lesion_scores({"zero": zero}, ph.core, ph.penumbra, ph.brain, ph.subject, ph.pixel_mm,
                                 ph.slice_mm, rules=("paper",))
    assert ztab["penumbra Dice"].iloc[0] == 0.0
    with pytest.raises(ValueError, match="unknown rules"):
        pipe.lesion_scores({}, ph.core, ph.penumbra, ph.brain, ph.subject, 1.0, 1.0, rules=("rapid",))


def test_delay_mtt_sweep_noiseless_shape():
    tab = pipe.delay_mtt_sweep(["bcSVD", "sSVD"], 0.0, np.random.default_rng(0), n_rep=1,
                               delays=np.array([0.0, 6.0]), mtts=np.array([4.0]), shapes=("box",))
    assert len(tab) == 4
    r = tab.set_index(["method", "delay"]).cbf_ratio
    # block-circulant SVD is delay-insensitive; with a delay, standard SVD recovers less than it
    assert r["bcSVD", 6.0] == pytest.approx(r["bcSVD", 0.0], rel=0.05)
    assert r["sSVD", 6.0] < r["bcSVD", 6.0]


def test_protocol_and_motion_scores():
    ph_s = P.make_phantom(1, 1, size=32, rng=np.random.default_rng(5), motion_px=0, motion_deg=0,
                          protocol=P.SHUTTLE, lesion_fraction=1.0)
    rows = pipe.protocol_scores(ph_s, ("oSVD",))
    assert rows[0]["experiment"].startswith("shuttle protocol (18 x 2.81 s)")
    # CBV from 18 frames at 2.81 s: still within 40 % of the mean grey/white-matter CBV
    assert rows[0]["CBV MAE"] < 0.4 * ph_s.cbv[ph_s.brain].mean()
    ph_m = P.make_phantom(1, 1, size=32, rng=np.random.default_rng(6), motion_px=0.5, motion_deg=1.0)
    unreg, reg = pipe.motion_scores(ph_m)
    assert "not registered" in unreg["experiment"] and "registered" in reg["experiment"]
    assert reg["CBF MAE"] < unreg["CBF MAE"]  # registration undoes part of the motion


def test_network_inputs_follow_the_input_mode(small):
    _, pre = small
    np.testing.assert_array_equal(pipe.network_inputs(pre, "paper"), pipe.cnn_inputs(pre.frames))
    idx = np.array([0, 5, 9])
    np.testing.assert_array_equal(pipe.network_inputs(pre, "enhancement", idx),
                                  pipe.enhancement_inputs(pre.frames, pre.n_baseline, idx))
    with pytest.raises(ValueError, match="input_mode must be one of"):
        pipe.network_inputs(pre, "raw")


def test_agreement_value_reads_one_cell_and_names_what_is_missing():
    agree = pd.DataFrame({"maps": ["truth", "truth", "oSVD"], "rule": ["paper", "mtt", "paper"],
                          "core Dice": [0.8, 0.7, np.nan]})
    assert pipe.agreement_value(agree, "truth", "mtt", "core Dice") == 0.7
    assert pipe.agreement_value(agree, "oSVD", "paper", "core Dice") == 0.0  # NaN (nothing found) reads 0
    with pytest.raises(KeyError, match="no row for maps 'box-NLR' with rule 'paper'"):
        pipe.agreement_value(agree, "box-NLR", "paper", "core Dice")
    with pytest.raises(KeyError, match="no column 'penumbra Dice'"):
        pipe.agreement_value(agree, "truth", "paper", "penumbra Dice")


def test_map_scores_truth_is_perfect_and_errors_are_mean_absolute(small):
    ph, _ = small
    geom = dict(truth=ph.maps, brain=ph.brain, core=ph.core, penumbra=ph.penumbra, subject=ph.subject,
                pixel_mm=ph.pixel_mm, slice_mm=ph.slice_mm)
    perfect = pipe.map_scores(ph.maps, **geom)
    assert perfect["CBF MAE"] == 0.0 and perfect["CBV MAE"] == 0.0
    assert 0.5 < perfect["penumbra Dice"] <= 1.0  # the paper's thresholds on the true maps find most of it
    shifted = {**ph.maps, "cbf": ph.maps["cbf"] + 2.0}
    assert pipe.map_scores(shifted, **geom)["CBF MAE"] == pytest.approx(2.0)
    zero = pipe.map_scores({k: np.zeros_like(v) for k, v in ph.maps.items()}, **geom)
    assert zero["penumbra Dice"] == 0.0 and zero["CBV MAE"] == pytest.approx(np.abs(ph.maps["cbv"])[ph.brain].mean())
