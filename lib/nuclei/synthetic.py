"""Synthetic fluorescence-nuclei images with exact instance labels.

A SIMCEP-like recipe (Lehmussola et al. 2007) calibrated to statistics measured on the 546
fluorescence images of DSB 2018 stage1_train after resizing to 256x256 (research note, §5.2):

* nuclei per image: log-normal, median 25 (DSB 5-95 %: 7-141);
* equivalent radius: per-image scale (log-normal, median 6 px) times a per-nucleus factor,
  matching DSB areas 14/68/110/189/815 px (5/25/50/75/95 %);
* eccentricity 0.37-0.92 (median 0.73), plus a Fourier radial perturbation (solidity ~0.96);
* placement: hard-core with a random contact factor and Thomas clusters, ~20 % of nuclei touching;
* intensity: background 2-15/255 with a smooth illumination gradient, nucleus median grey
  21-115/255 (per-nucleus CV 0.4) with smooth texture and dark nucleoli; ~3 % small bright
  mitotic nuclei; Gaussian PSF sigma 0.7-2 px (10 % defocused, 3-4 px); Poisson shot noise at
  50-1000 photons peak plus Gaussian read noise; 8-bit grey repeated to RGB, as DSB stores it.

Labels are rasterised from the geometric shapes before blur and noise, so they are exact; later
nuclei occlude earlier ones (touching but separable instances, as in DSB).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lib.nuclei.dsb import NucleiArrays, NucleiRecord

__all__ = ["SynthNucleiConfig", "synth_nuclei_image", "synth_nuclei_records", "synth_nuclei_arrays", "label_statistics"]


@dataclass(frozen=True)
class SynthNucleiConfig:
    """Calibration constants of the generator (pixel units refer to a 256x256 image).

    Attributes
    ----------
    count_median, count_sigma : float
        Log-normal number of nuclei per image.
    radius_median, radius_scale_sigma, radius_sigma : float
        Median equivalent radius (px), log-sd of the per-image scale and of the per-nucleus factor.
    ecc_mean, ecc_sd : float
        Normal eccentricity, clipped to [0.2, 0.95].
    perturb : float
        Amplitude of each Fourier radial harmonic (k = 2..5).
    cluster_fraction : float
        Probability that a nucleus is placed near an earlier one (Thomas cluster).
    contact_low, contact_high : float
        Minimum centre distance as a fraction of ``r_i + r_j`` (< 1 lets nuclei touch).
    bg_low, bg_high : float
        Background grey range, /255.
    fg_median, fg_sigma : float
        Log-normal nucleus grey (/255) and its per-nucleus log-sd.
    psf_low, psf_high, defocus_prob : float
        Gaussian PSF sigma range (px) and the probability of a defocused image (sigma 3-4 px).
    photons_low, photons_high : float
        Peak photon count range (log-uniform).
    read_noise : float
        Gaussian read-noise sd in grey levels (of 255).
    """

    count_median: float = 25.0
    count_sigma: float = 0.75
    radius_median: float = 6.5
    radius_scale_sigma: float = 0.45
    radius_sigma: float = 0.22
    ecc_mean: float = 0.70
    ecc_sd: float = 0.15
    perturb: float = 0.04
    cluster_fraction: float = 0.5
    contact_low: float = 0.6
    contact_high: float = 1.25
    bg_low: float = 2 / 255
    bg_high: float = 15 / 255
    fg_median: float = 50 / 255
    fg_sigma: float = 0.3
    psf_low: float = 0.7
    psf_high: float = 2.0
    defocus_prob: float = 0.1
    photons_low: float = 50.0
    photons_high: float = 1000.0
    read_noise: float = 1.2


def _place(rng: np.random.Generator, n: int, radii: np.ndarray, size: int, cfg: SynthNucleiConfig) -> np.ndarray:
    """Sequential hard-core / cluster placement; returns ``(m, 2)`` centres (m <= n accepted)."""
    centres = np.empty((0, 2))
    kept = []
    for i in range(n):
        for _ in range(30):
            if len(centres) and rng.random() < cfg.cluster_fraction:
                j = rng.integers(len(centres))
                c = centres[j] + rng.normal(0, 1.5 * 2 * radii[kept[j]], 2)
            else:
                c = rng.uniform(0, size, 2)
            if not (0 <= c[0] < size and 0 <= c[1] < size):
                continue
            if len(centres):
                d = np.hypot(*(centres - c).T)
                f = rng.uniform(cfg.contact_low, cfg.contact_high)
                if np.any(d < f * (radii[kept] + radii[i])):
                    continue
            centres = np.vstack([centres, c])
            kept.append(i)
            break
    return centres, np.array(kept, int)


def synth_nuclei_image(
    rng: np.random.Generator, size: int = 256, cfg: SynthNucleiConfig = SynthNucleiConfig()
) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic fluorescence image and its exact instance labels.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of randomness (pass ``np.random.default_rng(seed)`` for reproducibility).
    size : int
        Image side in pixels; lengths in ``cfg`` refer to 256 and are scaled by ``size/256``.
    cfg : SynthNucleiConfig

    Returns
    -------
    image : numpy.ndarray
        ``(size, size, 3)`` uint8 (grey repeated to RGB).
    labels : numpy.ndarray
        ``(size, size)`` int32, 0 = background, 1..N nuclei.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator, e.g. np.random.default_rng(0)")
    if size < 16:
        raise ValueError(f"size must be >= 16 px, got {size}")
    s = size / 256.0
    n = int(np.clip(np.round(rng.lognormal(np.log(cfg.count_median), cfg.count_sigma)), 3, 150))
    scale = cfg.radius_median * s * rng.lognormal(0.0, cfg.radius_scale_sigma)
    radii = np.clip(scale * rng.lognormal(0.0, cfg.radius_sigma, n), 1.5 * s, 30 * s)
    # do not overfill: keep the expected covered fraction below ~40 %
    frac = np.pi * np.sum(radii**2) / size**2
    if frac > 0.4:
        radii = radii[: max(3, int(n * 0.4 / frac))]
        n = len(radii)
    centres, kept = _place(rng, n, radii, size, cfg)
    radii = radii[kept]
    n = len(radii)

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    labels = np.zeros((size, size), np.int32)
    signal = np.zeros((size, size))
    bright = rng.lognormal(np.log(cfg.fg_median), 0.45) * rng.lognormal(0.0, cfg.fg_sigma, n)
    mitotic = rng.random(n) < 0.03
    radii = np.where(mitotic, radii * 0.6, radii)
    bright = np.where(mitotic, bright * rng.uniform(2, 3, n), bright)
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 1.5 * max(s, 0.5))
    texture /= texture.std() + 1e-12
    for k in range(n):
        cy, cx = centres[k]
        e = np.clip(rng.normal(cfg.ecc_mean, cfg.ecc_sd), 0.2, 0.95)
        ratio = np.sqrt(1 - e**2)
        a = radii[k] / np.sqrt(ratio)  # semi-major so that a*b = r^2
        b = radii[k] * np.sqrt(ratio)
        theta0 = rng.uniform(0, np.pi)
        amp = rng.uniform(0.5, 1.5, 4) * cfg.perturb
        phase = rng.uniform(0, 2 * np.pi, 4)
        pad = int(np.ceil(a * (1 + amp.sum()))) + 2
        r0, r1 = max(int(cy) - pad, 0), min(int(cy) + pad + 1, size)
        c0, c1 = max(int(cx) - pad, 0), min(int(cx) + pad + 1, size)
        dy, dx = yy[r0:r1, c0:c1] - cy, xx[r0:r1, c0:c1] - cx
        u = dx * np.cos(theta0) + dy * np.sin(theta0)
        v = -dx * np.sin(theta0) + dy * np.cos(theta0)
        rho = np.hypot(u / a, v / b)
        phi = np.arctan2(v, u)
        boundary = 1 + np.sum(amp[:, None, None] * np.cos(np.arange(2, 6)[:, None, None] * phi + phase[:, None, None]), 0)
        inside = rho <= boundary
        labels[r0:r1, c0:c1][inside] = k + 1
        # soft edge profile and texture; overlapping intensities take the max
        prof = np.clip(1.5 * (1 - (rho / boundary) ** 6), 0, 1) * inside
        val = bright[k] * prof * (1 + 0.15 * texture[r0:r1, c0:c1])
        for _ in range(rng.integers(0, 3)):  # dark nucleoli
            ny, nx = rng.normal(0, 0.4 * b, 2)
            val *= 1 - 0.3 * np.exp(-((dy - ny) ** 2 + (dx - nx) ** 2) / (2 * (0.25 * b) ** 2))
        signal[r0:r1, c0:c1] = np.maximum(signal[r0:r1, c0:c1], val)
    labels = _relabel(labels)

    bg = rng.uniform(cfg.bg_low, cfg.bg_high)
    gy, gx = rng.normal(0, 0.2, 2)
    illum = 1 + gy * (yy / size - 0.5) + gx * (xx / size - 0.5)
    psf = rng.uniform(3, 4) * s if rng.random() < cfg.defocus_prob else rng.uniform(cfg.psf_low, cfg.psf_high) * s
    clean = ndimage.gaussian_filter(signal, psf) * illum + bg * illum
    peak = np.exp(rng.uniform(np.log(cfg.photons_low), np.log(cfg.photons_high)))
    ref = max(clean.max(), 1e-6)
    photons = rng.poisson(clean / ref * peak)
    img = photons / peak * ref * 255 + rng.normal(0, cfg.read_noise, clean.shape)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return np.repeat(img[..., None], 3, axis=2), labels


def _relabel(labels: np.ndarray) -> np.ndarray:
    u, inv = np.unique(labels, return_inverse=True)
    out = inv.reshape(labels.shape).astype(np.int32)
    return out if u[0] == 0 else out + 1


def synth_nuclei_records(n: int, rng: np.random.Generator, size: int = 256, cfg: SynthNucleiConfig = SynthNucleiConfig()) -> list[NucleiRecord]:
    """``n`` synthetic images as :class:`~lib.nuclei.dsb.NucleiRecord` (ids ``synth-0000``...)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return [NucleiRecord(f"synth-{i:04d}", *synth_nuclei_image(rng, size, cfg)) for i in range(n)]


