"""Seeded generator of density maps in the families of the authors' V-Net dataset.

The authors (``CréationDesDensitésTest.ipynb``, after V. Vigon) build a smooth sinusoidal base on a
70x70 grid, add 1-4 Gaussian bumps, rescale, clip below at 1, set an 8-cell border to 1 and smooth with
three 'valid' 3x3 box filters, which leaves 64x64. Their dataset also holds squares, rotated squares,
circles and Gaussians; the notebook that made those is lost, so those four families follow the same
pipeline (background 1, shapes of random size/height, border, smoothing) with our own shape laws.

Families (``FAMILIES``)::

    "sinus_bumps"      smooth sinusoidal base + 1-4 Gaussian bumps (the recorded recipe)
    "squares"          1-3 axis-aligned squares
    "rotated_squares"  1-3 squares rotated by a random angle
    "circles"          1-3 disks
    "gaussians"        1-4 anisotropic Gaussians on a flat background

Arrays are ``(n, size, size)`` float64, **y-up rows** (row 0 = bottom), values in ``[1, max_value]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["FAMILIES", "AUTHORS_FAMILY_WEIGHTS", "generate_densities", "box_smooth_valid", "crenau_densities",
           "reference_density"]

FAMILIES: tuple[str, ...] = ("sinus_bumps", "squares", "rotated_squares", "circles", "gaussians")
AUTHORS_FAMILY_WEIGHTS: tuple[float, ...] = (1446, 482, 240, 242, 481)
"""Family sizes in the authors' 2891 recorded densities (normals up to 10 and up to 5 merged)."""

_SMOOTH_PASSES = 3


