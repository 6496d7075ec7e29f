"""Dataset of (boundary signals -> density) pairs for the radiative-transfer inverse problem.

For each density the P1 solver is run four times, with the whole-edge source ``Ponctuel(0, 1)`` on
each edge in turn (up, down, left, right). The exported signals E, |F|, T in the first interior cells
along the 4 edges are subsampled in time as the authors did (``int(arange(0, S, S / n_time))``, 383 ->
64 steps at N = 64) and assembled into an image of shape ``(n_time, N)`` with 48 channels, channel index
``12 * source_edge + 3 * measured_edge + channel``. The 24-channel variant keeps, for each source, the
source edge and the opposite edge; the 12-channel variant keeps only the opposite edge.

Normalisation uses fixed constants recorded in :data:`NORMALISATION` (never per-batch maxima):
``E' = (E - E0) / 5``, ``|F|' = |F| / 2``, ``T' = (T - 5) / 0.5`` and ``rho' = rho / 10`` (so that a
sigmoid output covers the density range). The authors divided X and Y by their global maxima instead.

Built datasets are cached as ``.npz`` under ``$STUDIES_CACHE_DIR/radiative`` (default ``<repo>/.cache/radiative``)
keyed by a hash of every parameter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lib.radiative.densities import FAMILIES, crenau_densities, generate_densities
from lib.radiative.p1 import EDGES, Neumann, P1Config, Ponctuel, PowerOpacity, simulate, step_count

__all__ = [
    "NORMALISATION",
    "CHANNEL_SETS",
    "RTDatasetConfig",
    "RTDataset",
    "time_indices",
    "channel_indices",
    "assemble_inputs",
    "normalise_inputs",
    "normalise_density",
    "denormalise_density",
    "cache_root",
    "build_dataset",
    "BumpDatasetConfig",
    "BumpDataset",
    "build_bump_dataset",
    "m1_opacity",
    "standardise_by_train",
    "apply_standardisation",
]

_VERSION = "rt-dataset-1"
A_RAD = 0.01372
NORMALISATION: dict[str, tuple[float, float]] = {
    "E": (A_RAD * 5.0**4, 5.0),  # (offset, scale): source amplitude 5 around E0 = 8.575
    "|F|": (0.0, 2.0),
    "T": (5.0, 0.5),
    "rho": (0.0, 10.0),
}
"""Fixed normalisation constants ``x' = (x - offset) / scale`` per channel and for the density."""

CHANNEL_SETS: tuple[int, ...] = (48, 24, 12)
_OPPOSITE = {0: 1, 1: 0, 2: 3, 3: 2}


def _batches(n: int, batch: int, progress: bool | None, desc: str):
    """Start indices ``0, batch, 2 batch, ... < n``, with a tqdm bar when ``progress`` (default: a terminal)."""
    import sys

    starts = range(0, n, batch)
    if progress is None:
        progress = sys.stderr.isatty()
    if progress:
        from tqdm.auto import tqdm

        return tqdm(starts, desc=desc)
    return starts

def time_indices(n_steps: int, n_time: int) -> np.ndarray:
    """Authors' subsampling ``int(arange(0, S, S / n_time))`` (0, 5, 11, ..., 377 for 383 -> 64)."""
    if not 1 <= n_time <= n_steps:
        raise ValueError(f"n_time must be in [1, n_steps={n_steps}], got {n_time}.")
    return np.arange(0, n_steps, n_steps / n_time).astype(int)[:n_time]


def channel_indices(n_channels: int) -> np.ndarray:
    """Indices into the 48 channels for the 48/24/12-channel variants.

    24: for each source s (u, d, l, r), the source edge then the opposite edge, each (E, |F|, T);
    12: the opposite edge only.
    """
    if n_channels == 48:
        return np.arange(48)
    if n_channels == 24:
        return np.array([12 * s + 3 * m + c for s in range(4) for m in (s, _OPPOSITE[s]) for c in range(3)])
    if n_channels == 12:
        return np.array([12 * s + 3 * _OPPOSITE[s] + c for s in range(4) for c in range(3)])
    raise ValueError(f"n_channels must be one of {CHANNEL_SETS}, got {n_channels}.")


