"""The nuclei chapter at ci (a small real DSB subset) and, slow, at lab (the issue's goals)."""

import math
import os
from pathlib import Path

import numpy as np
import pytest

from lib.runtime.run import run_study

MIRROR = Path(os.environ.get("STUDIES_DATA_MIRROR", "/nonexistent")) / "nuclei" / "dsb2018"
needs_mirror = pytest.mark.skipif(not (MIRROR / "manifest.csv").is_file(), reason="DSB 2018 mirror not available")


def _otsu_f1_reference(ids, size):
    """Pooled F1 of a per-image Otsu threshold (scikit-image) with minority polarity, scored by scikit-learn."""
    from skimage.filters import threshold_otsu
    from sklearn.metrics import f1_score

    from lib.nuclei import dsb

    arr = dsb.load_arrays(MIRROR, ids, size=size)
    preds = []
    for img in arr.images:
        g = img.astype(np.float64).mean(0)
        fg = g > threshold_otsu(g)
        preds.append(~fg if fg.mean() > 0.5 else fg)
    return f1_score(arr.masks.ravel(), np.stack(preds).ravel()), float(arr.masks.mean())


@needs_mirror
def test_nuclei_ci_real_subset(tmp_path):
    r = run_study("nuclei", "ci", out=tmp_path)
    m = r.metrics
    assert m["mru_params_seed"] == 7_244_774
    assert (m["n_train"], m["n_valid"], m["n_test"]) == (48, 16, 24)
    for k, v in m.items():
        assert math.isfinite(v), k
    # Otsu agrees with an independent scikit-image/scikit-learn computation on the same 24 real test images
    from lib.nuclei import dsb

    test_ids = dsb.dsb_split_ids(MIRROR)["test"][:24]
    ref_f1, fg = _otsu_f1_reference(test_ids, 128)
    assert m["otsu_f1_pooled"] == pytest.approx(ref_f1, abs=0.01)
    all_fg = 2 * fg / (1 + fg)  # F1 of predicting foreground everywhere (about 0.17 on DSB)
    assert m["all_foreground_f1"] == pytest.approx(all_fg, rel=1e-6)
    # a model that learned nothing (all background: F1 0; all foreground: about 0.17) fails these
    for net in ("mru", "unet"):
        assert m[f"{net}_f1_pooled"] > 0.75, net
        assert m[f"{net}_precision_pooled"] > 0.6 and m[f"{net}_recall_pooled"] > 0.6, net
        assert m[f"{net}_ws_ap50"] > 0.45, net  # objects found and separated, not one blob
    # the recipe trains a usable network where the seed's protocol, at the same tiny budget, does not
    assert m["mru_f1_pooled"] > m["mru_seedp_f1_pooled"] + 0.2
    # ... but the report's protocol row exists and beats a network that learned nothing (all foreground: ~0.17)
    assert {f"seedproto_{c}_mean" for c in ("accuracy", "f1", "jaccard", "recall", "precision")} <= set(m)
    assert m["seedproto_f1_pooled"] > all_fg + 0.1 and m["seedproto_f1_mean"] == m["mru_seedp_f1_mean"]
    assert m["seed_f1_from_pr"] == pytest.approx(2 * 0.784 * 0.891 / (0.784 + 0.891))
    assert (tmp_path / "figures" / "nuclei_triptych.png").is_file()


@pytest.fixture(scope="module")
def lab_metrics(tmp_path_factory):
    return run_study("nuclei", "lab", out=tmp_path_factory.mktemp("nuclei-lab")).metrics


@pytest.mark.slow
@needs_mirror
def test_nuclei_lab_results(lab_metrics):
    """What the lab run establishes on the 134 real test images (measured margins, see the chapter)."""
    m = lab_metrics
    assert m["n_test"] == 134
    assert m["otsu_f1_pooled"] == pytest.approx(_otsu_f1_reference(dsb_test_ids(), 256)[0], abs=0.01)
    assert m["mru_f1_mean"] > 0.820  # the seed's reported per-image mean F1
    # the report's protocol at the lab scale (U=8, 96 px, 10 epochs of Adam 1e-4) learns, but not to the report's
    # level (2026-12-08: per-image F1 0.59 at 96 px; 0.64 at 128 px): the verdict the chapter prints
    assert 0.45 < m["seedproto_f1_mean"] < 0.80
    assert m["seedproto_accuracy_mean"] > m["all_background_accuracy"]
    assert m["mru_ws_ap50"] > m["otsu_ws_ap50"] and m["mru_ws_dsb"] > m["otsu_ws_dsb"]
    assert m["unet_f1_pooled"] > 0.85


@pytest.mark.slow
@needs_mirror
@pytest.mark.xfail(strict=False, reason=(
    "lab misses the issue's goals (2026-12-08, seed 0 at 1 thread, the same on a fresh clone of ae3ea77): pooled F1 "
    "0.883 (goal 0.90), Jaccard 0.791 (0.82), Otsu + 1.7 points (+3), watershed AP@0.5 0.679 (0.75); on "
    "2026-12-04, before the seeds moved to SeedSequence and the schedule to lib.core.schedules (5c59c44), seeds "
    "0-2 gave 0.8982 +- 0.0009; see the chapter's verdict box"))
def test_nuclei_lab_goals(lab_metrics):
    """The issue's goals at lab: pooled F1 >= 0.90, Jaccard >= 0.82, Otsu + 3 points, AP@0.5 >= 0.75."""
    m = lab_metrics
    assert m["mru_f1_pooled"] >= 0.90
    assert m["mru_jaccard_pooled"] >= 0.82
    assert m["mru_f1_pooled"] >= m["otsu_f1_pooled"] + 0.03
    assert m["mru_ws_ap50"] >= 0.75


def dsb_test_ids():
    from lib.nuclei import dsb

    return dsb.dsb_split_ids(MIRROR)["test"]
