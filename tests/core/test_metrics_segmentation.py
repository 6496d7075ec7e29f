"""Pixel metrics used by the nuclei chapter vs scikit-learn (pooled and per-image, as the seed)."""

import numpy as np
import pytest
from sklearn import metrics as skm

from lib.core.metrics import segmentation_report


def test_pooled_and_per_image_vs_sklearn():
    rng = np.random.default_rng(0)
    t = rng.random((5, 16, 16)) < 0.2
    p = t ^ (rng.random((5, 16, 16)) < 0.1)
    rep = segmentation_report(t, p)
    fns = {"accuracy": skm.accuracy_score, "f1": skm.f1_score, "jaccard": skm.jaccard_score,
           "recall": skm.recall_score, "precision": skm.precision_score}
    for name, fn in fns.items():
        assert rep[f"{name}_pooled"] == pytest.approx(fn(t.ravel(), p.ravel()))
        # the seed's aggregation: sklearn per image, then the mean
        assert rep[f"{name}_mean"] == pytest.approx(np.mean([fn(a.ravel(), b.ravel()) for a, b in zip(t, p)]))