def reference_density(n: int) -> np.ndarray:
    """The deterministic two-Gaussian density of the authors'-program reference runs.

    ``1 + 3 exp(-|p - (0.30, 0.65)|² / (2 · 0.08²)) + 2 exp(-|p - (0.70, 0.30)|² / (2 · 0.06²))`` (g/cm³) at the
    cell centres ``(i + 0.5) / n`` of the unit square, rows along y (y-up).

    Parameters
    ----------
    n : int
        Cells per side (>= 1).

    Returns
    -------
    ndarray, shape (n, n)
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"reference_density needs a positive int grid size, got {n!r}")
    x = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(x, x)
    return (1 + 3 * np.exp(-((X - 0.30) ** 2 + (Y - 0.65) ** 2) / (2 * 0.08**2))
            + 2 * np.exp(-((X - 0.70) ** 2 + (Y - 0.30) ** 2) / (2 * 0.06**2)))


def box_smooth_valid(x: np.ndarray, passes: int = _SMOOTH_PASSES) -> np.ndarray:
    """Apply a 3x3 mean filter in 'valid' mode ``passes`` times on the last two axes (shrinks by 2 each)."""
    out = np.asarray(x, dtype=np.float64)
    for _ in range(passes):
        h, w = out.shape[-2] - 2, out.shape[-1] - 2
        if h < 1 or w < 1:
            raise ValueError(f"array of shape {x.shape} is too small for {passes} valid 3x3 smoothing passes.")
        acc = np.zeros(out.shape[:-2] + (h, w))
        for di in range(3):
            for dj in range(3):
                acc += out[..., di : di + h, dj : dj + w]
        out = acc / 9.0
    return out


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.linspace(0.0, 1.0, n)
    return np.meshgrid(t, t)  # X varies along columns, Y along rows (y-up)


def _sinus_bumps(k: int, g: int, rng: np.random.Generator) -> np.ndarray:
    A, Bg = _grid(g)
    A, Bg = A[None], Bg[None]
    nu = rng.uniform(1, 4, (k, 2)) ** 2
    c = rng.uniform(0.08, 0.6, (k, 2)) ** 2
    a2 = A + c[:, 0, None, None] * np.sin(2 * np.pi * A)
    b2 = Bg + c[:, 1, None, None] * np.sin(2 * np.pi * A) * np.sin(2 * np.pi * Bg)
    y = np.sin(np.pi * nu[:, 0, None, None] * a2) * np.sin(np.pi * nu[:, 1, None, None] * b2)
    den = 1 + 2 * (0.5 * y + 0.501)
    # 1-4 bumps: height (3 + 2U) times a bivariate normal pdf on [-5, 5]^2
    U, V = np.meshgrid(np.linspace(-5, 5, g), np.linspace(-5, 5, g))
    n_b = rng.integers(1, 5, k)
    for j in range(4):
        on = (n_b > j).astype(float)[:, None, None]
        mu = rng.uniform(-3, 3, (k, 2))
        r = 0.05 * rng.uniform(-1, 1, k)[:, None, None]
        h = (3 + 2 * rng.uniform(0, 1, k))[:, None, None]
        du, dv = U[None] - mu[:, 0, None, None], V[None] - mu[:, 1, None, None]
        q = (du**2 - 2 * r * du * dv + dv**2) / (1 - r**2)
        pdf = np.exp(-0.5 * q) / (2 * np.pi * np.sqrt(1 - r**2))
        den = den + on * h * pdf
    return den


def _shapes(kind: str, k: int, g: int, rng: np.random.Generator) -> np.ndarray:
    X, Y = _grid(g)
    X, Y = X[None], Y[None]
    den = np.ones((k, g, g))
    n_s = rng.integers(1, 4 if kind != "gaussians" else 5, k)
    for j in range(4 if kind == "gaussians" else 3):
        on = (n_s > j)[:, None, None]
        cx, cy = (rng.uniform(0.25, 0.75, k)[:, None, None] for _ in range(2))
        h = rng.uniform(0.3, 1.0, k)[:, None, None]
        dx, dy = X - cx, Y - cy
        if kind == "squares":
            half = rng.uniform(0.05, 0.15, k)[:, None, None]
            shape = (np.abs(dx) <= half) & (np.abs(dy) <= half)
        elif kind == "rotated_squares":
            half = rng.uniform(0.05, 0.15, k)[:, None, None]
            th = rng.uniform(0, np.pi / 2, k)[:, None, None]
            u, v = np.cos(th) * dx + np.sin(th) * dy, -np.sin(th) * dx + np.cos(th) * dy
            shape = (np.abs(u) <= half) & (np.abs(v) <= half)
        elif kind == "circles":
            rad = rng.uniform(0.05, 0.15, k)[:, None, None]
            shape = dx**2 + dy**2 <= rad**2
        else:  # gaussians
            sx, sy = (rng.uniform(0.04, 0.12, k)[:, None, None] for _ in range(2))
            th = rng.uniform(0, np.pi, k)[:, None, None]
            u, v = np.cos(th) * dx + np.sin(th) * dy, -np.sin(th) * dx + np.cos(th) * dy
            den = np.maximum(den, 1 + on * h * np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2)))
            continue
        den = np.where(on & shape, np.maximum(den, 1 + h), den)
    return den


def generate_densities(
    n: int,
    *,
    rng: np.random.Generator,
    size: int = 64,
    families: Sequence[str] = FAMILIES,
    weights: Sequence[float] | None = None,
    max_value: tuple[float, float] = (5.0, 10.0),
    border: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` density maps.

    Parameters
    ----------
    n : int
        Number of maps.
    rng : numpy.random.Generator
        Source of randomness (required, for reproducibility).
    size : int
        Output side (cells); the raw grid is ``size + 6`` before three 'valid' smoothing passes (70 -> 64).
    families : sequence of str
        Families to draw from (subset of :data:`FAMILIES`).
    weights : sequence of float, optional
        Relative frequency of each family; default uniform over ``families``.
    max_value : (float, float)
        The maximum of each map is drawn uniformly in this range (g/cm^3) before smoothing; the
        authors used 5 and 10.
    border : int, optional
        Raw-grid cells set to 1 along each side; default ``round(8 * (size + 6) / 70)`` (8 at 64).

    Returns
    -------
    rho : ndarray, shape (n, size, size)
        Densities (g/cm^3), y-up rows, values in ``[1, max]``.
    family : ndarray of int, shape (n,)
        Index into ``families`` of each map.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), got {type(rng).__name__}.")
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, got {n}.")
    if size < 8:
        raise ValueError(f"size must be >= 8 cells, got {size}.")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown or not families:
        raise ValueError(f"unknown or empty families {unknown or families}; choose from {FAMILIES}.")
    w = np.ones(len(families)) if weights is None else np.asarray(weights, dtype=float)
    if w.shape != (len(families),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"weights must be {len(families)} non-negative numbers with a positive sum, got {weights}.")
    lo, hi = max_value
    if not 1 < lo <= hi:
        raise ValueError(f"max_value must satisfy 1 < low <= high, got {max_value}.")
    g = size + 2 * _SMOOTH_PASSES
    b = int(round(8 * g / 70)) if border is None else int(border)
    fam = rng.choice(len(families), size=int(n), p=w / w.sum())
    raw = np.empty((int(n), g, g))
    for f_idx, name in enumerate(families):
        sel = np.flatnonzero(fam == f_idx)
        if sel.size == 0:
            continue
        den = _sinus_bumps(sel.size, g, rng) if name == "sinus_bumps" else _shapes(name, sel.size, g, rng)
        peak = rng.uniform(lo, hi, sel.size)[:, None, None]
        if name == "sinus_bumps":
            den = den * peak / den.max(axis=(1, 2), keepdims=True)  # den * 5 / max
        else:
            den = 1 + (den - 1) * (peak - 1)  # shapes of relative height h in (0, 1] -> [1, peak]
        raw[sel] = den
    raw = np.maximum(raw, 1.0)
    if b > 0:
        raw[:, :b, :] = raw[:, -b:, :] = 1.0
        raw[:, :, :b] = raw[:, :, -b:] = 1.0
    return box_smooth_valid(raw), fam


def crenau_densities(
    x: np.ndarray, y: np.ndarray, height: np.ndarray, *, size: int = 28, background: float = 0.1,
    smooth_passes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The M1 internship's ``crenau(x, y, rmin, rmax)`` densities, batched.

    A disk of diameter ``0.1 * N * dx`` (0.1 cm) centred at ``(x, y)`` is set to ``height`` on a
    ``background``, on the grid *including* its ghost layer; it is then smoothed ``int(0.1 * N)`` times
    (2 at N = 28) with the mean over each cell and its existing 4 neighbours, as the original program.

    Parameters
    ----------
    x, y, height : array_like, shape (B,)
        Centre (cm, in [0, 1]) and pre-smoothing height (g/cm^3).
    size : int
        Grid side N.
    background : float
        Density outside the bump (0.1).
    smooth_passes : int, optional
        Default ``int(0.1 * N)``.

    Returns
    -------
    rho : ndarray, shape (B, N, N)
        Interior densities, y-up rows.
    peak : ndarray, shape (B,)
        Maximum after smoothing (the label "height" of the M1 CNN).
    """
    x, y, h = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x, y, height))
    if not (x.shape == y.shape == h.shape) or x.ndim != 1:
        raise ValueError(f"x, y and height must be 1-D arrays of equal length, got {x.shape}, {y.shape}, {h.shape}.")
    if np.any((x < 0) | (x > 1) | (y < 0) | (y > 1)):
        raise ValueError("bump centres must lie in [0, 1]^2 (the original program rejects them otherwise).")
    n = int(size)
    dx = 1.0 / n
    c = (np.arange(n + 2) - 1) * dx + dx / 2  # centres, ghosts included
    X, Y = np.meshgrid(c, c)
    diameter = 0.1 * n * dx
    inside = (X[None] - x[:, None, None]) ** 2 + (Y[None] - y[:, None, None]) ** 2 <= (diameter / 2) ** 2
    sig = np.where(inside, h[:, None, None], background)
    passes = int(0.1 * n) if smooth_passes is None else int(smooth_passes)
    count = np.full((n + 2, n + 2), 5.0)
    count[0, :] -= 1
    count[-1, :] -= 1
    count[:, 0] -= 1
    count[:, -1] -= 1
    for _ in range(passes):
        acc = sig.copy()
        acc[:, 1:, :] += sig[:, :-1, :]
        acc[:, :-1, :] += sig[:, 1:, :]
        acc[:, :, 1:] += sig[:, :, :-1]
        acc[:, :, :-1] += sig[:, :, 1:]
        sig = acc / count
    return sig[:, 1:-1, 1:-1], sig.max(axis=(1, 2))
