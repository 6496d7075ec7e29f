"""Object metrics against an independent brute-force implementation on hand-built cases."""

import itertools

import numpy as np
import pytest

from lib.nuclei.instances import (
    DSB_THRESHOLDS,
    average_precision,
    connected_instances,
    dsb_score,
    iou_matrix,
    match_counts,
    object_report,
    watershed_instances,
)


def brute_ap(t, p, tau):
    """Independent reference: per-object masks, all IoUs by loops, exhaustive best matching."""
    ti = [t == k for k in np.unique(t) if k]
    pi = [p == k for k in np.unique(p) if k]
    iou = np.array([[np.logical_and(a, b).sum() / np.logical_or(a, b).sum() for b in pi] for a in ti]).reshape(len(ti), len(pi))
    best = 0
    for perm in itertools.permutations(range(max(len(pi), len(ti)))):
        tp = sum(1 for i, j in enumerate(perm) if i < len(ti) and j < len(pi) and iou[i, j] >= tau)
        best = max(best, tp)
    fp, fn = len(pi) - best, len(ti) - best
    return 1.0 if best + fp + fn == 0 else best / (best + fp + fn)


def case():
    t = np.zeros((12, 12), int)
    t[1:5, 1:5] = 1   # 16 px
    t[1:5, 7:11] = 2  # 16 px
    t[7:11, 1:5] = 3  # missed
    p = np.zeros_like(t)
    p[1:5, 1:4] = 5   # IoU 12/16 = 0.75 with 1
    p[2:6, 8:11] = 9  # 12 px, 9 shared with 2: IoU 9/19 < 0.5
    p[8:11, 7:11] = 4  # false positive
    return t, p


def test_iou_matrix_and_ap_vs_bruteforce():
    t, p = case()
    iou = iou_matrix(t, p)
    assert iou.shape == (3, 3)
    # columns follow increasing predicted ids 4, 5, 9
    assert iou[0, 1] == pytest.approx(12 / 16)
    assert iou[1, 2] == pytest.approx(9 / 19)
    assert np.all(iou[:, 0] == 0)
    assert np.all(match_counts(t, p, [0.5, 0.45]) == [[1, 2, 2], [2, 1, 1]])
    for tau in DSB_THRESHOLDS:
        assert average_precision(t, p, [tau])[0] == pytest.approx(brute_ap(t, p, tau))


def test_random_cases_vs_bruteforce():
    rng = np.random.default_rng(3)
    for _ in range(20):
        t = np.zeros((16, 16), int)
        p = np.zeros((16, 16), int)
        for k in range(1, rng.integers(1, 4) + 1):
            r, c = rng.integers(0, 12, 2)
            t[r : r + 4, c : c + 4] = k
        for k in range(1, rng.integers(0, 4) + 1):
            r, c = rng.integers(0, 12, 2)
            p[r : r + rng.integers(2, 5), c : c + rng.integers(2, 5)] = 10 * k
        for tau in (0.5, 0.7, 0.9):
            assert average_precision(t, p, [tau])[0] == pytest.approx(brute_ap(t, p, tau))


def test_perfect_and_empty():
    t, _ = case()
    assert np.all(average_precision(t, t) == 1.0)
    z = np.zeros_like(t)
    assert np.all(average_precision(z, z) == 1.0)
    assert np.all(match_counts(t, z, [0.5]) == [[0, 0, 3]])
    assert dsb_score([t, z], [t, z]) == 1.0


def test_object_report_pooled_counts():
    t, p = case()
    rep = object_report([t, t], [p, t])
    c = match_counts(t, p, [0.5])[0]
    assert rep["n_true"] == 6 and rep["n_pred"] == 3 + 3
    assert rep["ap50_pooled"] == pytest.approx((c[0] + 3) / (c.sum() + 3))
    assert rep["ap50"] == pytest.approx((brute_ap(t, p, 0.5) + 1) / 2)


def test_watershed_splits_touching_discs():
    yy, xx = np.mgrid[:40, :60]
    m = ((yy - 20) ** 2 + (xx - 20) ** 2 < 100) | ((yy - 20) ** 2 + (xx - 37) ** 2 < 100)
    assert connected_instances(m).max() == 1
    ws = watershed_instances(m, min_distance=5)
    assert ws.max() == 2
    assert (ws > 0).sum() == m.sum()
    # isolated tiny component still gets a label
    m2 = m.copy()
    m2[2, 55] = True
    assert watershed_instances(m2, min_distance=5).max() == 3


def test_connected_min_size_and_errors():
    m = np.zeros((10, 10), bool)
    m[0, 0] = True
    m[4:8, 4:8] = True
    assert connected_instances(m).max() == 2
    assert connected_instances(m, min_size=2).max() == 1
    with pytest.raises(ValueError, match="binary"):
        connected_instances(np.full((4, 4), 0.3))
    with pytest.raises(TypeError):
        iou_matrix(np.zeros((3, 3)), np.zeros((3, 3)))


def test_ap50_counts_a_match_with_iou_between_050_and_055():
    """AP@0.5 must use the 0.5 threshold: a pair with IoU 0.52 is a hit at 0.5 and a miss at 0.55."""
    t = np.zeros((14, 14), int)
    t[1:6, 1:6] = 1     # 25 px
    t[8:12, 8:12] = 2   # 16 px
    p = np.zeros_like(t)
    p[1:3, 1:6] = 3     # 10 px inside object 1 ...
    p[3, 1:4] = 3       # ... + 3 px: 13 px, IoU 13/25 = 0.52
    p[8:12, 8:11] = 7   # 12 px inside object 2: IoU 12/16 = 0.75
    p[0, 8:13] = 9      # false positive, touches nothing
    assert iou_matrix(t, p)[0, 0] == pytest.approx(0.52)
    # by hand: at 0.5 two hits, one FP, no FN -> AP 2/3; at 0.55 one hit, two FP, one FN -> 1/4
    np.testing.assert_allclose(average_precision(t, p, [0.5, 0.55]), [2 / 3, 1 / 4])
    assert brute_ap(t, p, 0.5) == pytest.approx(2 / 3) and brute_ap(t, p, 0.55) == pytest.approx(1 / 4)
    empty = np.zeros_like(t)
    rep = object_report([t, empty], [p, empty])
    assert rep["ap50"] == pytest.approx((2 / 3 + 1) / 2)      # per image, then the mean
    assert rep["ap50_pooled"] == pytest.approx(2 / 3)          # TP 2, FP 1, FN 0 summed over images
    assert rep["f1_50"] == pytest.approx(2 * 2 / (2 * 2 + 1))
    assert (rep["n_true"], rep["n_pred"]) == (2, 3)
    per_tau = [np.mean([brute_ap(t, p, tau), 1.0]) for tau in DSB_THRESHOLDS]
    assert rep["dsb"] == pytest.approx(np.mean(per_tau))
