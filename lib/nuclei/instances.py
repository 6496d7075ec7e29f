"""Nucleus instances from binary predictions, and object-level (instance) metrics.

A binary network (U-Net, MultiResUNet) outputs a foreground map; biologists count nuclei, so the
map is split into instances by connected components (:func:`connected_instances`) or by a
distance-transform marker watershed that also separates touching nuclei
(:func:`watershed_instances`).

Object metrics follow the 2018 Data Science Bowl (Caicedo et al. 2019) and StarDist: predicted
and true objects are matched one-to-one (Hungarian assignment on IoU) and a match counts when its
IoU is at least ``tau``; per image ``AP_tau = TP / (TP + FP + FN)``. The DSB score of an image is
the mean of ``AP_tau`` over ``tau = 0.50, 0.55, ..., 0.95``; the dataset score is the mean over
images. An image with neither true nor predicted objects scores 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy import ndimage, optimize

__all__ = [
    "DSB_THRESHOLDS",
    "connected_instances",
    "watershed_instances",
    "relabel_sequential",
    "iou_matrix",
    "match_counts",
    "average_precision",
    "dsb_score",
    "object_report",
]

#: IoU thresholds of the DSB 2018 score: 0.50, 0.55, ..., 0.95.
DSB_THRESHOLDS: np.ndarray = np.round(np.arange(0.5, 0.951, 0.05), 2)


def _as_mask(x: ArrayLike) -> np.ndarray:
    m = np.asarray(x)
    if m.ndim != 2:
        raise ValueError(f"expected one (H, W) mask, got shape {m.shape}")
    if m.dtype != bool:
        if np.issubdtype(m.dtype, np.floating) and not np.all(np.isin(m, (0.0, 1.0))):
            raise ValueError("mask must be binary; threshold probabilities first (e.g. prob > 0.5)")
        m = m.astype(bool)
    return m


def connected_instances(mask: ArrayLike, connectivity: int = 1, min_size: int = 0) -> np.ndarray:
    """Label the connected components of a binary mask.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
    connectivity : {1, 2}
        1: 4-neighbourhood; 2: 8-neighbourhood.
    min_size : int
        Components with fewer pixels are removed (0 keeps all).

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 labels ``1..K`` (0 = background).
    """
    m = _as_mask(mask)
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity}")
    lab, _ = ndimage.label(m, structure=ndimage.generate_binary_structure(2, connectivity))
    if min_size > 0:
        sizes = np.bincount(lab.ravel())
        small = sizes < min_size
        small[0] = False
        lab[small[lab]] = 0
        lab = relabel_sequential(lab)
    return lab.astype(np.int32)


def watershed_instances(
    mask: ArrayLike,
    min_distance: int = 3,
    smoothing: float = 1.0,
    min_size: int = 0,
) -> np.ndarray:
    """Split touching nuclei: marker watershed on the distance transform of the mask.

    Markers are the local maxima of the (Gaussian-smoothed) Euclidean distance to the
    background, at least ``min_distance`` pixels apart, one per connected component at least;
    the watershed floods ``-distance`` inside the mask.

    Parameters
    ----------
    mask : array_like of bool, shape (H, W)
    min_distance : int
        Minimum separation of two markers, pixels (about a nucleus radius).
    smoothing : float
        Gaussian sigma (pixels) applied to the distance map to suppress spurious maxima.
    min_size : int
        Remove resulting instances smaller than this many pixels.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 instance labels.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    m = _as_mask(mask)
    if not m.any():
        return np.zeros(m.shape, np.int32)
    dist = ndimage.distance_transform_edt(m)
    if smoothing > 0:
        dist = ndimage.gaussian_filter(dist, smoothing)
    cc = connected_instances(m)
    peaks = peak_local_max(dist, min_distance=max(int(min_distance), 1), labels=cc, exclude_border=False)
    markers = np.zeros(m.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    # components without a peak (tiny ones) get their own marker
    missing = np.setdiff1d(np.unique(cc[m]), np.unique(cc[markers > 0]))
    if missing.size:
        pos = ndimage.maximum_position(dist, cc, missing)
        for k, (r, c) in enumerate(pos, start=len(peaks) + 1):
            markers[r, c] = k
    lab = watershed(-dist, markers, mask=m).astype(np.int32)
    if min_size > 0:
        sizes = np.bincount(lab.ravel())
        small = sizes < min_size
        small[0] = False
        lab[small[lab]] = 0
    return relabel_sequential(lab)


def relabel_sequential(labels: ArrayLike) -> np.ndarray:
    """Map the non-zero ids of a label image to ``1..K`` (order preserved); 0 stays 0."""
    lab = np.asarray(labels)
    u, inv = np.unique(lab, return_inverse=True)
    if u[0] != 0:
        inv = inv + 1
    return inv.reshape(lab.shape).astype(np.int32)


def iou_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """IoU of every true object with every predicted object.

    Computed from one joint histogram of label pairs (no per-object loops).

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (H, W)
        Instance maps (0 = background; ids need not be consecutive).

    Returns
    -------
    numpy.ndarray
        ``(n_true, n_pred)`` float64 IoU, objects in increasing id order.
    """
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same shape, got {t.shape} and {p.shape}")
    if not (np.issubdtype(t.dtype, np.integer) or t.dtype == bool) or not (np.issubdtype(p.dtype, np.integer) or p.dtype == bool):
        raise TypeError("instance maps must be integer label images (use connected_instances on a binary mask)")
    t, p = relabel_sequential(t), relabel_sequential(p)
    nt, np_ = int(t.max()) + 1, int(p.max()) + 1
    joint = np.bincount((t.ravel().astype(np.int64) * np_ + p.ravel()), minlength=nt * np_).reshape(nt, np_)
    inter = joint[1:, 1:].astype(np.float64)
    at, ap = joint.sum(1)[1:], joint.sum(0)[1:]
    union = at[:, None] + ap[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_counts(y_true: ArrayLike, y_pred: ArrayLike, thresholds: ArrayLike = (0.5,)) -> np.ndarray:
    """True positives, false positives and false negatives at each IoU threshold.

    One-to-one Hungarian matching maximising total IoU; a matched pair counts when its IoU is
    ``>= tau`` (for ``tau > 0.5`` the matching is unique anyway).

    Returns
    -------
    numpy.ndarray
        ``(len(thresholds), 3)`` int64 rows ``(tp, fp, fn)``.
    """
    th = np.atleast_1d(np.asarray(thresholds, dtype=np.float64))
    iou = iou_matrix(y_true, y_pred)
    nt, np_ = iou.shape
    out = np.zeros((th.size, 3), np.int64)
    if nt == 0 or np_ == 0:
        out[:, 1], out[:, 2] = np_, nt
        return out
    out_rows = []
    for tau in th:
        # maximise the number of matches >= tau, ties broken by IoU (StarDist-style)
        hit = (iou >= tau).astype(np.float64)
        cost = -hit * (1.0 + 1e-3 * iou)
        r, c = optimize.linear_sum_assignment(cost)
        tp = int(np.count_nonzero(iou[r, c] >= tau))
        out_rows.append((tp, np_ - tp, nt - tp))
    out[:] = np.array(out_rows)
    return out


def average_precision(y_true: ArrayLike, y_pred: ArrayLike, thresholds: ArrayLike = DSB_THRESHOLDS) -> np.ndarray:
    """Per-threshold ``AP_tau = TP / (TP + FP + FN)`` for one image (1 if both are empty).

    Returns
    -------
    numpy.ndarray
        ``(len(thresholds),)`` float64.
    """
    c = match_counts(y_true, y_pred, thresholds)
    den = c.sum(1)
    return np.where(den > 0, c[:, 0] / np.maximum(den, 1), 1.0)


def dsb_score(y_true: Sequence[ArrayLike], y_pred: Sequence[ArrayLike]) -> float:
    """2018 DSB score: mean over images of the mean ``AP_tau`` over ``tau = 0.5:0.05:0.95``."""
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"need equally many (>0) true and predicted maps, got {len(y_true)} and {len(y_pred)}")
    return float(np.mean([average_precision(t, p).mean() for t, p in zip(y_true, y_pred)]))


def object_report(y_true: Sequence[ArrayLike], y_pred: Sequence[ArrayLike]) -> dict[str, float]:
    """Object metrics over a set of images.

    Returns
    -------
    dict
        ``ap50`` (mean over images of AP at IoU 0.5), ``ap50_pooled`` (TP/(TP+FP+FN) with counts
        summed over images), ``f1_50`` (pooled object F1 at 0.5), ``dsb`` (DSB mean AP
        over IoU 0.5-0.95), ``n_true`` and ``n_pred`` (object counts).
    """
    if len(y_true) != len(y_pred) or len(y_true) == 0:
        raise ValueError(f"need equally many (>0) true and predicted maps, got {len(y_true)} and {len(y_pred)}")
    counts = np.stack([match_counts(t, p, DSB_THRESHOLDS) for t, p in zip(y_true, y_pred)])  # (N, T, 3)
    den = counts.sum(2)
    ap = np.where(den > 0, counts[..., 0] / np.maximum(den, 1), 1.0)  # (N, T)
    tp, fp, fn = counts[:, 0].sum(0)
    return {
        "ap50": float(ap[:, 0].mean()),
        "ap50_pooled": float(tp / max(tp + fp + fn, 1)),
        "f1_50": float(2 * tp / max(2 * tp + fp + fn, 1)),
        "dsb": float(ap.mean()),
        "n_true": int(tp + fn),
        "n_pred": int(tp + fp),
    }