def assemble_inputs(signals: np.ndarray, t_idx: np.ndarray) -> np.ndarray:
    """``(n, 4 src, 4 measured, 3 ch, S, L)`` signals -> ``(n, 48, n_time, L)`` channels-first images."""
    sig = np.asarray(signals)
    if sig.ndim != 6 or sig.shape[1:4] != (4, 4, 3):
        raise ValueError(f"signals must have shape (n, 4, 4, 3, S, L), got {sig.shape}.")
    n, _, _, _, S, L = sig.shape
    return sig[..., t_idx, :].reshape(n, 48, len(t_idx), L)


def normalise_inputs(x: np.ndarray) -> np.ndarray:
    """Apply :data:`NORMALISATION` to ``(n, 48|24|12 ..., H, W)`` raw inputs whose channel axis 1 cycles E, |F|, T."""
    x = np.asarray(x, dtype=np.float32)
    out = np.empty_like(x)
    for c, name in enumerate(("E", "|F|", "T")):
        off, sc = NORMALISATION[name]
        out[:, c::3] = (x[:, c::3] - off) / sc
    return out


def normalise_density(rho: np.ndarray) -> np.ndarray:
    """``rho / 10`` (float32)."""
    off, sc = NORMALISATION["rho"]
    return ((np.asarray(rho) - off) / sc).astype(np.float32)


