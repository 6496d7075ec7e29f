"""Vectorised vs naive object matching and Otsu on 134 images of 256x256.

``iou_matrix`` builds all IoUs from one joint label histogram; the naive version loops over
object pairs with boolean masks. ``otsu_thresholds`` handles a whole batch at once; the naive
version calls ``skimage.filters.threshold_otsu`` per image.
Usage: ``python benchmarks/nuclei_metrics.py``.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
from skimage.filters import threshold_otsu

from lib.nuclei.instances import connected_instances, iou_matrix
from lib.nuclei.otsu import otsu_segment, otsu_thresholds
from lib.nuclei.synthetic import synth_nuclei_arrays


def naive_iou(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    ti, pi = [k for k in np.unique(t) if k], [k for k in np.unique(p) if k]
    out = np.zeros((len(ti), len(pi)))
    for a, i in enumerate(ti):
        mi = t == i
        for b, j in enumerate(pi):
            mj = p == j
            inter = np.count_nonzero(mi & mj)
            if inter:
                out[a, b] = inter / np.count_nonzero(mi | mj)
    return out


def timeit(fn, repeat: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def main() -> None:
    arr = synth_nuclei_arrays(134, np.random.default_rng(0), 256)
    pred = [connected_instances(m) for m in otsu_segment(arr.images)]
    gray = arr.images.astype(float).mean(1)
    sub = slice(0, 20)
    rows = [
        {"task": "IoU matrices, 20 images", "vectorised s": timeit(lambda: [iou_matrix(t, p) for t, p in zip(arr.labels[sub], pred[sub])]),
         "naive s": timeit(lambda: [naive_iou(t, p) for t, p in zip(arr.labels[sub], pred[sub])])},
        {"task": "Otsu thresholds, 134 images", "vectorised s": timeit(lambda: otsu_thresholds(gray)),
         "naive s": timeit(lambda: [threshold_otsu(g) for g in gray])},
    ]
    df = pd.DataFrame(rows)
    df["speed-up"] = df["naive s"] / df["vectorised s"]
    print(df.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
