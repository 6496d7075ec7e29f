"""Lesion labelling on perfusion maps: relative maps, clinical thresholds, volumes, Dice.

Two rule sets:

* ``"tmax"`` (RAPID-style, for methods that give Tmax): core = rCBF < 30 % of the
  contralateral normal value; penumbra = Tmax > 6 s minus core.
* ``"paper"`` (what Gava et al.'s raters segmented, for CBV/CBF/TTP maps such as the CNN's):
  core on the CBV map = rCBV < 60 %; hypoperfusion on the CBF/TTP maps = TTP delayed by more
  than 3 s against the contralateral side or rCBF < 50 %; penumbra = hypoperfusion minus core.
* ``"mtt"`` (CBV/CBF only, Wintermark et al. 2006 style): core = rCBV < 60 %; penumbra =
  relative MTT (``60 CBV / CBF``, central volume theorem) above 145 % minus core.

"Contralateral" is the mirror image about the vertical midline of the image (the phantom
is left-right symmetric), compared after a masked Gaussian smoothing so that grey and white
matter are compared with their homologues rather than with a hemisphere mean.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from scipy import ndimage

from lib.core import metrics

__all__ = [
    "masked_smooth",
    "relative_to_contralateral",
    "delay_to_contralateral",
    "remove_small",
    "lesion_labels",
    "lesion_volume_ml",
    "lesion_agreement",
]


def masked_smooth(x: np.ndarray, mask: np.ndarray, sigma_px: float) -> np.ndarray:
    """Normalised convolution: Gaussian mean of ``x`` over ``mask`` pixels, shape ``(..., H, W)``."""
    x = np.asarray(x, dtype=np.float64)
    m = np.asarray(mask, dtype=np.float64)
    if x.shape != m.shape:
        raise ValueError(f"map and mask shapes differ: {x.shape} vs {m.shape}")
    if sigma_px <= 0:
        return np.where(m > 0, x, 0.0)
    sig = (0,) * (x.ndim - 2) + (sigma_px, sigma_px)
    num = ndimage.gaussian_filter(x * m, sig, mode="constant")
    den = ndimage.gaussian_filter(m, sig, mode="constant")
    return np.where(den > 1e-3, num / np.maximum(den, 1e-3), 0.0)


def relative_to_contralateral(x: np.ndarray, brain: np.ndarray, *, sigma_px: float = 1.5,
                              ref_sigma_px: float = 3.0) -> np.ndarray:
    """Ratio of a map to its mirrored (contralateral) counterpart, shape ``(..., H, W)``.

    ``masked_smooth(x, sigma_px) / masked_smooth(flip(x), ref_sigma_px)`` inside ``brain``
    (0 outside); the reference uses the mirrored brain mask.
    """
    brain = np.asarray(brain, bool)
    xs = masked_smooth(x, brain, sigma_px)
    ref = masked_smooth(np.flip(x, -1), np.flip(brain, -1), ref_sigma_px)
    r = np.where(brain & (ref > 1e-6), xs / np.maximum(ref, 1e-6), 0.0)
    return r


def delay_to_contralateral(x: np.ndarray, brain: np.ndarray, *, sigma_px: float = 1.5,
                           ref_sigma_px: float = 3.0) -> np.ndarray:
    """Difference of a timing map (TTP, Tmax; s) to its mirrored counterpart, 0 outside ``brain``."""
    brain = np.asarray(brain, bool)
    xs = masked_smooth(x, brain, sigma_px)
    ref = masked_smooth(np.flip(x, -1), np.flip(brain, -1), ref_sigma_px)
    return np.where(brain, xs - ref, 0.0)


def remove_small(mask: np.ndarray, min_px: int) -> np.ndarray:
    """Drop 8-connected components smaller than ``min_px`` pixels, per 2-D slice (``(..., H, W)``)."""
    mask = np.asarray(mask, bool)
    if min_px <= 1:
        return mask.copy()
    flat = mask.reshape(-1, *mask.shape[-2:])
    out = np.zeros_like(flat)
    for i, m in enumerate(flat):
        lab, n = ndimage.label(m, structure=np.ones((3, 3)))
        if n:
            sizes = np.bincount(lab.ravel())
            keep = sizes >= min_px
            keep[0] = False
            out[i] = keep[lab]
    return out.reshape(mask.shape)


def lesion_labels(
    maps: dict[str, np.ndarray],
    brain: np.ndarray,
    *,
    rule: Literal["tmax", "paper", "mtt"] = "paper",
    core_rcbf: float = 0.30,
    tmax_s: float = 6.0,
    core_rcbv: float = 0.60,
    ttp_delay_s: float = 3.0,
    hypo_rcbf: float = 0.50,
    rmtt_threshold: float = 1.45,
    min_px: int = 4,
    sigma_px: float = 1.5,
    ref_sigma_px: float = 3.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Core and penumbra masks from perfusion maps.

    Parameters
    ----------
    maps : dict
        ``"cbf"`` (ml/100 g/min) and, for ``rule="tmax"``, ``"tmax"`` (s); for ``rule="paper"``,
        ``"cbv"`` (ml/100 g), ``"cbf"`` and ``"ttp"`` (s); for ``rule="mtt"``, ``"cbv"`` and ``"cbf"``.
        Arrays of shape ``(..., H, W)``.
    brain : ndarray of bool, same shape
        Brain-tissue mask (labels are restricted to it).
    rule : {"tmax", "paper", "mtt"}
        Threshold rule set (see the module docstring).
    min_px : int
        Components smaller than this are removed.
    sigma_px, ref_sigma_px : float
        Gaussian smoothing of the map and of its mirrored reference, pixels.

    Returns
    -------
    core, penumbra : ndarray of bool
    """
    brain = np.asarray(brain, bool)
    need = {"tmax": ("cbf", "tmax"), "paper": ("cbv", "cbf", "ttp"), "mtt": ("cbv", "cbf")}
    if rule not in need:
        raise ValueError(f"rule must be 'tmax', 'paper' or 'mtt', got {rule!r}")
    missing = [k for k in need[rule] if k not in maps]
    if missing:
        raise ValueError(f"rule {rule!r} needs maps {need[rule]}; missing {missing}")
    if rule == "tmax":
        rcbf = relative_to_contralateral(maps["cbf"], brain, sigma_px=sigma_px, ref_sigma_px=ref_sigma_px)
        core = brain & (rcbf < core_rcbf)
        hypo = brain & (masked_smooth(maps["tmax"], brain, sigma_px) > tmax_s)
    elif rule == "mtt":
        sm = dict(sigma_px=sigma_px, ref_sigma_px=ref_sigma_px)
        rcbv = relative_to_contralateral(maps["cbv"], brain, **sm)
        cbv_s = masked_smooth(maps["cbv"], brain, sigma_px)
        cbf_s = masked_smooth(maps["cbf"], brain, sigma_px)
        mtt = np.where(cbf_s > 1e-3, 60.0 * cbv_s / np.maximum(cbf_s, 1e-3), 0.0)
        rmtt = relative_to_contralateral(mtt, brain, sigma_px=0.0, ref_sigma_px=ref_sigma_px)
        core = brain & (rcbv < core_rcbv)
        hypo = brain & (rmtt > rmtt_threshold)
    else:
        sm = dict(sigma_px=sigma_px, ref_sigma_px=ref_sigma_px)
        rcbv = relative_to_contralateral(maps["cbv"], brain, **sm)
        rcbf = relative_to_contralateral(maps["cbf"], brain, **sm)
        dttp = delay_to_contralateral(maps["ttp"], brain, **sm)
        core = brain & (rcbv < core_rcbv)
        hypo = brain & ((dttp > ttp_delay_s) | (rcbf < hypo_rcbf))
    core = remove_small(core, min_px)
    pen = remove_small(hypo & ~core, min_px)
    return core, pen


