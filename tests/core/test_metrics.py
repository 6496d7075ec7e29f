"""Generic metrics against scikit-learn, SciPy and closed forms."""

import numpy as np
import pytest
import scipy.stats
import sklearn.metrics as skm

from lib.core import metrics as M


@pytest.fixture
def masks():
    rng = np.random.default_rng(0)
    t = rng.random((6, 16, 16)) < 0.3
    p = t ^ (rng.random((6, 16, 16)) < 0.1)
    return t, p


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(M.pixel_accuracy, skm.accuracy_score), (M.precision, skm.precision_score), (M.recall, skm.recall_score),
     (M.f1_score, skm.f1_score), (M.jaccard, skm.jaccard_score)],
)
def test_pooled_and_mean_match_sklearn(masks, ours, theirs):
    t, p = masks
    assert ours(t, p, reduction="pooled") == pytest.approx(theirs(t.ravel(), p.ravel()))
    per = [theirs(ti.ravel(), pi.ravel()) for ti, pi in zip(t, p)]
    assert ours(t, p, reduction="mean") == pytest.approx(np.mean(per))
    assert np.allclose(ours(t, p, reduction="none"), per)


def test_pooled_differs_from_mean_on_unequal_images():
    t = np.zeros((2, 4, 4), bool)
    p = np.zeros((2, 4, 4), bool)
    t[0, :3] = True  # 12 positives, all found
    p[0, :3] = True
    t[1, 0, 0] = True  # 1 positive, missed
    assert M.recall(t, p, reduction="pooled") == pytest.approx(12 / 13)
    assert M.recall(t, p, reduction="mean") == pytest.approx(0.5)


def test_empty_masks_conventions():
    z = np.zeros((4, 4), bool)
    assert M.dice(z, z) == 1.0 and M.jaccard(z, z) == 1.0 and M.precision(z, z) == 1.0 and M.recall(z, z) == 1.0
    one = z.copy()
    one[0, 0] = True
    assert M.precision(z, one) == 0.0 and M.recall(one, z) == 0.0


def test_segmentation_report_keys(masks):
    rep = M.segmentation_report(*masks)
    assert set(rep) == {f"{m}_{r}" for m in ("accuracy", "f1", "jaccard", "recall", "precision")
                        for r in ("pooled", "mean")}


def test_mask_validation():
    with pytest.raises(ValueError, match="binary"):
        M.dice(np.array([[0.2, 1.0]]), np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="same shape"):
        M.dice(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="reduction"):
        M.dice(np.zeros((2, 2)), np.zeros((2, 2)), reduction="sum")


def test_confusion_matrix_and_accuracy():
    rng = np.random.default_rng(1)
    t, p = rng.integers(0, 4, 100), rng.integers(0, 4, 100)
    np.testing.assert_array_equal(M.confusion_matrix(t, p, n_classes=4), skm.confusion_matrix(t, p, labels=range(4)))
    assert M.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    with pytest.raises(ValueError, match="out of range"):
        M.confusion_matrix([0, 5], [0, 1], n_classes=3)
    with pytest.raises(TypeError):
        M.confusion_matrix([0.5], [1.0])


def test_regression_metrics():
    rng = np.random.default_rng(2)
    t = rng.normal(size=50)
    p = t + rng.normal(scale=0.3, size=50)
    assert M.r2_score(t, p) == pytest.approx(skm.r2_score(t, p))
    assert M.rmse(t, p) == pytest.approx(np.sqrt(skm.mean_squared_error(t, p)))
    assert M.mae(t, p) == pytest.approx(skm.mean_absolute_error(t, p))
    assert M.pearson_r(t, p) == pytest.approx(scipy.stats.pearsonr(t, p).statistic)
    assert np.isnan(M.pearson_r(np.ones(3), [1, 2, 3]))


def test_bland_altman_closed_form():
    a = np.array([1.0, 2.0, 3.0, 4.0])
    b = a - np.array([0.1, -0.1, 0.3, 0.1])
    ba = M.bland_altman(a, b)
    d = a - b
    assert ba.bias == pytest.approx(d.mean())
    assert ba.upper - ba.lower == pytest.approx(2 * 1.96 * d.std(ddof=1))
    np.testing.assert_allclose(ba.mean, (a + b) / 2)
    with pytest.raises(ValueError, match="at least two"):
        M.bland_altman([1.0], [1.0])
