"""Generic evaluation metrics shared by the studies.

Binary segmentation metrics come in two flavours that papers often mix up:

* **pooled** (``reduction="pooled"``): one confusion matrix summed over every pixel
  of every image, then the ratio;
* **per-image mean** (``reduction="mean"``): the ratio per image, then the mean over
  images (images where the ratio is undefined, e.g. no positives at all for recall,
  are counted as 1 when prediction and truth agree that there is nothing, else 0).

Regression and agreement metrics (R², RMSE, Pearson r, Bland–Altman) work on flat
arrays of paired values. Every function accepts NumPy arrays or anything
``numpy.asarray`` understands (torch tensors should be moved to the CPU first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BinaryCounts",
    "binary_counts",
    "pixel_accuracy",
    "precision",
    "recall",
    "f1_score",
    "dice",
    "jaccard",
    "segmentation_report",
    "confusion_matrix",
    "accuracy",
    "r2_score",
    "rmse",
    "mae",
    "pearson_r",
    "BlandAltman",
    "bland_altman",
    "relative_l2",
    "soft_dice_loss",
    "image_regression_report",
]

Reduction = Literal["pooled", "mean", "none"]


@dataclass(frozen=True)
class BinaryCounts:
    """True/false positive/negative counts, each of shape ``(n_images,)``."""

    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray
    tn: np.ndarray


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}"
        )


def _as_bool(x: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isin(arr, (0.0, 1.0))):
        raise ValueError(
            f"{name} must be binary (bool or 0/1); threshold probabilities first, e.g. `{name} > 0.5`"
        )
    if np.issubdtype(arr.dtype, np.integer) and arr.size and (arr.min() < 0 or arr.max() > 1):
        raise ValueError(f"{name} must be binary (0/1); got values in [{arr.min()}, {arr.max()}]")
    return arr.astype(bool)


def binary_counts(y_true: ArrayLike, y_pred: ArrayLike) -> BinaryCounts:
    """Confusion counts per image for binary masks.

    Parameters
    ----------
    y_true, y_pred : array_like of bool or {0, 1}
        Masks of shape ``(H, W)`` (one image) or ``(N, ...)`` (a batch; the first axis
        indexes images and all other axes are pooled per image).

    Returns
    -------
    BinaryCounts
        ``tp, fp, fn, tn`` as int64 arrays of shape ``(N,)`` (``N = 1`` for one 2D mask).
    """
    t = _as_bool(y_true, "y_true")
    p = _as_bool(y_pred, "y_pred")
    _check_same_shape(t, p, ("y_true", "y_pred"))
    if t.ndim < 2:
        raise ValueError(f"masks must be at least 2-D (H, W) or (N, H, W); got shape {t.shape}")
    if t.ndim == 2:
        t, p = t[None], p[None]
    t = t.reshape(t.shape[0], -1)
    p = p.reshape(p.shape[0], -1)
    tp = np.count_nonzero(t & p, axis=1)
    fp = np.count_nonzero(~t & p, axis=1)
    fn = np.count_nonzero(t & ~p, axis=1)
    tn = np.count_nonzero(~t & ~p, axis=1)
    return BinaryCounts(tp.astype(np.int64), fp.astype(np.int64), fn.astype(np.int64), tn.astype(np.int64))


def _ratio(num: np.ndarray, den: np.ndarray, reduction: Reduction, empty: np.ndarray) -> float | np.ndarray:
    """Ratio with a per-image convention for empty denominators.

    ``empty`` holds, per image, the value to use when ``den == 0`` (1 when prediction
    and truth agree that the quantity is absent, else 0).
    """
    if reduction == "pooled":
        n, d = num.sum(), den.sum()
        return float(n / d) if d > 0 else float(empty.all())
    with np.errstate(invalid="ignore", divide="ignore"):
        per = np.where(den > 0, num / np.maximum(den, 1), empty.astype(float))
    if reduction == "none":
        return per
    if reduction == "mean":
        return float(per.mean())
    raise ValueError(f"reduction must be 'pooled', 'mean' or 'none', got {reduction!r}")


def pixel_accuracy(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: Reduction = "pooled") -> float | np.ndarray:
    """Fraction of correctly classified pixels, ``(tp + tn) / n``."""
    c = binary_counts(y_true, y_pred)
    total = c.tp + c.fp + c.fn + c.tn
    return _ratio(c.tp + c.tn, total, reduction, np.ones_like(total, dtype=bool))


def precision(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: Reduction = "pooled") -> float | np.ndarray:
    """Positive predictive value, ``tp / (tp + fp)``; 1 for an image with no predicted and no true positives."""
    c = binary_counts(y_true, y_pred)
    return _ratio(c.tp, c.tp + c.fp, reduction, c.fn == 0)


def recall(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: Reduction = "pooled") -> float | np.ndarray:
    """Sensitivity, ``tp / (tp + fn)``; 1 for an image with no true and no predicted positives."""
    c = binary_counts(y_true, y_pred)
    return _ratio(c.tp, c.tp + c.fn, reduction, c.fp == 0)


def f1_score(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: Reduction = "pooled") -> float | np.ndarray:
    """F1 score = Dice coefficient, ``2 tp / (2 tp + fp + fn)``; 1 when both masks are empty."""
    c = binary_counts(y_true, y_pred)
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, reduction, np.ones_like(c.tp, dtype=bool))


dice = f1_score


def jaccard(y_true: ArrayLike, y_pred: ArrayLike, *, reduction: Reduction = "pooled") -> float | np.ndarray:
    """Jaccard index (IoU), ``tp / (tp + fp + fn)``; 1 when both masks are empty."""
    c = binary_counts(y_true, y_pred)
    return _ratio(c.tp, c.tp + c.fp + c.fn, reduction, np.ones_like(c.tp, dtype=bool))


def segmentation_report(y_true: ArrayLike, y_pred: ArrayLike) -> dict[str, float]:
    """All five pixel metrics, pooled and per-image mean.

    Returns
    -------
    dict
        Keys ``"<metric>_pooled"`` and ``"<metric>_mean"`` for ``accuracy, f1, jaccard,
        recall, precision``.
    """
    out: dict[str, float] = {}
    for name, fn in (
        ("accuracy", pixel_accuracy),
        ("f1", f1_score),
        ("jaccard", jaccard),
        ("recall", recall),
        ("precision", precision),
    ):
        out[f"{name}_pooled"] = float(fn(y_true, y_pred, reduction="pooled"))
        out[f"{name}_mean"] = float(fn(y_true, y_pred, reduction="mean"))
    return out


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, *, n_classes: int | None = None) -> np.ndarray:
    """Multiclass confusion matrix ``C[i, j]`` = number of samples of true class i predicted as j.

    Parameters
    ----------
    y_true, y_pred : array_like of int, shape (n,)
        Class indices in ``0 .. n_classes - 1``.
    n_classes : int, optional
        Number of classes; default ``max(y_true, y_pred) + 1``.
    """
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    _check_same_shape(t, p, ("y_true", "y_pred"))
    if t.size and (not np.issubdtype(t.dtype, np.integer) or not np.issubdtype(p.dtype, np.integer)):
        raise TypeError("y_true and y_pred must hold integer class indices")
    if t.size and (t.min() < 0 or p.min() < 0):
        raise ValueError("class indices must be non-negative")
    k = int(max(t.max(initial=-1), p.max(initial=-1)) + 1) if n_classes is None else int(n_classes)
    if t.size and max(t.max(), p.max()) >= k:
        raise ValueError(f"class index {max(t.max(), p.max())} out of range for n_classes={k}")
    return np.bincount(t * k + p, minlength=k * k).reshape(k, k)


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of samples whose predicted label equals the true label."""
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    _check_same_shape(t, p, ("y_true", "y_pred"))
    if t.size == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return float(np.mean(t == p))