def lesion_volume_ml(mask: np.ndarray, pixel_mm: float, slice_mm: float) -> np.ndarray:
    """Lesion volume per slice (ml) of masks ``(..., H, W)``: pixel count x pixel area x slice thickness."""
    m = np.asarray(mask, bool)
    return m.reshape(*m.shape[:-2], -1).sum(-1) * pixel_mm**2 * slice_mm / 1000.0


def lesion_agreement(
    truth: np.ndarray, pred: np.ndarray, groups: np.ndarray, pixel_mm: float, slice_mm: float
) -> dict[str, float]:
    """Dice and volume agreement of lesion masks per subject (groups of slices), as in the paper.

    Parameters
    ----------
    truth, pred : ndarray of bool, shape (N, H, W)
    groups : ndarray of int, shape (N,)
        Subject index of every slice; Dice and volumes are computed per subject over its slices.

    Returns
    -------
    dict
        ``dice`` (mean over subjects with a true lesion), ``dice_sd``, ``r`` (Pearson r of
        subject volumes, ml), ``bias`` and ``loa`` (Bland–Altman bias and half-width of the
        95 % limits, ml), ``n`` (subjects with a lesion), and arrays ``vol_true``, ``vol_pred``.
    """
    truth = np.asarray(truth, bool)
    pred = np.asarray(pred, bool)
    groups = np.asarray(groups)
    if truth.shape != pred.shape or truth.shape[0] != groups.size:
        raise ValueError("truth and pred must have the same (N, H, W) shape and groups length N")
    ids = np.unique(groups)
    vt = np.array([lesion_volume_ml(truth[groups == g], pixel_mm, slice_mm).sum() for g in ids])
    vp = np.array([lesion_volume_ml(pred[groups == g], pixel_mm, slice_mm).sum() for g in ids])
    d = np.array([
        float(metrics.dice(truth[groups == g].reshape(1, -1), pred[groups == g].reshape(1, -1), reduction="pooled"))
        for g in ids
    ])
    has = vt > 0
    out: dict = {"n": int(has.sum()), "vol_true": vt, "vol_pred": vp}
    out["dice"] = float(d[has].mean()) if has.any() else float("nan")
    out["dice_sd"] = float(d[has].std()) if has.any() else float("nan")
    out["r"] = metrics.pearson_r(vt, vp) if ids.size > 1 else float("nan")
    if ids.size > 1:
        ba = metrics.bland_altman(vp, vt)
        out["bias"], out["loa"] = ba.bias, 1.96 * ba.sd
    else:
        out["bias"], out["loa"] = float("nan"), float("nan")
    return out
