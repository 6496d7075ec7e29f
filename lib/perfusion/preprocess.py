"""CT-perfusion preprocessing: motion correction, bilateral filter, brain mask, AIF/VOF.

The steps mirror the UniToBrain pipeline that produced the paper's network input
(``MOL-XXX_Registered_Filtered_3mm_20HU``): rigid registration of every frame to the first
(SimpleITK, 2-D Euler transform, mean-squares metric), a bilateral filter with a 3 mm
spatial and a 20 HU range sigma, then a brain mask and automatic arterial/venous input
functions with partial-volume scaling of the AIF to the VOF area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "register_frames",
    "bilateral_filter",
    "brain_mask",
    "InputFunctions",
    "select_input_functions",
]


def _check_frames(frames: np.ndarray) -> np.ndarray:
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim != 3:
        raise ValueError(f"frames must have shape (T, H, W), got {x.shape}; loop over slices for 4-D input")
    if not np.all(np.isfinite(x)):
        raise ValueError("frames contain NaN or inf")
    return x


def register_frames(
    frames: np.ndarray,
    spacing_mm: float = 1.0,
    *,
    iterations: int = 60,
    return_params: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Rigidly register every frame to frame 0 (SimpleITK, Euler 2-D, mean squares).

    Parameters
    ----------
    frames : ndarray, shape (T, H, W)
        Frames in HU.
    spacing_mm : float
        Pixel spacing, mm.
    iterations : int
        Maximum optimiser iterations per frame.
    return_params : bool
        Also return the fitted ``(angle_rad, tx_mm, ty_mm)`` per frame (moving -> fixed).

    Returns
    -------
    registered : ndarray, shape (T, H, W), float32
    params : ndarray, shape (T, 3), if ``return_params``
    """
    import SimpleITK as sitk

    x = _check_frames(frames)
    # clip the skull/air range so bone edges do not dominate, but keep them as landmarks
    def img(a: np.ndarray) -> sitk.Image:
        im = sitk.GetImageFromArray(np.clip(a, -200.0, 1500.0).astype(np.float32))
        im.SetSpacing((spacing_mm, spacing_mm))
        return im

    fixed = img(x[0])
    out = np.empty_like(x)
    out[0] = x[0]
    params = np.zeros((x.shape[0], 3))
    for t in range(1, x.shape[0]):
        moving = img(x[t])
        init = sitk.CenteredTransformInitializer(
            fixed, moving, sitk.Euler2DTransform(), sitk.CenteredTransformInitializerFilter.GEOMETRY
        )
        reg = sitk.ImageRegistrationMethod()
        reg.SetMetricAsMeanSquares()
        reg.SetInterpolator(sitk.sitkLinear)
        reg.SetOptimizerAsRegularStepGradientDescent(
            learningRate=1.0, minStep=1e-4, numberOfIterations=iterations, gradientMagnitudeTolerance=1e-8
        )
        reg.SetOptimizerScalesFromPhysicalShift()
        reg.SetInitialTransform(init, inPlace=False)
        tr = reg.Execute(fixed, moving)
        moving_full = sitk.GetImageFromArray(x[t])
        moving_full.SetSpacing((spacing_mm, spacing_mm))
        res = sitk.Resample(moving_full, fixed, tr, sitk.sitkLinear, float(np.median(x[t][:, 0])))
        out[t] = sitk.GetArrayFromImage(res)
        if tr.GetName() == "CompositeTransform":
            tr = sitk.CompositeTransform(tr).GetNthTransform(0)
        p = tr.GetParameters()
        params[t] = p[:3]
    return (out, params) if return_params else out


def bilateral_filter(frames: np.ndarray, spacing_mm: float = 1.0, *, domain_mm: float = 3.0,
                     range_hu: float = 20.0) -> np.ndarray:
    """Edge-preserving bilateral filter of every frame (SimpleITK), as ``Filtered_3mm_20HU``.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W)
    spacing_mm : float
        Pixel spacing, mm (the spatial sigma is in mm).
    domain_mm, range_hu : float
        Spatial and intensity Gaussian sigmas.
    """
    import SimpleITK as sitk

    x = _check_frames(frames)
    if domain_mm <= 0 or range_hu <= 0:
        raise ValueError("domain_mm and range_hu must be positive")
    out = np.empty_like(x)
    f = sitk.BilateralImageFilter()
    f.SetDomainSigma(domain_mm)
    f.SetRangeSigma(range_hu)
    for t in range(x.shape[0]):
        im = sitk.GetImageFromArray(x[t])
        im.SetSpacing((spacing_mm, spacing_mm))
        out[t] = sitk.GetArrayFromImage(f.Execute(im))
    return out