def synth_nuclei_arrays(n: int, rng: np.random.Generator, size: int = 256, cfg: SynthNucleiConfig = SynthNucleiConfig()) -> NucleiArrays:
    """``n`` synthetic images preprocessed like the real set (modality ``"synthetic"``)."""
    recs = synth_nuclei_records(n, rng, size, cfg)
    return NucleiArrays.from_records(recs, size, ["synthetic"] * n)


def label_statistics(labels: np.ndarray) -> dict[str, np.ndarray | float | int]:
    """Per-nucleus statistics of one instance map, for calibration checks.

    Returns
    -------
    dict
        ``count`` (int), ``foreground`` (fraction of pixels), ``area`` (px, per nucleus),
        ``eccentricity`` (per nucleus), ``touching`` (fraction of nuclei sharing a
        4-neighbour boundary with another nucleus).
    """
    from skimage.measure import regionprops_table

    lab = np.asarray(labels)
    ids = np.unique(lab[lab > 0])
    if ids.size == 0:
        return {"count": 0, "foreground": 0.0, "area": np.zeros(0), "eccentricity": np.zeros(0), "touching": 0.0}
    props = regionprops_table(lab, properties=("label", "area", "eccentricity"))
    touch = set()
    for a, b in ((lab[1:, :], lab[:-1, :]), (lab[:, 1:], lab[:, :-1])):
        m = (a > 0) & (b > 0) & (a != b)
        touch.update(np.unique(a[m]).tolist())
        touch.update(np.unique(b[m]).tolist())
    return {
        "count": int(ids.size),
        "foreground": float(np.mean(lab > 0)),
        "area": np.asarray(props["area"], float),
        "eccentricity": np.asarray(props["eccentricity"], float),
        "touching": len(touch) / ids.size,
    }
