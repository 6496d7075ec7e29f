"""Digital CT-perfusion brain phantom with known truth (2-D slices over time).

The phantom follows the indicator-dilution model used by every CT-perfusion package:
the tissue enhancement (HU above baseline) of a voxel is

.. math::

    C_t(t) = \\frac{\\rho}{k_H}\\,\\mathrm{CBF}\\,\\bigl(C_a^{\\,d} \\otimes R\\bigr)(t),

with :math:`C_a^{\\,d}` the arterial input function (AIF) delayed by :math:`t_d` and dispersed
by an exponential kernel, :math:`R` a residue function with :math:`R(0)=1` and
:math:`\\int R = \\mathrm{MTT}` (box, exponential or linear shape, drawn per subject so that
no deconvolution model is favoured by construction), CBF in 1/s inside the formula and
ml/100 g/min outside, :math:`\\rho` the brain density (g/ml) and :math:`k_H` the
large-to-small-vessel haematocrit correction. By construction the central volume theorem
holds: ``CBV = CBF * MTT / 60`` (ml/100 g, ml/100 g/min, s).

Anatomy (left-right symmetric apart from texture): skull, cortical grey-matter ribbon with
gyral modulation, deep grey matter, white matter, ventricles, middle- and anterior-cerebral
arteries (partial-volume scaled AIF) and the superior sagittal sinus (VOF). Tissue values
come from the Manhart/Riordan hybrid-phantom table (``TISSUE_VALUES``). A lesion (a
sphere-like region in the MCA territory of one hemisphere, irregular edge) has an infarct
core and a penumbra rim, with CBF/CBV reduced and delay and dispersion rising toward the
centre; a fraction of subjects is normal.

Acquisition: the paper's cine protocol (89 frames at 0.5 s) or the second UniToBrain
(shuttle) protocol (18 frames at 2.81 s); per-frame rigid motion; spatially correlated,
frame-independent Gaussian noise with ``sigma = 103.09 / sqrt(mAs)`` HU at the clinical 0.488 mm
pixel, averaged down for the larger pixels of small phantoms (:func:`pixel_noise_sigma`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from scipy import ndimage

from lib.perfusion.physics import CBF_UNIT, K_H, RHO

__all__ = [
    "Protocol",
    "CINE",
    "SHUTTLE",
    "RHO",
    "K_H",
    "NOISE_K",
    "TISSUE_VALUES",
    "LABELS",
    "gamma_variate",
    "aif_curve",
    "vof_curve",
    "residue",
    "noise_sigma",
    "pixel_noise_sigma",
    "correlated_noise",
    "tissue_curves",
    "Phantom",
    "make_phantom",
]

#: Noise constant K of sigma = K / sqrt(mAs) in HU (ruogufang/pct, human brain).
NOISE_K: float = 103.09

#: Integer tissue labels of :attr:`Phantom.labels`.
LABELS: dict[str, int] = {"air": 0, "skull": 1, "csf": 2, "gm": 3, "wm": 4, "artery": 5, "vein": 6}

#: Normal tissue values: CBF (ml/100 g/min), CBV (ml/100 g), baseline (HU), CBF texture SD (fraction).
TISSUE_VALUES: dict[str, dict[str, float]] = {
    "gm": {"cbf": 53.0, "cbv": 3.3, "hu": 35.0, "texture": 0.12},
    "wm": {"cbf": 25.0, "cbv": 1.9, "hu": 29.0, "texture": 0.12},
    "csf": {"cbf": 0.0, "cbv": 0.0, "hu": 12.0, "texture": 0.0},
}

ResidueShape = Literal["box", "exponential", "linear"]


@dataclass(frozen=True)
class Protocol:
    """Acquisition timing.

    Attributes
    ----------
    name : str
    n_frames : int
        Number of time frames ``T``.
    dt : float
        Frame interval, s. Frame ``i`` is acquired at ``i * dt``.
    """

    name: str
    n_frames: int
    dt: float

    @property
    def times(self) -> np.ndarray:
        """Acquisition times, shape ``(T,)``, s."""
        return np.arange(self.n_frames) * self.dt

    @property
    def duration(self) -> float:
        """Time of the last frame, s."""
        return (self.n_frames - 1) * self.dt


#: The paper's protocol: GE cine mode, 89 frames at 0.5 s.
CINE = Protocol("cine", 89, 0.5)
#: The second UniToBrain protocol: 8 cm shuttle, 18 passes at 2.81 s.
SHUTTLE = Protocol("shuttle", 18, 2.81)


def gamma_variate(t: np.ndarray, t0: float, alpha: float, beta: float, peak: float) -> np.ndarray:
    """Gamma-variate bolus ``A (t - t0)^alpha exp(-(t - t0)/beta)``, scaled to a given peak.

    Parameters
    ----------
    t : ndarray
        Times, s.
    t0 : float
        Arrival time, s.
    alpha, beta : float
        Shape (dimensionless) and scale (s); the peak is at ``t0 + alpha * beta``.
    peak : float
        Peak value (HU above baseline).

    Returns
    -------
    ndarray, same shape as ``t``.
    """
    if alpha <= 0 or beta <= 0:
        raise ValueError(f"gamma variate needs alpha > 0 and beta > 0, got alpha={alpha}, beta={beta}")
    s = np.clip(np.asarray(t, dtype=float) - t0, 0.0, None)
    tp = alpha * beta
    # normalised so that the value at s = tp is 1
    with np.errstate(divide="ignore"):
        log_g = alpha * (np.log(np.where(s > 0, s, 1.0)) - np.log(tp)) - (s - tp) / beta
    g = np.where(s > 0, np.exp(log_g), 0.0)
    return peak * g


def aif_curve(
    t: np.ndarray,
    *,
    t0: float = 8.0,
    alpha: float = 3.0,
    beta: float = 1.5,
    peak: float = 400.0,
    recirc_fraction: float = 0.15,
    recirc_delay: float = 10.0,
) -> np.ndarray:
    """Arterial input function: first-pass gamma variate plus a broader recirculation bolus.

    The recirculation is a gamma variate (alpha = alpha, beta = 2 beta) arriving
    ``recirc_delay`` s after the first pass with ``recirc_fraction`` of the first-pass peak.

    Returns
    -------
    ndarray, same shape as ``t``
        Enhancement in HU above baseline.
    """
    first = gamma_variate(t, t0, alpha, beta, peak)
    second = gamma_variate(t, t0 + recirc_delay, alpha, 2.0 * beta, recirc_fraction * peak)
    return first + second


def vof_curve(t_fine: np.ndarray, aif: np.ndarray, *, transit: float = 4.0, spread: float = 1.5) -> np.ndarray:
    """Venous output function: the AIF delayed by ``transit - spread`` s and dispersed.

    The kernel is an exponential of mean ``spread`` s shifted by ``transit - spread`` s,
    normalised to unit area, so the VOF has the same area as the (full-volume) AIF, which is
    what partial-volume scaling of a measured AIF relies on.

    Parameters
    ----------
    t_fine : ndarray, shape (L,)
        Uniform fine time grid, s.
    aif : ndarray, shape (L,)
        AIF on that grid.
    """
    shift = max(transit - spread, 0.0)
    s = t_fine - shift
    k = np.where(s >= 0, np.exp(-np.clip(s, 0, None) / spread), 0.0)
    k /= k.sum()
    return np.convolve(aif, k)[: aif.size]


def residue(
    t: np.ndarray, mtt: np.ndarray | float, shape: ResidueShape, *, bin_width: float | None = None
) -> np.ndarray:
    """Residue function ``R(t)`` with ``R(0) = 1`` and area ``MTT``.

    Parameters
    ----------
    t : ndarray
        Times since arrival, s (broadcast against ``mtt``).
    mtt : float or ndarray
        Mean transit time, s.
    shape : {"box", "exponential", "linear"}
        Box ``1[t < MTT]``, exponential ``exp(-t/MTT)``, or linear ``max(0, 1 - t/(2 MTT))``.
    bin_width : float, optional
        If given, return the average of ``R`` over ``[t, t + bin_width)`` (exact bin integrals,
        so that ``sum(R) * bin_width == MTT`` on a uniform grid).
    """
    t = np.asarray(t, dtype=float)
    mtt = np.asarray(mtt, dtype=float)
    if np.any(mtt <= 0):
        raise ValueError("MTT must be positive")

    def prim(x: np.ndarray) -> np.ndarray:  # integral of R from 0 to x (x >= 0)
        x = np.clip(x, 0, None)
        if shape == "box":
            return np.minimum(x, mtt)
        if shape == "exponential":
            return mtt * (1.0 - np.exp(-x / mtt))
        if shape == "linear":
            xe = np.minimum(x, 2 * mtt)
            return xe - xe**2 / (4 * mtt)
        raise ValueError(f"unknown residue shape {shape!r}; use 'box', 'exponential' or 'linear'")

    if bin_width is not None:
        return np.where(t + bin_width > 0, (prim(t + bin_width) - prim(t)) / bin_width, 0.0)
    if shape == "box":
        r = (t < mtt).astype(float)
    elif shape == "exponential":
        r = np.exp(-np.clip(t, 0, None) / mtt)
    elif shape == "linear":
        r = np.clip(1.0 - t / (2 * mtt), 0.0, None)
    else:
        raise ValueError(f"unknown residue shape {shape!r}; use 'box', 'exponential' or 'linear'")
    return np.where(t >= 0, r, 0.0)


def noise_sigma(mAs: float | np.ndarray, k: float = NOISE_K) -> float | np.ndarray:
    """CT image noise per frame, ``sigma = k / sqrt(mAs)`` (HU); 7.3 HU at 200 mAs."""
    mAs_arr = np.asarray(mAs, dtype=float)
    if np.any(mAs_arr <= 0):
        raise ValueError(f"mAs must be positive, got {mAs}")
    out = k / np.sqrt(mAs_arr)
    return float(out) if out.ndim == 0 else out


def pixel_noise_sigma(mAs: float, pixel_mm: float, *, ref_mm: float = 0.488, corr_px: float = 0.8,
                      k: float = NOISE_K) -> float:
    """Noise SD (HU) of a pixel of side ``pixel_mm`` when ``k / sqrt(mAs)`` holds at ``ref_mm``.

    Clinical noise (0.488 mm pixels, correlated over ``corr_px`` pixels) averaged over a larger
    pixel falls with the square root of the number of independent correlation cells it holds:
    ``sigma_px = sigma * min(1, sqrt(4 pi) * corr_px * ref_mm / pixel_mm)``. At 3.4 mm pixels this
    is 0.40 sigma; at clinical resolution it is sigma itself.
    """
    if pixel_mm <= 0 or ref_mm <= 0:
        raise ValueError("pixel sizes must be positive")
    cell = np.sqrt(4 * np.pi) * max(corr_px, 0.282) * ref_mm  # side of one correlation cell, mm
    return noise_sigma(mAs, k) * min(1.0, cell / pixel_mm)


def correlated_noise(
    shape: tuple[int, ...], sigma: float, rng: np.random.Generator, *, corr_px: float = 0.8
) -> np.ndarray:
    """Gaussian noise correlated in the last two axes, independent along the others.

    White noise is filtered with a Gaussian of SD ``corr_px`` pixels and rescaled so that
    its marginal standard deviation is exactly ``sigma`` (by the filter's L2 norm).
    """
    w = rng.standard_normal(shape)
    if corr_px <= 0:
        return sigma * w
    sig = (0,) * (len(shape) - 2) + (corr_px, corr_px)
    f = ndimage.gaussian_filter(w, sig, mode="wrap")
    n = int(8 * corr_px) * 2 + 3
    delta = np.zeros((n, n))
    delta[n // 2, n // 2] = 1.0
    l2 = np.sqrt(np.sum(ndimage.gaussian_filter(delta, corr_px, mode="constant") ** 2))
    return sigma * f / l2


def tissue_curves(
    t_fine: np.ndarray,
    aif: np.ndarray,
    cbf: np.ndarray,
    mtt: np.ndarray,
    delay: np.ndarray,
    dispersion: np.ndarray,
    shape: ResidueShape,
    *,
    rho: float = RHO,
    k_h: float = K_H,
    chunk: int = 8192,
) -> tuple[np.ndarray, np.ndarray]:
    """Tissue enhancement curves by FFT convolution on a fine grid, vectorised over voxels.

    Parameters
    ----------
    t_fine : ndarray, shape (L,)
        Uniform time grid starting at 0, s.
    aif : ndarray, shape (L,)
        Arterial enhancement (HU) on ``t_fine``.
    cbf, mtt, delay, dispersion : ndarray, shape (V,)
        CBF (ml/100 g/min), MTT (s), delay (s) and exponential dispersion time constant (s).
    shape : {"box", "exponential", "linear"}
        Residue function shape.

    Returns
    -------
    curves : ndarray, shape (V, L)
        Tissue enhancement, HU.
    tmax : ndarray, shape (V,)
        Time of the maximum of the effective impulse response (delay plus dispersed
        residue), s; for a plateau the midpoint of the samples within 1 % of the maximum.
    """
    dtf = float(t_fine[1] - t_fine[0])
    L = t_fine.size
    n = 1 << int(np.ceil(np.log2(2 * L)))
    omega = 2 * np.pi * np.fft.rfftfreq(n, d=dtf)
    A = np.fft.rfft(aif, n)
    tt = np.arange(n) * dtf
    V = cbf.size
    out = np.empty((V, L))
    tmax = np.empty(V)
    for s in range(0, V, chunk):
        sl = slice(s, s + chunk)
        r = residue(tt[None, :L], mtt[sl, None], shape, bin_width=dtf)
        # discrete exponential kernel (1 - q) q^k, unit sum -> exact area preservation; its DFT
        q = np.exp(-dtf / np.maximum(dispersion[sl, None], 1e-6))
        E = (1 - q) / (1 - q * np.exp(-1j * omega[None, :] * dtf))
        H = np.fft.rfft(r, n) * E
        h_nodelay = np.fft.irfft(H, n)[:, :L]
        hm = h_nodelay.max(axis=1, keepdims=True)
        near = h_nodelay >= 0.99 * hm
        idx = np.arange(L)[None, :]
        first = np.where(near, idx, L).min(axis=1)
        last = np.where(near, idx, -1).max(axis=1)
        tmax[sl] = delay[sl] + 0.5 * (first + last) * dtf
        H = H * np.exp(-1j * omega[None, :] * delay[sl, None])
        conv = np.fft.irfft(A[None, :] * H, n)[:, :L] * dtf
        out[sl] = (rho / k_h) * (cbf[sl, None] / CBF_UNIT) * conv
    return out, tmax


@dataclass
class Phantom:
    """A batch of phantom slices with their truth.

    Shapes: ``N`` slices, ``T`` frames, ``H x W`` pixels.

    Attributes
    ----------
    frames : ndarray, shape (N, T, H, W), float32
        CT frames in HU (baseline anatomy + enhancement + motion + noise).
    cbf, cbv, mtt, ttp, tmax, delay : ndarray, shape (N, H, W), float32
        True maps in ml/100 g/min, ml/100 g, s, s (from scan start), s (from AIF arrival
        at the measured artery), s. Zero outside brain tissue (grey + white matter).
    labels : ndarray, shape (N, H, W), uint8
        Tissue labels, see :data:`LABELS`.
    brain, core, penumbra : ndarray, shape (N, H, W), bool
        Brain tissue (grey + white matter) and true lesion masks.
    aif, vof : ndarray, shape (N, T)
        Noise-free full-volume AIF and VOF, HU above baseline.
    clean : ndarray, shape (N, T, H, W), float32 or None
        Noise- and motion-free frames (only if requested).
    times : ndarray, shape (T,)
        Acquisition times, s.
    pixel_mm, slice_mm : float
        Pixel spacing and slice thickness, mm.
    subject, side : ndarray, shape (N,)
        Subject index per slice and lesion side (+1 image right = patient left, -1, 0 normal).
    subjects : pandas.DataFrame
        Per-subject parameters (AIF, residue shape, lesion, motion, mAs).
    protocol : Protocol
    """

    frames: np.ndarray
    cbf: np.ndarray
    cbv: np.ndarray
    mtt: np.ndarray
    ttp: np.ndarray
    tmax: np.ndarray
    delay: np.ndarray
    labels: np.ndarray
    brain: np.ndarray
    core: np.ndarray
    penumbra: np.ndarray
    aif: np.ndarray
    vof: np.ndarray
    times: np.ndarray
    pixel_mm: float
    slice_mm: float
    subject: np.ndarray
    side: np.ndarray
    subjects: pd.DataFrame
    protocol: Protocol
    clean: np.ndarray | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.frames.shape[0]

    @property
    def maps(self) -> dict[str, np.ndarray]:
        """The true maps by name."""
        return {"cbf": self.cbf, "cbv": self.cbv, "mtt": self.mtt, "ttp": self.ttp, "tmax": self.tmax}


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], sigma_px: float) -> np.ndarray:
    f = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="wrap")
    return f / (f.std() + 1e-12)


def _anatomy(size: int, scale: float, vent: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Left-right symmetric label image of one slice; returns labels and geometry arrays."""
    c = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(c, c, indexing="ij")  # y: rows (posterior = +1 at the bottom)
    a_out, b_out = 0.80 * scale, 0.93 * scale
    a_in, b_in = a_out - 0.07, b_out - 0.07
    r_out = np.sqrt((x / a_out) ** 2 + (y / b_out) ** 2)
    r_in = np.sqrt((x / a_in) ** 2 + (y / b_in) ** 2)
    lab = np.zeros((size, size), np.uint8)
    lab[r_out < 1] = LABELS["skull"]
    brain = r_in < 1
    theta = np.arctan2(y, np.abs(x))  # symmetric angle
    ribbon = 0.84 + 0.05 * np.cos(11 * theta)
    lab[brain] = LABELS["wm"]
    lab[brain & (r_in > ribbon)] = LABELS["gm"]
    deep = ((np.abs(x) - 0.22 * scale) / (0.10 * scale)) ** 2 + ((y - 0.02) / (0.16 * scale)) ** 2 < 1
    lab[brain & deep] = LABELS["gm"]
    ventricle = ((np.abs(x) - 0.10 * scale) / (0.06 * vent)) ** 2 + ((y + 0.02) / (0.24 * vent)) ** 2 < 1
    lab[brain & ventricle] = LABELS["csf"]
    lab[brain & (r_in > 0.985)] = LABELS["csf"]  # thin subarachnoid CSF rim
    # arteries: both MCAs in the Sylvian fissures, the ACA at the midline (anterior = top)
    arteries = np.zeros_like(brain)
    r_art = max(1.6 / size * 2, 0.03)
    for cx, cy in ((0.52 * scale, -0.02), (-0.52 * scale, -0.02), (0.0, -0.55 * scale)):
        arteries |= (x - cx) ** 2 + (y - cy) ** 2 < r_art**2
    lab[arteries] = LABELS["artery"]
    vein = (x**2 + (y - (b_in - 0.05)) ** 2) < max(2.2 / size * 2, 0.045) ** 2
    lab[vein] = LABELS["vein"]
    return lab, {"x": x, "y": y}


def make_phantom(
    n_subjects: int,
    slices_per_subject: int = 4,
    *,
    size: int = 64,
    protocol: Protocol = CINE,
    mAs: float = 200.0,
    rng: np.random.Generator | None = None,
    lesion_fraction: float = 0.8,
    residue_shapes: tuple[ResidueShape, ...] = ("box", "exponential", "linear"),
    motion_px: float = 0.3,
    motion_deg: float = 0.5,
    noise_corr_px: float = 0.8,
    fov_mm: float = 220.0,
    slice_mm: float = 5.0,
    rho: float = RHO,
    k_h: float = K_H,
    fine_dt: float = 0.1,
    keep_clean: bool = False,
    noise_ref_mm: float | None = 0.488,
) -> Phantom:
    """Generate seeded phantom subjects, several axial slices each.

    Parameters
    ----------
    n_subjects : int
        Number of subjects (each with its own AIF, residue shape, motion and lesion).
    slices_per_subject : int
        Axial slices per subject (anatomy scale and lesion cross-section vary with z).
    size : int
        Image size ``H = W`` in pixels (``fov_mm / size`` mm per pixel).
    protocol : Protocol
        :data:`CINE` (89 x 0.5 s, the paper's) or :data:`SHUTTLE` (18 x 2.81 s).
    mAs : float
        Tube current-time product per frame; noise SD is ``103.09 / sqrt(mAs)`` HU at the clinical
        pixel size ``noise_ref_mm`` and is reduced for larger pixels by :func:`pixel_noise_sigma`
        (``noise_ref_mm=None`` applies ``103.09 / sqrt(mAs)`` per pixel at any matrix size).
    rng : numpy.random.Generator
        Source of all randomness (required for reproducibility; default ``default_rng(0)``).
    lesion_fraction : float
        Probability that a subject has a lesion.
    residue_shapes : tuple of str
        Residue shapes drawn uniformly per subject.
    motion_px, motion_deg : float
        SD of the per-frame rigid translation (pixels) and rotation (degrees); frame 0 is the
        reference and does not move.
    noise_corr_px : float
        SD of the Gaussian noise-correlation kernel, pixels (0 for white noise).
    keep_clean : bool
        Also return noise- and motion-free frames.

    Returns
    -------
    Phantom
    """
    if n_subjects < 1 or slices_per_subject < 1:
        raise ValueError("need at least one subject and one slice per subject")
    if size < 16:
        raise ValueError(f"size must be >= 16 pixels, got {size}")
    if not 0 <= lesion_fraction <= 1:
        raise ValueError(f"lesion_fraction must be in [0, 1], got {lesion_fraction}")
    rng = np.random.default_rng(0) if rng is None else rng
    times = protocol.times
    T = times.size
    t_fine = np.arange(0.0, protocol.duration + fine_dt / 2, fine_dt)
    frame_idx = np.rint(times / fine_dt).astype(int)
    pixel_mm = fov_mm / size
    sigma = noise_sigma(mAs) if noise_ref_mm is None else pixel_noise_sigma(
        mAs, pixel_mm, ref_mm=noise_ref_mm, corr_px=noise_corr_px)
    N = n_subjects * slices_per_subject
    H = W = size
    out = {k: np.zeros((N, H, W), np.float32) for k in ("cbf", "cbv", "mtt", "ttp", "tmax", "delay")}
    frames = np.empty((N, T, H, W), np.float32)
    clean = np.empty((N, T, H, W), np.float32) if keep_clean else None
    labels = np.empty((N, H, W), np.uint8)
    core = np.zeros((N, H, W), bool)
    pen = np.zeros((N, H, W), bool)
    aifs = np.empty((N, T))
    vofs = np.empty((N, T))
    subj_idx = np.repeat(np.arange(n_subjects), slices_per_subject)
    sides = np.zeros(N, int)
    rows = []
    for s in range(n_subjects):
        p = {
            "subject": s,
            "aif_t0": rng.uniform(5.0, 15.0) if protocol.duration > 40 else rng.uniform(5.0, 10.0),
            "aif_alpha": rng.uniform(2.5, 3.5),
            "aif_beta": rng.uniform(1.2, 1.8),
            "aif_peak": rng.uniform(300.0, 500.0),
            "recirc_fraction": rng.uniform(0.10, 0.20),
            "recirc_delay": rng.uniform(8.0, 12.0),
            "artery_pv": rng.uniform(0.5, 0.9),
            "vof_transit": rng.uniform(4.0, 6.0),
            "residue": str(rng.choice(residue_shapes)),
            "lesion": bool(rng.random() < lesion_fraction),
            "side": int(rng.choice([-1, 1])),
            "lesion_x": rng.uniform(0.35, 0.5),
            "lesion_y": rng.uniform(-0.2, 0.2),
            "lesion_z": rng.uniform(-0.3, 0.3),
            "lesion_radius": rng.uniform(0.22, 0.36),
            "core_ratio": rng.uniform(0.35, 0.6) if rng.random() < 0.85 else 0.0,
            "mAs": mAs,
            "noise_sigma": sigma,
            "motion_px": motion_px,
            "motion_deg": motion_deg,
        }
        rows.append(p)
        aif_f = aif_curve(
            t_fine, t0=p["aif_t0"], alpha=p["aif_alpha"], beta=p["aif_beta"], peak=p["aif_peak"],
            recirc_fraction=p["recirc_fraction"], recirc_delay=p["recirc_delay"],
        )
        vof_f = vof_curve(t_fine, aif_f, transit=p["vof_transit"])
        # per-frame rigid motion, shared by the subject's slices (frame 0 = reference)
        shifts = rng.normal(0.0, motion_px, (T, 2)) if motion_px > 0 else np.zeros((T, 2))
        angles = np.deg2rad(rng.normal(0.0, motion_deg, T)) if motion_deg > 0 else np.zeros(T)
        shifts[0] = 0.0
        angles[0] = 0.0
        for k in range(slices_per_subject):
            i = s * slices_per_subject + k
            z = -0.6 + 1.2 * (k + 0.5) / slices_per_subject
            scale = np.sqrt(max(1.0 - 0.45 * z**2, 0.5))
            lab, g = _anatomy(size, scale, vent=1.0 + 0.3 * (0.5 - abs(z)))
            labels[i] = lab
            x, y = g["x"], g["y"]
            tissue = (lab == LABELS["gm"]) | (lab == LABELS["wm"])
            cbf = np.zeros((H, W))
            cbv = np.zeros((H, W))
            tex1 = _smooth_field(rng, (H, W), size / 24)
            tex2 = _smooth_field(rng, (H, W), size / 24)
            for name in ("gm", "wm"):
                m = lab == LABELS[name]
                tv = TISSUE_VALUES[name]
                cbf[m] = tv["cbf"] * (1 + tv["texture"] * tex1[m])
                # MTT texture ~ +-0.7 s around CBV/CBF*60
                mtt0 = 60 * tv["cbv"] / tv["cbf"]
                cbv[m] = cbf[m] * np.clip(mtt0 + 0.5 * tex2[m], 2.0, None) / 60.0
            delay = np.clip(0.5 + 0.4 * _smooth_field(rng, (H, W), size / 10), 0.0, 1.5)
            disp = np.clip(0.6 + 0.2 * _smooth_field(rng, (H, W), size / 10), 0.2, 1.2)
            if p["lesion"]:
                sides[i] = p["side"]
                dz = (z - p["lesion_z"]) / 0.9
                rad = p["lesion_radius"] * np.sqrt(max(1 - dz**2, 0.0)) * scale
                if rad > 0.05:
                    edge = 0.12 * _smooth_field(rng, (H, W), size / 12)
                    d = np.sqrt((x - p["side"] * p["lesion_x"] * scale) ** 2 + (y - p["lesion_y"]) ** 2) / rad + edge
                    hemi = x * p["side"] > 0.02
                    cr = p["core_ratio"]
                    in_core = tissue & hemi & (d < cr)
                    in_pen = tissue & hemi & (d >= cr) & (d < 1.0)
                    core[i], pen[i] = in_core, in_pen
                    # depth in [0, 1]: 0 at the outer edge, 1 at the centre
                    depth = np.clip(1.0 - d, 0.0, 1.0)
                    pd_ = np.clip((1.0 - d) / max(1.0 - cr, 1e-6), 0.0, 1.0)  # penumbra depth 0..1
                    cd_ = np.clip((cr - d) / max(cr, 1e-6), 0.0, 1.0)  # core depth 0..1
                    f_cbf = np.where(in_core, 0.18 - 0.08 * cd_, 0.55 - 0.15 * pd_)
                    f_cbv = np.where(in_core, 0.35 - 0.15 * cd_, 1.0 - 0.1 * pd_)
                    les = in_core | in_pen
                    cbf[les] *= f_cbf[les]
                    cbv[les] *= f_cbv[les]
                    delay[in_pen] = 4.5 + 2.0 * pd_[in_pen]
                    delay[in_core] = 6.5 + 1.5 * cd_[in_core]
                    disp[in_pen] = 1.0 + 1.5 * pd_[in_pen]
                    disp[in_core] = 2.5 + 0.5 * cd_[in_core]
                    del depth
            mtt = np.where(tissue, 60.0 * cbv / np.where(cbf > 0, cbf, 1.0), 0.0)
            cbf[~tissue] = 0.0
            cbv[~tissue] = 0.0
            vox = np.flatnonzero(tissue)
            curves, tmax_v = tissue_curves(
                t_fine, aif_f, cbf.ravel()[vox], mtt.ravel()[vox], delay.ravel()[vox], disp.ravel()[vox],
                p["residue"], rho=rho, k_h=k_h,
            )
            enh = np.zeros((H * W, t_fine.size))
            enh[vox] = curves
            enh[(lab == LABELS["artery"]).ravel()] = p["artery_pv"] * aif_f
            enh[(lab == LABELS["vein"]).ravel()] = vof_f
            base = np.zeros((H, W))
            base[lab == LABELS["gm"]] = TISSUE_VALUES["gm"]["hu"]
            base[lab == LABELS["wm"]] = TISSUE_VALUES["wm"]["hu"]
            base[lab == LABELS["csf"]] = TISSUE_VALUES["csf"]["hu"]
            base[(lab == LABELS["artery"]) | (lab == LABELS["vein"])] = 40.0
            base[lab == LABELS["skull"]] = 1100.0 + 150 * tex1[lab == LABELS["skull"]]
            base[lab == LABELS["air"]] = -1000.0
            base[tissue] += 2.0 * tex2[tissue]
            movie = base.ravel()[None, :] + enh[:, frame_idx].T  # (T, H*W)
            movie = movie.reshape(T, H, W)
            if clean is not None:
                clean[i] = movie
            if motion_px > 0 or motion_deg > 0:
                ctr = np.array([(H - 1) / 2, (W - 1) / 2])
                moved = np.empty_like(movie)
                moved[0] = movie[0]
                for f in range(1, T):
                    c_, s_ = np.cos(angles[f]), np.sin(angles[f])
                    rot = np.array([[c_, -s_], [s_, c_]])
                    offset = ctr - rot @ ctr - shifts[f]
                    moved[f] = ndimage.affine_transform(movie[f], rot, offset=offset, order=1, mode="nearest")
                movie = moved
            frames[i] = movie + correlated_noise((T, H, W), sigma, rng, corr_px=noise_corr_px)
            # truth maps
            ttp_fine = t_fine[np.argmax(curves, axis=1)]
            for name, val in (("cbf", cbf.ravel()[vox]), ("cbv", cbv.ravel()[vox]), ("mtt", mtt.ravel()[vox]),
                              ("ttp", ttp_fine), ("tmax", tmax_v), ("delay", delay.ravel()[vox])):
                flat = out[name][i].reshape(-1)
                flat[vox] = val
            aifs[i] = aif_f[frame_idx]
            vofs[i] = vof_f[frame_idx]
    brain = (labels == LABELS["gm"]) | (labels == LABELS["wm"])
    return Phantom(
        frames=frames, labels=labels, brain=brain, core=core, penumbra=pen, aif=aifs, vof=vofs,
        times=times, pixel_mm=fov_mm / size, slice_mm=slice_mm, subject=subj_idx, side=sides,
        subjects=pd.DataFrame(rows), protocol=protocol, clean=clean, **out,
    )
