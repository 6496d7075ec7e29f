"""Seed training/evaluation protocol helpers."""

import numpy as np
import pytest
import torch
from torch import nn

from lib.nuclei.experiment import UInt8Batch, fit_seed_protocol, per_image_table, predict_proba, recalibrate_batchnorm
from lib.nuclei.multiresunet import MultiResUNet
from lib.nuclei.synthetic import synth_nuclei_arrays


def test_uint8_batch_flips_only_in_training():
    m = nn.Identity()
    x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1)
    y = (x[:, :1] > 7).to(torch.uint8) * 255
    t = UInt8Batch(m, augment=True, generator=torch.Generator().manual_seed(0))
    m.eval()
    xe, ye = t(x, y)
    assert torch.equal(xe, x.float() / 255) and torch.equal(ye, y.float() / 255)
    m.train()
    seen = set()
    for _ in range(20):
        xa, ya = t(x, y)
        assert torch.equal((xa[:, :1] * 255 > 7.5).float(), ya)  # image and mask flipped together
        seen.add(tuple(xa[0, 0].flatten().tolist()))
    assert len(seen) == 4


def test_recalibrated_bn_equals_data_statistics():
    m = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2, momentum=0.01))
    imgs = np.random.default_rng(0).integers(0, 255, (10, 3, 8, 8), dtype=np.uint8)
    recalibrate_batchnorm(m, imgs, batch_size=5, device="cpu")
    with torch.no_grad():
        feats = m[0](torch.from_numpy(imgs).float() / 255)
    # cumulative average of the two batch means equals the overall mean (equal batch sizes)
    torch.testing.assert_close(m[1].running_mean, feats.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert m[1].momentum == 0.01 and not m.training


def test_predict_proba_resize_and_tta():
    m = nn.Conv2d(3, 1, 1)  # pointwise: flip-equivariant, so TTA must not change the output
    imgs = np.random.default_rng(1).integers(0, 255, (3, 3, 16, 16), dtype=np.uint8)
    p = predict_proba(m, imgs, device="cpu")
    assert p.shape == (3, 16, 16) and p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(predict_proba(m, imgs, tta=True, device="cpu"), p, atol=1e-6)
    assert predict_proba(m, imgs, out_size=32, device="cpu").shape == (3, 32, 32)


def test_fit_runs_and_logs_history():
    rng = np.random.default_rng(0)
    tr, va = synth_nuclei_arrays(8, rng, 32), synth_nuclei_arrays(4, rng, 32)
    torch.manual_seed(0)
    res = fit_seed_protocol(MultiResUNet(base_filters=4), tr, va, epochs=2, lr=1e-3, augment=True, device="cpu")
    assert list(res.history["epoch"]) == [1, 2]
    assert {"loss", "val_loss", "dice", "val_dice", "iou", "val_iou", "lr"} <= set(res.history.columns)
    # soft IoU = Dice / (2 - Dice) per batch; averaged over batches the identity holds only roughly
    assert (res.history["iou"] < res.history["dice"]).all()
    with pytest.raises(ValueError, match="empty"):
        fit_seed_protocol(MultiResUNet(base_filters=4), tr.subset([]), va, epochs=1)
    tab = per_image_table(va.ids, va.modality, va.masks, va.masks)
    assert (tab["f1"] == 1).all() and list(tab.columns) == ["id", "modality", "f1", "jaccard"]


# ------------------------------------------------------------------- chapter helpers (recipe, tables, verdicts)
def test_pick_cases_and_spread():
    import statistics

    from lib.nuclei.experiment import pick_cases, seed_spread

    assert pick_cases([0.5, 0.9, 0.1, 0.7, 0.3]) == {"best": 1, "median": 0, "worst": 2}
    mean, sd = seed_spread([0.91, 0.89, 0.93])
    assert mean == pytest.approx(statistics.mean([0.91, 0.89, 0.93]))
    assert sd == pytest.approx(statistics.stdev([0.91, 0.89, 0.93]))
    assert seed_spread([0.5]) == (0.5, 0.0)
    with pytest.raises(ValueError):
        pick_cases([])


def test_modality_table_perfect_and_empty_predictions():
    from lib.nuclei.experiment import modality_table

    lab = np.zeros((3, 16, 16), np.int32)
    lab[:, 2:6, 2:6], lab[:, 9:13, 9:14] = 1, 2
    truth = lab > 0
    preds = {"perfect": truth.copy(), "empty": np.zeros_like(truth)}
    inst = {"perfect": list(lab), "empty": [np.zeros((16, 16), np.int32)] * 3}
    t = modality_table(truth, list(lab), ["fluorescence", "fluorescence", "brightfield"], preds, inst)
    assert t.loc[("fluorescence", "perfect"), "images"] == 2 and t.loc[("brightfield", "empty"), "images"] == 1
    assert t.loc[("fluorescence", "perfect"), "pixel F1 (pooled)"] == 1.0
    assert t.loc[("brightfield", "perfect"), "AP@0.5"] == 1.0
    assert t.loc[("brightfield", "perfect"), "DSB mean AP"] == 1.0
    assert t.loc[("fluorescence", "empty"), "AP@0.5"] == 0.0


def test_recipe_inputs_and_train_recipe_end_to_end():
    from lib.nuclei.experiment import method_key, recipe_inputs, train_recipe
    from lib.nuclei.synthetic import synth_nuclei_records

    recs = synth_nuclei_records(10, np.random.default_rng(4), 48)
    x, m = recipe_inputs(recs[:2])
    assert x[0].shape == (3, 48, 48) and m[0].dtype == bool and m[0].sum() == (recs[0].labels > 0).sum()
    xs, ms = recipe_inputs(recs[:2], squash=32)
    assert xs[0].shape == (3, 32, 32) and ms[0].shape == (32, 32)
    res, prob = train_recipe("U-Net", recs[:6], recs[6:8], recs[8:], eval_size=40, width=2, epochs=1, crop=32,
                             device="cpu")
    assert prob.shape == (2, 40, 40) and prob.dtype == np.float32 and len(res.history) == 1
    assert method_key("MultiResUNet, our recipe") == "mru"
    with pytest.raises(ValueError, match="unknown method"):
        method_key("SAM")
    with pytest.raises(ValueError, match="unknown network"):
        train_recipe("SAM", recs[:6], recs[6:8], recs[8:], eval_size=40, width=2, epochs=1, device="cpu")


def test_read_sweep_metrics(tmp_path):
    import json

    from lib.nuclei.experiment import read_sweep_metrics

    assert read_sweep_metrics(tmp_path / "absent").empty
    for s, f1 in ((0, 0.9), (1, 0.92)):
        (tmp_path / f"seed-{s}").mkdir()
        (tmp_path / f"seed-{s}" / "metrics.json").write_text(json.dumps({"mru_f1_pooled": f1, "run_seed": s}))
    t = read_sweep_metrics(tmp_path)
    assert list(t["point"]) == ["seed-0", "seed-1"] and list(t["mru_f1_pooled"]) == [0.9, 0.92]
    # a run on the synthetic fallback is never mixed into a table of real-data runs, and the reverse
    (tmp_path / "seed-2").mkdir()
    (tmp_path / "seed-2" / "metrics.json").write_text(json.dumps(
        {"mru_f1_pooled": 0.7, "_data_sources": {"dsb2018": "synthetic (dsb2018 unavailable: ...)"}}))
    for s in (0, 1):
        m = json.loads((tmp_path / f"seed-{s}" / "metrics.json").read_text())
        (tmp_path / f"seed-{s}" / "metrics.json").write_text(json.dumps({**m, "_data_sources": {"dsb2018": "real"}}))
    real = read_sweep_metrics(tmp_path, data={"dsb2018": "real"})
    assert list(real["point"]) == ["seed-0", "seed-1"] and list(real.attrs["left_out"]) == ["seed-2"]
    assert "other data" in real.attrs["left_out"]["seed-2"]
    synth = read_sweep_metrics(tmp_path, data={"dsb2018": "synthetic"})
    assert list(synth["point"]) == ["seed-2"] and list(synth.attrs["left_out"]) == ["seed-0", "seed-1"]
    assert len(read_sweep_metrics(tmp_path)) == 3
    # runs at another scale (or without a provenance record) are left out when parameters must match
    (tmp_path / "seed-0" / "provenance.json").write_text(json.dumps({"parameters": {"size": 128, "seed": 0}}))
    (tmp_path / "seed-1" / "provenance.json").write_text(json.dumps({"parameters": {"size": 64, "seed": 1}}))
    same = read_sweep_metrics(tmp_path, data={"dsb2018": "real"}, match={"size": 128})
    assert list(same["point"]) == ["seed-0"]
    assert same.attrs["left_out"]["seed-1"] == "other parameters (size=64)"
    (tmp_path / "seed-1" / "provenance.json").write_text(json.dumps({"parameters": {"size": 128}, "status": "interrupted"}))
    unfinished = read_sweep_metrics(tmp_path)
    assert "seed-1" not in list(unfinished["point"]) and "interrupted" in unfinished.attrs["left_out"]["seed-1"]


def test_seed_table_and_text():
    import pandas as pd

    from lib.nuclei.experiment import seed_table, seeds_text

    runs = pd.DataFrame({"point": ["seed-0", "seed-1", "seed-2"], "mru_f1_pooled": [0.89, 0.90, 0.91]})
    t = seed_table(runs, ["mru_f1_pooled", "absent"])
    assert list(t.index) == ["mru_f1_pooled"]
    row = t.loc["mru_f1_pooled"]
    assert row["mean"] == pytest.approx(0.90) and row["sd"] == pytest.approx(0.01)  # statistics.stdev
    assert (row["min"], row["max"], row["runs"]) == (0.89, 0.91, 3)
    short = seeds_text(0.89, 0.005, 3, goal=0.90, single=0.885)
    assert "short of the goal 0.90 by 1.0 points, about 2.0 SD" in short and "within 1 SD" in short
    assert "meets the goal 0.90" in seeds_text(0.91, 0.005, 3, goal=0.90, single=0.90)
    assert "within 3 SD" in seeds_text(0.90, 0.005, 3, goal=0.90, single=0.888)


def test_ablation_table_and_text():
    import pandas as pd

    from lib.nuclei.experiment import ablation_table, ablation_text

    switches = ("none", "normalize", "native", "dice")
    runs = pd.DataFrame({"recipe_off_index": [0, 1, 2, 3], "mru_f1_pooled": [0.89, 0.85, 0.80, 0.892],
                         "mru_jaccard_pooled": [0.8, 0.74, 0.67, 0.81], "mru_ws_ap50": [0.68, 0.6, 0.5, 0.69]})
    t = ablation_table(runs, switches)
    assert list(t.index) == list(switches)
    assert t.loc["native", "ΔF1 (points)"] == pytest.approx(-9.0) and t.loc["none", "ΔF1 (points)"] == 0
    text = ablation_text(t, noise_points=0.5)
    assert "switching off 'native' costs the most, 9.0 points" in text
    assert "'dice' is within the seed spread" in text and "raises" not in text
    assert "raises it" in ablation_text(t, noise_points=0.1)  # dice off: +0.2 points > 0.1
    assert "no run of the full recipe" in ablation_text(ablation_table(runs.iloc[1:], switches))
    with pytest.raises(ValueError, match="recipe_off_index"):
        ablation_table(runs.drop(columns="recipe_off_index"), switches)


def test_train_recipe_selects_the_epoch_on_validation_never_on_test(monkeypatch):
    """The headline's kept epoch comes from the validation records; the test records are only predicted."""
    import pandas as pd

    import lib.nuclei.experiment as X
    from lib.nuclei.synthetic import synth_nuclei_records

    recs = synth_nuclei_records(12, np.random.default_rng(4), 48)
    tr, va, te_a, te_b = recs[:6], recs[6:8], recs[8:10], recs[10:12]
    kw = dict(eval_size=40, width=2, epochs=3, crop=32, device="cpu")
    seen = []
    real_fit = X.fit_recipe

    def spy(model, train_x, train_y, valid_x, valid_y, **fit_kw):
        seen.append((valid_x, valid_y))
        return real_fit(model, train_x, train_y, valid_x, valid_y, **fit_kw)

    monkeypatch.setattr(X, "fit_recipe", spy)
    res_a, prob_a = X.train_recipe("U-Net", tr, va, te_a, **kw)
    res_b, prob_b = X.train_recipe("U-Net", tr, va, te_b, **kw)
    want_x, want_y = X.recipe_inputs(va)
    test_x, _ = X.recipe_inputs(te_a + te_b)
    for valid_x, valid_y in seen:
        assert len(valid_x) == len(va)
        assert all(np.array_equal(a, b) for a, b in zip(valid_x, want_x))
        assert all(np.array_equal(a, b) for a, b in zip(valid_y, want_y))
        assert not any(np.array_equal(a, b) for a in valid_x for b in test_x), "a test image reached the selection"
    # black box: another test set changes the predictions, never the training curve or the kept epoch
    cols = ["loss", "val_loss", "val_dice"]
    pd.testing.assert_frame_equal(res_a.history[cols], res_b.history[cols])
    assert res_a.best_epoch == res_b.best_epoch == int(res_a.history["val_loss"].idxmin()) + 1
    assert not np.allclose(prob_a, prob_b)


def test_train_recipe_refuses_a_test_set_that_overlaps_validation():
    from lib.nuclei.experiment import train_recipe
    from lib.nuclei.synthetic import synth_nuclei_records

    recs = synth_nuclei_records(8, np.random.default_rng(4), 48)
    with pytest.raises(ValueError, match=r"splits 'valid' and 'test' share 2 ids \('synth-0006', 'synth-0007'\)"):
        train_recipe("U-Net", recs[:6], recs[6:], recs[6:], eval_size=40, width=2, epochs=1, crop=32, device="cpu")
    with pytest.raises(ValueError, match=r"splits 'train' and 'test' share 1 id \('synth-0000'\)"):
        train_recipe("U-Net", recs[:6], recs[6:], recs[:1], eval_size=40, width=2, epochs=1, crop=32, device="cpu")


def test_fit_uses_keras_adam_epsilon():
    rng = np.random.default_rng(0)
    tr = synth_nuclei_arrays(8, rng, 32)
    seen = {}
    orig = torch.optim.Adam

    class Spy(orig):
        def __init__(self, params, **kw):
            seen.update(kw)
            super().__init__(params, **kw)

    torch.optim.Adam = Spy
    try:
        fit_seed_protocol(MultiResUNet(base_filters=4), tr, tr, epochs=1, device="cpu")
    finally:
        torch.optim.Adam = orig
    assert seen == {"lr": 1e-4, "eps": 1e-7}  # the seed's Adam(1e-4) in Keras: epsilon 1e-7


def test_per_image_scores_match_scikit_learn():
    from sklearn.metrics import accuracy_score, f1_score, jaccard_score, precision_score, recall_score

    from lib.nuclei.experiment import per_image_scores

    rng = np.random.default_rng(3)
    t = rng.random((4, 16, 16)) < 0.3
    p = t ^ (rng.random((4, 16, 16)) < 0.2)
    tab = per_image_scores(t, p)
    for i in range(4):
        a, b = t[i].ravel(), p[i].ravel()
        ref = [accuracy_score(a, b), f1_score(a, b), jaccard_score(a, b), recall_score(a, b), precision_score(a, b)]
        np.testing.assert_allclose(tab.iloc[i].to_numpy(), ref, rtol=1e-12)


def _history(loss=(0.6, 0.41, 0.29)):
    import pandas as pd

    return pd.DataFrame({"epoch": [1, 2, 3], "loss": loss, "dice": [0.36, 0.46, 0.53], "iou": [0.22, 0.30, 0.37],
                         "val_loss": [0.62, 0.54, 0.50]})


def test_report_comparison_verdicts():
    import pandas as pd

    from lib.nuclei.experiment import REPORT_LOG, REPORT_TEST_SCORES, log_comparison, report_comparison

    assert REPORT_TEST_SCORES["printout (L601-605)"]["f1"] == 0.81965  # the seed's printout
    assert REPORT_LOG[3]["loss"] == 0.2884
    # every image scores the report's bold list exactly, up to a small symmetric spread: all five reproduced
    bold = REPORT_TEST_SCORES["bold list (L608-612)"]
    d = np.tile([-0.01, 0.01], 50)
    same = pd.DataFrame({k: v + d for k, v in bold.items()})
    tab = report_comparison(same)
    assert tab["verdict"].str.startswith("reproduced").all()
    assert tab.loc["f1", "protocol here"] == pytest.approx(bold["f1"])
    assert tab.loc["f1", "SE"] == pytest.approx(np.std(d, ddof=1) / 10)
    assert tab.loc["f1", "report, printout (L601-605)"] == 0.81965
    # a network that learned nothing (F1 0 on every image) is not reproduced, and the gap is the distance to the range
    nothing = same.assign(f1=0.0, jaccard=0.0, recall=0.0)
    v = report_comparison(nothing).loc["f1", "verdict"]
    assert v == "not reproduced: 0.813 below"  # SE 0: no multiple of it
    with pytest.raises(ValueError, match="no per-image"):
        report_comparison(same.iloc[:0])
    # log rows: per epoch, with the difference; a missing epoch says so
    log = log_comparison(_history(), scaled="U=8, 96 px")
    assert log.loc[(3, "loss"), "report"] == 0.2884 and log.loc[(3, "loss"), "protocol here"] == 0.29
    assert log.loc[(3, "loss"), "verdict"] == "0.002 higher (in kind only: U=8, 96 px)"
    short = log_comparison(_history().iloc[:1])
    assert short.loc[(2, "loss"), "verdict"].startswith("not compared")


def test_protocol_differences_lists_each_scaling():
    from lib.nuclei.experiment import protocol_differences

    tab = protocol_differences(size=96, width=8, params=447_000, epochs=10, epochs_run=10, best_epoch=10,
                               bn_momentum=0.1, recalibrated=True, f1_mean_without_recalibration=0.591,
                               f1_mean=0.593, last_val_loss_drop=0.004)
    assert {"masks", "input side", "width", "epochs", "batch-norm statistics", "framework"} <= set(tab.index)
    assert tab.loc["input side", "this run"] == "96 px" and "447,000" in tab.loc["width", "this run"]
    assert "0.591" in tab.loc["batch-norm statistics", "measured effect"]
    assert "still falling" in tab.loc["epochs", "measured effect"]