def denormalise_density(y: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalise_density`."""
    off, sc = NORMALISATION["rho"]
    return np.asarray(y) * sc + off


def cache_root() -> Path:
    """``$STUDIES_CACHE_DIR/radiative`` or ``<repo>/.cache/radiative`` (git-ignored)."""
    base = os.environ.get("STUDIES_CACHE_DIR")
    root = Path(base).expanduser() if base else Path(__file__).resolve().parents[2] / ".cache"
    return root / "radiative"


def _write_cache(path: Path, **arrays: np.ndarray) -> Path:
    """Write ``arrays`` to ``path`` (``.npz``) atomically: a temporary file, then a rename, so that a reader
    never sees a half-written cache and concurrent builders of the same key leave one complete file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)
    return path


def _read_cache(path: Path, *names: str) -> tuple[list[np.ndarray], float] | None:
    """Arrays ``names`` and the simulation wall time (s) stored in the cache ``path``; None when there is no
    cache or it predates the stored time (it is then rebuilt and overwritten)."""
    if not path.is_file():
        return None
    with np.load(path) as z:
        if "seconds" not in z.files:
            return None
        return [z[n] for n in names], float(z["seconds"])


@dataclass(frozen=True)
class RTDatasetConfig:
    """Parameters of a dataset; every field enters the cache key.

    Attributes
    ----------
    n_densities : int
        Number of densities (each simulated with 4 source edges).
    size : int
        Grid side N (64 in the paper).
    n_time : int or None
        Kept time samples; default ``size`` so that inputs are ``size x size`` images.
    mode : {"faithful", "physical"}
        Solver mode.
    seed : int
        Seed of the density generator.
    families : tuple of str
        Density families.
    weights : tuple of float or None
        Family weights (None = uniform).
    sim_batch : int
        Densities simulated together (memory/speed trade-off; does not change results).
    backend, device : str
        Solver backend ("auto", "numba", "numpy" or "torch", see :func:`lib.radiative.p1.simulate`) and
        torch device; results agree to round-off, so they are not part of the cache key.
    """

    n_densities: int = 64
    size: int = 32
    n_time: int | None = None
    mode: str = "faithful"
    seed: int = 0
    families: tuple[str, ...] = FAMILIES
    weights: tuple[float, ...] | None = None
    sim_batch: int = field(default=128, compare=False)
    backend: str = field(default="auto", compare=False)
    device: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.n_densities < 1:
            raise ValueError(f"n_densities must be >= 1, got {self.n_densities}.")
        if self.size < 8:
            raise ValueError(f"size must be >= 8, got {self.size}.")
        if self.mode not in ("faithful", "physical"):
            raise ValueError(f"mode must be 'faithful' or 'physical', got {self.mode!r}.")

    @property
    def time_samples(self) -> int:
        return self.size if self.n_time is None else int(self.n_time)

    def key(self) -> str:
        d = dataclasses.asdict(self)
        for k in ("sim_batch", "backend", "device"):
            d.pop(k)
        d["version"] = _VERSION
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class RTDataset:
    """A built dataset.

    Attributes
    ----------
    x_raw : ndarray, shape (n, 48, n_time, N), float32
        Un-normalised inputs.
    rho : ndarray, shape (n, N, N), float64
        Densities (y-up rows).
    family : ndarray of int, shape (n,)
        Index into ``config.families``.
    config : RTDatasetConfig
    seconds : float
        Wall time (s) of the simulations that made the data, also when it is loaded from the cache (the time
        measured when the cache was built).
    path : Path or None
        Cache file.
    cached : bool
        Whether the data was loaded from the cache rather than simulated by this call.
    """

    x_raw: np.ndarray
    rho: np.ndarray
    family: np.ndarray
    config: RTDatasetConfig
    seconds: float = 0.0
    path: Path | None = None
    cached: bool = False

    def inputs(self, n_channels: int = 48) -> np.ndarray:
        """Normalised inputs ``(n, n_channels, n_time, N)`` float32."""
        return normalise_inputs(self.x_raw[:, channel_indices(n_channels)])

    def targets(self) -> np.ndarray:
        """Normalised densities ``(n, 1, N, N)`` float32."""
        return normalise_density(self.rho)[:, None]

    @property
    def family_names(self) -> list[str]:
        return [self.config.families[i] for i in self.family]


def build_dataset(
    config: RTDatasetConfig,
    *,
    cache: bool = True,
    progress: bool | None = None,
) -> RTDataset:
    """Generate densities, simulate the 4 source edges, subsample and cache.

    Parameters
    ----------
    config : RTDatasetConfig
    cache : bool
        Read/write ``cache_root() / f"{config.key()}.npz"``.
    progress : bool or None
        tqdm bar over simulation batches (None: only when stderr is a terminal).
    """
    import time

    if not isinstance(config, RTDatasetConfig):
        raise TypeError(f"config must be an RTDatasetConfig, got {type(config).__name__}.")
    path = cache_root() / f"rt_{config.key()}.npz"
    if cache and (hit := _read_cache(path, "x_raw", "rho", "family")):
        (x_raw, rho, fam), seconds = hit
        return RTDataset(x_raw, rho, fam, config, seconds, path, cached=True)
    rng = np.random.default_rng(config.seed)
    rho, fam = generate_densities(
        config.n_densities, rng=rng, size=config.size, families=config.families, weights=config.weights
    )
    cfg = P1Config.from_mode(config.mode)
    S = step_count(config.size, cfg)
    t_idx = time_indices(S, config.time_samples)
    x = np.empty((config.n_densities, 48, len(t_idx), config.size), np.float32)
    starts = _batches(config.n_densities, config.sim_batch, progress,
                      f"simulating {config.n_densities}x4 at N={config.size}")
    t0 = time.perf_counter()
    for s0 in starts:
        sl = slice(s0, s0 + config.sim_batch)
        per_src = [
            simulate(rho[sl], edge, config=cfg, signal_dtype=np.float32, backend=config.backend, device=config.device).signals
            for edge in EDGES
        ]
        x[sl] = assemble_inputs(np.stack(per_src, axis=1), t_idx)
    seconds = time.perf_counter() - t0
    ds = RTDataset(x, rho, fam, config, seconds, None)
    if cache:
        ds.path = _write_cache(path, x_raw=x, rho=rho, family=fam, seconds=np.float64(seconds))
    return ds


# ----------------------------------------------------------------------------- M1 "créneaux" dataset
m1_opacity = PowerOpacity(scale=10.0, p=3, q=1)
"""Opacity of the M1 ``Regression28x28`` runs: ``sigma = T (10 rho)^3`` (1/cm), a callable ``f(rho, T)``
(a :class:`~lib.radiative.p1.PowerOpacity`, so the Numba backend runs it)."""


@dataclass(frozen=True)
class BumpDatasetConfig:
    """Parameters of the M1 bump ("créneau") dataset; every field but ``sim_batch`` enters the cache key.

    Attributes
    ----------
    n_samples : int
        Number of bumps; each sample bundles 4 runs with left-edge sources ``Ponctuel(p, p + 0.2)``,
        p in (0.1, 0.3, 0.5, 0.7), the other edges Neumann.
    size : int
        Grid side (28 originally, 168 steps).
    n_time : int or None
        Kept time samples (authors' rule); None keeps every step.
    heights : tuple of float
        Pre-smoothing heights drawn uniformly (the 10 "parts" of the original data).
    centre_grid : int
        Centres lie on a ``centre_grid`` x ``centre_grid`` grid of [0.2, 0.8]^2 (20 originally).
    opacity : {"rho_T", "m1"}
        ``sigma = rho T`` (the programs' standard case, default) or ``sigma = T (10 rho)^3`` (the M1
        ``Regression28x28`` variant, in which every bump is opaque and its height barely identifiable).
    seed : int
    """

    n_samples: int = 64
    size: int = 28
    n_time: int | None = None
    heights: tuple[float, ...] = (16.0, 14.0, 12.0, 10.0, 8.0, 6.0, 4.0, 2.0, 1.0)
    centre_grid: int = 20
    opacity: str = "rho_T"
    seed: int = 0
    sim_batch: int = field(default=128, compare=False)
    backend: str = field(default="auto", compare=False)
    device: str | None = field(default=None, compare=False)

    def key(self) -> str:
        d = dataclasses.asdict(self)
        for k in ("sim_batch", "backend", "device"):
            d.pop(k)
        d["version"] = _VERSION + "-bump"
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class BumpDataset:
    """Inputs ``x_raw (n, 48, n_time, size)`` float32 (channel ``12 * source + 3 * edge + ch``, sources =
    the 4 left-edge positions), labels ``(n, 3)`` = (x, y, height after smoothing), densities ``(n, size, size)``."""

    x_raw: np.ndarray
    labels: np.ndarray
    rho: np.ndarray
    config: BumpDatasetConfig
    seconds: float = 0.0
    path: Path | None = None
    cached: bool = False

    def inputs(self) -> np.ndarray:
        return normalise_inputs(self.x_raw)


def build_bump_dataset(config: BumpDatasetConfig, *, cache: bool = True, progress: bool | None = None) -> BumpDataset:
    """Simulate the M1 bump dataset (see :class:`BumpDatasetConfig`), cached like :func:`build_dataset`."""
    import time

    if not isinstance(config, BumpDatasetConfig):
        raise TypeError(f"config must be a BumpDatasetConfig, got {type(config).__name__}.")
    path = cache_root() / f"bump_{config.key()}.npz"
    if cache and (hit := _read_cache(path, "x_raw", "labels", "rho")):
        (x_raw, labels, rho), seconds = hit
        return BumpDataset(x_raw, labels, rho, config, seconds, path, cached=True)
    rng = np.random.default_rng(config.seed)
    centres = np.linspace(0.2, 0.8, config.centre_grid)
    x = rng.choice(centres, config.n_samples)
    y = rng.choice(centres, config.n_samples)
    h = rng.choice(np.asarray(config.heights, dtype=float), config.n_samples)
    rho, peak = crenau_densities(x, y, h, size=config.size)
    # expression densities: ghost cells hold the (background) density, not 0
    if config.opacity not in ("m1", "rho_T"):
        raise ValueError(f"opacity must be 'm1' or 'rho_T', got {config.opacity!r}.")
    sig_fn = m1_opacity if config.opacity == "m1" else PowerOpacity()  # T (10 rho)^3 or rho T
    cfg = P1Config.faithful(sigma_a=sig_fn, sigma_c=sig_fn, ghost_rho="copy")
    S = step_count(config.size, cfg)
    t_idx = time_indices(S, S if config.n_time is None else config.n_time)
    out = np.empty((config.n_samples, 48, len(t_idx), config.size), np.float32)
    starts = _batches(config.n_samples, config.sim_batch, progress,
                      f"simulating {config.n_samples}x4 bumps at N={config.size}")
    t0 = time.perf_counter()
    for s0 in starts:
        sl = slice(s0, s0 + config.sim_batch)
        per_src = []
        for p in (0.1, 0.3, 0.5, 0.7):
            bcs = {e: Neumann() for e in EDGES}
            bcs["left"] = Ponctuel(p, p + 0.2)
            per_src.append(simulate(rho[sl], bcs, config=cfg, signal_dtype=np.float32, backend=config.backend,
                                   device=config.device).signals)
        out[sl] = assemble_inputs(np.stack(per_src, axis=1), t_idx)
    seconds = time.perf_counter() - t0
    labels = np.stack([x, y, peak], axis=1)
    ds = BumpDataset(out, labels, rho, config, seconds, None)
    if cache:
        ds.path = _write_cache(path, x_raw=out, labels=labels, rho=rho, seconds=np.float64(seconds))
    return ds


def standardise_by_train(x: np.ndarray, train_idx: np.ndarray, *, in_place: bool = False, chunk: int = 256
                         ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Subtract the training-split mean input and divide by the per-channel spread of the deviations.

    Useful when the informative part of the signals is a small perturbation of a common response (the
    bump dataset: sample-to-sample variations are ~1e-3 of the fixed-constant scale). The statistics come
    from the training split only and are returned so they can be recorded and re-applied. They are
    accumulated in float64 over chunks of ``chunk`` training rows, so neither the rounding of a float32 sum
    nor a full-size temporary enters (the radiative lab inputs are several GB).

    Parameters
    ----------
    x : ndarray, shape (n, C, H, W)
        Inputs; with ``in_place=True`` they must be a float32 array, which is overwritten.
    train_idx : ndarray of int
        Rows of ``x`` that the statistics are computed from (at least two).
    in_place : bool, keyword-only
        Standardise ``x`` itself instead of a float32 copy.
    chunk : int, keyword-only
        Rows per pass; bounds the temporaries to ``chunk`` rows.

    Returns
    -------
    xs : ndarray, float32, shape (n, C, H, W)
        The standardised inputs (``x`` itself when ``in_place``).
    stats : dict
        ``mean`` (1, C, H, W) and ``std`` (1, C, 1, 1), float64: a float32 mean of signals that vary by
        1e-4 of their size is off by up to 2e-3 of their spread.
    """
    if in_place:
        if not (isinstance(x, np.ndarray) and x.dtype == np.float32 and x.flags.writeable):
            raise ValueError("in_place=True needs a writeable float32 ndarray; pass in_place=False for a copy.")
    else:
        x = np.array(x, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"x must have shape (n, C, H, W), got {x.shape}.")
    idx = np.asarray(train_idx)
    if len(idx) < 2:
        raise ValueError("need at least two training samples to standardise.")
    total = np.zeros((1, *x.shape[1:]), np.float64)
    for s in range(0, len(idx), chunk):
        total += x[idx[s:s + chunk]].sum(0, keepdims=True, dtype=np.float64)
    mean = total / len(idx)
    sq = np.zeros((1, x.shape[1], 1, 1), np.float64)
    for s in range(0, len(idx), chunk):
        sq += ((x[idx[s:s + chunk]] - mean) ** 2).sum(axis=(0, 2, 3), keepdims=True)
    std = np.sqrt(sq / (len(idx) * x.shape[2] * x.shape[3])) + 1e-8
    for s in range(0, len(x), chunk):  # in float64, rounded once on the way back
        x[s:s + chunk] = (x[s:s + chunk] - mean) / std
    return x, {"mean": mean, "std": std}


def apply_standardisation(x: np.ndarray, stats: dict[str, np.ndarray]) -> np.ndarray:
    """Re-apply statistics from :func:`standardise_by_train` to new inputs (noisy, other solver, ...)."""
    return ((np.asarray(x, dtype=np.float32) - stats["mean"]) / stats["std"]).astype(np.float32)