def _paired(a: ArrayLike, b: ArrayLike, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(a, dtype=np.float64).ravel()
    y = np.asarray(b, dtype=np.float64).ravel()
    _check_same_shape(x, y, names)
    if x.size == 0:
        raise ValueError("metrics of empty arrays are undefined")
    return x, y


def r2_score(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot`` (as scikit-learn, flattened)."""
    t, p = _paired(y_true, y_pred, ("y_true", "y_pred"))
    ss_tot = np.sum((t - t.mean()) ** 2)
    ss_res = np.sum((t - p) ** 2)
    if ss_tot == 0:
        return 1.0 if ss_res == 0 else 0.0
    return float(1.0 - ss_res / ss_tot)


def rmse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Root-mean-square error, in the units of the inputs."""
    t, p = _paired(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error, in the units of the inputs."""
    t, p = _paired(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(np.abs(t - p)))


def pearson_r(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson correlation coefficient of paired samples (NaN if either is constant)."""
    a, b = _paired(x, y, ("x", "y"))
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman agreement statistics of method ``a`` against method ``b``.

    Attributes
    ----------
    bias : float
        Mean difference ``mean(a - b)``.
    sd : float
        Standard deviation of the differences (``ddof=1``).
    lower, upper : float
        95 % limits of agreement, ``bias ∓ 1.96 sd``.
    mean, diff : ndarray, shape (n,)
        Per-pair mean ``(a + b) / 2`` and difference ``a - b`` for plotting.
    """

    bias: float
    sd: float
    lower: float
    upper: float
    mean: np.ndarray
    diff: np.ndarray


def bland_altman(a: ArrayLike, b: ArrayLike) -> BlandAltman:
    """Bland–Altman analysis of paired measurements (Bland & Altman, Lancet 1986).

    Parameters
    ----------
    a, b : array_like, shape (n,)
        Paired measurements of the same quantity by two methods (``n >= 2``).
    """
    x, y = _paired(a, b, ("a", "b"))
    if x.size < 2:
        raise ValueError("Bland–Altman needs at least two pairs")
    d = x - y
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    return BlandAltman(bias, sd, bias - 1.96 * sd, bias + 1.96 * sd, (x + y) / 2, d)


def relative_l2(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
    """Per-sample relative L2 error ``||pred - true||_2 / ||true||_2`` over all but the first axis.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n, ...)

    Returns
    -------
    ndarray, shape (n,)
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    _check_same_shape(t, p, ("y_true", "y_pred"))
    t2, p2 = t.reshape(len(t), -1), p.reshape(len(p), -1)
    return np.linalg.norm(p2 - t2, axis=1) / np.maximum(np.linalg.norm(t2, axis=1), 1e-300)


def soft_dice_loss(y_true: ArrayLike, y_pred: ArrayLike, smooth: float = 1e-5) -> np.ndarray:
    """Per-sample soft Dice loss ``1 - (2 sum(t p) + s) / (sum(t) + sum(p) + s)`` for maps in [0, 1].

    This is the ranking score of the radiative-transfer V-Net notebooks (not a segmentation Dice).
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    _check_same_shape(t, p, ("y_true", "y_pred"))
    t2, p2 = t.reshape(len(t), -1), p.reshape(len(p), -1)
    return 1.0 - (2 * (t2 * p2).sum(1) + smooth) / (t2.sum(1) + p2.sum(1) + smooth)


def image_regression_report(y_true: ArrayLike, y_pred: ArrayLike, *, data_range: float) -> dict[str, np.ndarray]:
    """Per-image scores of a continuous-map reconstruction.

    Parameters
    ----------
    y_true, y_pred : array_like, shape (n, H, W)
    data_range : float
        Dynamic range used by SSIM and PSNR (fixed, e.g. the physical range of the quantity, so that
        scores are comparable across images).

    Returns
    -------
    dict of name -> ndarray (n,)
        ``mse``, ``relative_l2``, ``ssim`` (scikit-image, Gaussian-free 7x7 window), ``psnr`` (dB), ``r2``.
    """
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    _check_same_shape(t, p, ("y_true", "y_pred"))
    if t.ndim != 3:
        raise ValueError(f"expected (n, H, W) arrays, got shape {t.shape}")
    win = min(7, t.shape[1], t.shape[2])
    win -= 1 - win % 2
    return {
        "mse": ((t - p) ** 2).reshape(len(t), -1).mean(1),
        "relative_l2": relative_l2(t, p),
        "ssim": np.array([structural_similarity(a, b, data_range=data_range, win_size=win) for a, b in zip(t, p)]),
        "psnr": np.array([peak_signal_noise_ratio(a, b, data_range=data_range) for a, b in zip(t, p)]),
        "r2": np.array([r2_score(a, b) for a, b in zip(t, p)]),
    }
