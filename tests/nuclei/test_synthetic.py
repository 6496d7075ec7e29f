"""Synthetic fluorescence nuclei: determinism, exact labels, statistics in the calibrated ranges."""

import numpy as np
import pytest

from lib.core.metrics import f1_score
from lib.nuclei.otsu import otsu_segment
from lib.nuclei.synthetic import label_statistics, synth_nuclei_arrays, synth_nuclei_image


def test_deterministic_and_types():
    a = synth_nuclei_image(np.random.default_rng(5), 64)
    b = synth_nuclei_image(np.random.default_rng(5), 64)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[0].shape == (64, 64, 3) and a[0].dtype == np.uint8 and a[1].dtype == np.int32
    ids = np.unique(a[1])
    np.testing.assert_array_equal(ids, np.arange(ids.size))  # consecutive labels
    with pytest.raises(TypeError):
        synth_nuclei_image(0, 64)


def test_statistics_in_calibrated_ranges():
    arr = synth_nuclei_arrays(24, np.random.default_rng(0), 256)
    stats = [label_statistics(l) for l in arr.labels]
    counts = np.array([s["count"] for s in stats])
    area = np.concatenate([s["area"] for s in stats])
    ecc = np.concatenate([s["eccentricity"] for s in stats])
    touching = np.mean([s["touching"] for s in stats])
    fg = np.array([s["foreground"] for s in stats])
    # DSB fluorescence at 256x256 (research note): count median 25, area median 110 px,
    # eccentricity median 0.73, touching fraction ~0.19, foreground median 0.09
    assert 12 <= np.median(counts) <= 45
    assert 60 <= np.median(area) <= 180
    assert 0.6 <= np.median(ecc) <= 0.8
    assert 0.05 <= touching <= 0.35
    assert 0.02 <= np.median(fg) <= 0.2
    g = arr.images[:, 0].astype(float)
    bg = np.median([np.median(g[i][~arr.masks[i]]) for i in range(len(arr))])
    fgv = np.median([np.median(g[i][arr.masks[i]]) for i in range(len(arr)) if arr.masks[i].any()])
    assert 2 <= bg <= 15 and 20 <= fgv <= 115
    # the task is neither trivial nor hopeless for Otsu (per-image median Dice)
    d = np.median(f1_score(arr.masks, otsu_segment(arr.images), reduction="none"))
    assert 0.7 <= d <= 0.97