def brain_mask(frames: np.ndarray, n_baseline: int, *, tissue_hu: tuple[float, float] = (18.0, 60.0),
               vessel_enhancement: float = 60.0, min_fraction: float = 0.02) -> np.ndarray:
    """Brain parenchyma mask from the pre-contrast mean and the peak enhancement.

    Keeps pixels whose baseline is in ``tissue_hu`` (grey and white matter; excludes CSF, bone,
    air) and whose peak enhancement is below ``vessel_enhancement`` HU (excludes vessels),
    fills holes and keeps the largest connected component.

    Returns
    -------
    ndarray, shape (H, W), bool
    """
    x = _check_frames(frames)
    if not 1 <= n_baseline < x.shape[0]:
        raise ValueError(f"n_baseline must be in [1, T), got {n_baseline} for T = {x.shape[0]}")
    base = x[:n_baseline].mean(0)
    peak = (x - base).max(0)
    m = (base > tissue_hu[0]) & (base < tissue_hu[1]) & (peak < vessel_enhancement)
    m = ndimage.binary_opening(m, iterations=1)
    lab, n = ndimage.label(m)
    if n == 0:
        raise ValueError("no brain-tissue pixels found; check that frames are in HU (not raw stored values)")
    sizes = ndimage.sum(m, lab, index=np.arange(1, n + 1))
    keep = np.isin(lab, 1 + np.flatnonzero(sizes >= max(min_fraction * m.size, sizes.max() * 0.05)))
    return ndimage.binary_fill_holes(keep) & m | keep


@dataclass
class InputFunctions:
    """Automatically selected input functions (HU above baseline, shape ``(T,)``).

    Attributes
    ----------
    aif : ndarray
        Partial-volume-corrected AIF (``aif_raw * pv_scale``).
    aif_raw, vof : ndarray
    pv_scale : float
        ``area(VOF) / area(AIF)`` (clamped to >= 1).
    aif_mask, vof_mask : ndarray, shape (H, W), bool
    """

    aif: np.ndarray
    aif_raw: np.ndarray
    vof: np.ndarray
    pv_scale: float
    aif_mask: np.ndarray
    vof_mask: np.ndarray


def select_input_functions(
    frames: np.ndarray,
    n_baseline: int,
    dt: float,
    *,
    n_candidates: int = 100,
    n_aif: int = 8,
    n_vof: int = 8,
    ttp_tolerance: float = 1.5,
    head_hu: tuple[float, float] = (-100.0, 150.0),
    min_peak_fraction: float = 0.3,
    bone_margin_px: int = 2,
) -> InputFunctions:
    """Pick AIF and VOF pixels automatically and scale the AIF to the VOF area.

    The ``n_candidates`` pixels with the highest peak enhancement inside the head (baseline in
    ``head_hu``, which excludes bone and air) are the vessel candidates (the paper's
    "100 voxels sample"); candidates peaking below ``min_peak_fraction`` of the highest peak
    are dropped (noisy tissue), and so are pixels within ``bone_margin_px`` of bone or air.
    Peaks and times to peak use a 3-tap temporally smoothed curve. The AIF is the mean of the
    ``n_aif`` highest-peak candidates whose time to peak is within ``ttp_tolerance`` s of the
    earliest candidate; the VOF the mean of
    the ``n_vof`` candidates with the largest area among those peaking at least
    ``ttp_tolerance`` s after the AIF.

    Parameters
    ----------
    frames : ndarray, shape (T, H, W)
        Frames in HU (registered and filtered).
    n_baseline : int
        Number of pre-contrast frames.
    dt : float
        Frame interval, s.
    """
    x = _check_frames(frames)
    T, H, W = x.shape
    base = x[:n_baseline].mean(0)
    enh = (x - base).reshape(T, -1)
    head = (base > head_hu[0]) & (base < head_hu[1])
    if bone_margin_px > 0:  # pixels next to bone/air carry motion and partial-volume edges
        head &= ~ndimage.binary_dilation(~head, iterations=bone_margin_px)
    head = head.ravel()
    if head.sum() < n_candidates:
        raise ValueError(f"only {head.sum()} head pixels; lower n_candidates (= {n_candidates})")
    sm = np.concatenate([enh[:1], enh, enh[-1:]])
    sm = 0.25 * sm[:-2] + 0.5 * sm[1:-1] + 0.25 * sm[2:]  # 3-tap temporal smoothing
    peak = np.where(head, sm.max(0), -np.inf)
    cand = np.argsort(peak)[::-1][:n_candidates]
    cand = cand[peak[cand] >= min_peak_fraction * peak[cand[0]]]  # vessels, not noisy tissue
    ttp = sm[:, cand].argmax(0) * dt
    early = cand[ttp <= ttp.min() + ttp_tolerance]
    aif_idx = early[np.argsort(peak[early])[::-1][:n_aif]]
    aif_ttp = sm[:, aif_idx].mean(1).argmax() * dt
    late = cand[ttp >= aif_ttp + ttp_tolerance]
    if late.size == 0:
        raise ValueError("no venous candidates peak after the AIF; increase n_candidates or check the timing")
    area = np.trapezoid(np.clip(enh[:, late], 0, None), dx=dt, axis=0)
    vof_idx = late[np.argsort(area)[::-1][:n_vof]]
    aif_raw = enh[:, aif_idx].mean(1)
    vof = enh[:, vof_idx].mean(1)
    scale = float(max(np.trapezoid(np.clip(vof, 0, None), dx=dt) / np.trapezoid(np.clip(aif_raw, 0, None), dx=dt), 1.0))
    am = np.zeros(H * W, bool)
    am[aif_idx] = True
    vm = np.zeros(H * W, bool)
    vm[vof_idx] = True
    return InputFunctions(aif_raw * scale, aif_raw, vof, scale, am.reshape(H, W), vm.reshape(H, W))
