"""The radiative-transfer chapter's glue: splits, input preparation, rotation augmentation, noise, training
and evaluation of the V-Nets, the bump CNN and its 90x90 classification variant, and the speed record.

Everything the chapter does twice, or that deserves a test, lives here; the chapter only wires these
calls and plots.

Conventions
-----------
* Inputs are channels-first ``(n, C, n_time, N)`` float32 images, channel ``12 * source + 3 * edge + ch``
  (edges ordered ``up, down, left, right``, channels ``E, |F|, T``), see :mod:`lib.radiative.dataset`.
* Targets are densities divided by 10, ``(n, 1, N, N)`` float32, y-up rows.
* Noise is *relative* Gaussian noise on the raw signals, ``x (1 + sigma eps)`` with ``eps ~ N(0, 1)``
  independent per value.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from lib.core import metrics, schedules, train, verdict
from lib.radiative import dataset as rtd
from lib.radiative.bump_cnn import BumpCNN, bump_score, keras_r2
from lib.radiative.p1 import rotate_density
from lib.radiative.vnet import init_output_mean

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "Splits",
    "split_indices",
    "rotation_channel_map",
    "rotate_inputs",
    "augment_rotations",
    "InputPipeline",
    "NoiseAugment",
    "add_relative_noise",
    "batch_r2",
    "MapScores",
    "LR_SCHEDULES",
    "fit_map_model",
    "fit_and_score",
    "predict_maps",
    "evaluate_maps",
    "noise_curve",
    "level_where_below",
    "BumpRun",
    "fit_bump_regression",
    "obstacle_labels",
    "severe_score",
    "ClassificationRun",
    "fit_bump_classification",
    "read_speed_record",
    "speed_sentence",
    "bump_seed_table",
    "bump_spread_text",
    "bump_metrics",
    "bump_verdict",
    "GPU_RECORD_KEYS",
    "read_gpu_record",
    "gpu_sentence",
]

_EDGE_ROT = (2, 3, 1, 0)
"""Edge ``e`` of a density becomes edge ``_EDGE_ROT[e]`` of the density rotated by +90 degrees
(up -> left, down -> right, left -> down, right -> up; edges ordered up, down, left, right)."""
_REVERSED = (False, False, True, True)
"""Whether positions along edge ``e`` run backwards after the rotation (left/right edges become down/up)."""


# ----------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class Splits:
    """Index arrays of a train / validation / test split (disjoint, covering ``range(n)``)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def sizes(self) -> tuple[int, int, int]:
        return len(self.train), len(self.val), len(self.test)


def split_indices(n: int, *, seed: int, n_test: int | None = None, val_fraction: float = 0.2,
                  test_fraction: float = 0.1) -> Splits:
    """Random split of ``range(n)``.

    Parameters
    ----------
    n : int
        Number of samples (>= 3).
    seed : int
        Seed of the permutation (``numpy.random.default_rng``).
    n_test : int, optional
        Test-set size; default ``n - int(0.7 n) - int(0.2 n)`` (the authors' 70/20/10 split).
    val_fraction, test_fraction : float
        Fractions of ``n`` for validation and (when ``n_test`` is None) test.

    Returns
    -------
    Splits
    """
    if n < 3:
        raise ValueError(f"need at least 3 samples to split into train/val/test, got {n}.")
    perm = np.random.default_rng(seed).permutation(n)
    n_va = max(1, int(val_fraction * n))
    if n_test is None:
        n_tr = int((1 - val_fraction - test_fraction) * n + 1e-9)
        n_te = n - n_tr - n_va
    else:
        n_te = int(n_test)
        n_tr = n - n_va - n_te
    if n_tr < 1 or n_te < 1:
        raise ValueError(f"split of {n} samples leaves {n_tr} for training and {n_te} for test; "
                         "lower n_test / val_fraction or add samples.")
    return Splits(perm[:n_tr], perm[n_tr:n_tr + n_va], perm[n_tr + n_va:n_tr + n_va + n_te])


# ----------------------------------------------------------------------------- rotations
def rotation_channel_map() -> tuple[np.ndarray, np.ndarray]:
    """Channel permutation of a +90 degree rotation of the density.

    Returns
    -------
    source_of : ndarray of int, shape (48,)
        Rotated channel ``k`` is original channel ``source_of[k]``.
    reverse : ndarray of bool, shape (48,)
        Whether the positions of rotated channel ``k`` are reversed.

    Notes
    -----
    The source on edge ``s`` lighting ``rho`` is the source on ``_EDGE_ROT[s]`` lighting the rotated
    density, and the signal measured on edge ``m`` is the one measured on ``_EDGE_ROT[m]`` (positions
    reversed when ``m`` is a left/right edge): checked against the solver in the tests.
    """
    source_of = np.empty(48, dtype=int)
    reverse = np.empty(48, dtype=bool)
    for s in range(4):
        for m in range(4):
            for c in range(3):
                k = 12 * _EDGE_ROT[s] + 3 * _EDGE_ROT[m] + c
                source_of[k] = 12 * s + 3 * m + c
                reverse[k] = _REVERSED[m]
    return source_of, reverse


def rotate_inputs(x: np.ndarray, k: int = 1) -> np.ndarray:
    """48-channel inputs of the densities rotated by ``k * 90`` degrees (no new simulation).

    Parameters
    ----------
    x : ndarray, shape (n, 48, n_time, N)
        Raw or fixed-constant inputs (the map is a permutation, so any per-channel-type scaling commutes).
    k : int
        Number of +90 degree rotations.
    """
    x = np.asarray(x)
    if x.ndim != 4 or x.shape[1] != 48:
        raise ValueError(f"rotate_inputs needs (n, 48, n_time, N) inputs, got {x.shape}; rotate before selecting channels.")
    source_of, reverse = rotation_channel_map()
    out = x
    for _ in range(k % 4):
        out = out[:, source_of]
        out = np.where(reverse[None, :, None, None], out[..., ::-1], out)
    return np.ascontiguousarray(out)


def augment_rotations(x: np.ndarray, rho: np.ndarray, idx: np.ndarray, *, k: Sequence[int] = (0, 1, 2, 3)
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Samples ``idx`` and their rotated copies: inputs, densities and the originating index.

    Parameters
    ----------
    x : ndarray, shape (n, 48, n_time, N)
    rho : ndarray, shape (n, N, N)
    idx : ndarray of int
        Samples to augment (one split).
    k : sequence of int
        Rotations (multiples of 90 degrees) to include.

    Returns
    -------
    x_aug : ndarray, shape (len(k) * len(idx), 48, n_time, N)
    rho_aug : ndarray, shape (len(k) * len(idx), N, N)
    origin : ndarray of int, shape (len(k) * len(idx),)
        Index into the original samples (rotated copies stay in the split of their original).
    """
    idx = np.asarray(idx)
    k = list(k)
    m = len(idx)
    x_aug = np.empty((len(k) * m, *np.shape(x)[1:]), dtype=np.asarray(x[:0]).dtype)  # filled in place: no second copy
    for j, r in enumerate(k):
        x_aug[j * m:(j + 1) * m] = rotate_inputs(x[idx], r)
    rs = [rotate_density(rho[idx], r) for r in k]
    return x_aug, np.concatenate(rs), np.tile(idx, len(k))


# ----------------------------------------------------------------------------- input preparation and noise
@dataclass
class InputPipeline:
    """Raw signals -> network inputs: channel selection, fixed constants, then (optionally) standardisation
    with training-split statistics, recorded so that every other input (noisy, other solver) gets the same map.

    Parameters
    ----------
    x_raw : ndarray, shape (n, 48, n_time, N)
        Raw training-pool signals.
    train_idx : ndarray of int
        Rows of ``x_raw`` whose statistics define the standardisation.
    standardise : bool
        Standardise after the fixed constants (:func:`lib.radiative.dataset.standardise_by_train`).
    """

    x_raw: np.ndarray
    train_idx: np.ndarray
    standardise: bool = True
    _cache: dict[int, tuple[np.ndarray, dict[str, np.ndarray] | None]] = field(default_factory=dict, repr=False)

    def _fit(self, n_channels: int) -> tuple[np.ndarray, dict[str, np.ndarray] | None]:
        if n_channels not in self._cache:
            raw = self.x_raw if n_channels == 48 else self.x_raw[:, rtd.channel_indices(n_channels)]
            x = rtd.normalise_inputs(raw)  # one float32 copy, standardised in place below
            self._cache[n_channels] = (rtd.standardise_by_train(x, self.train_idx, in_place=True)
                                       if self.standardise else (x, None))
        return self._cache[n_channels]

    def inputs(self, n_channels: int = 48) -> np.ndarray:
        """Prepared inputs of every row of ``x_raw``, ``(n, n_channels, n_time, N)`` float32."""
        return self._fit(n_channels)[0]

    def stats(self, n_channels: int = 48) -> dict[str, np.ndarray] | None:
        """Standardisation statistics (``mean`` (1, C, H, W), ``std`` (1, C, 1, 1)) or None."""
        return self._fit(n_channels)[1]

    def transform(self, x_raw: np.ndarray, n_channels: int = 48) -> np.ndarray:
        """Apply the recorded map to new raw 48-channel signals ``(m, 48, n_time, N)``."""
        x = rtd.normalise_inputs(np.asarray(x_raw)[:, rtd.channel_indices(n_channels)])
        st = self.stats(n_channels)
        return x if st is None else rtd.apply_standardisation(x, st)

    def raw_scale(self, n_channels: int = 48) -> np.ndarray:
        """Per-channel factor ``d(prepared)/d(raw)``, shape (1, C, 1, 1): the affine map's slope."""
        sc = np.array([rtd.NORMALISATION[n][1] for n in ("E", "|F|", "T")], dtype=np.float32)
        per = 1.0 / np.tile(sc, n_channels // 3)[None, :, None, None]
        st = self.stats(n_channels)
        return per if st is None else per / st["std"]


def add_relative_noise(x_raw: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """``x (1 + sigma eps)``, ``eps ~ N(0, 1)`` independent per value (relative measurement noise)."""
    if sigma < 0:
        raise ValueError(f"noise level must be >= 0, got {sigma}.")
    x = np.asarray(x_raw, dtype=np.float32)
    if sigma == 0:
        return x.copy()
    return (x * (1 + sigma * rng.standard_normal(x.shape, dtype=np.float32))).astype(np.float32)


class NoiseAugment:
    """``batch_transform`` for :func:`lib.core.train.fit` that adds fresh relative noise to the raw signals.

    Both normalisations are affine per channel, so noise ``x_raw sigma eps`` on the raw signals is
    ``(x_raw sigma eps) * slope`` on the prepared inputs; the raw values are recovered from the prepared
    ones. Each sample draws its level uniformly in ``[0, sigma_max]`` so the model sees clean and noisy inputs.

    Parameters
    ----------
    pipeline : InputPipeline
    n_channels : int
    sigma_max : float
        Largest relative noise level.
    seed : int
        Seed of the torch generator (independent of the global state).
    """

    def __init__(self, pipeline: InputPipeline, n_channels: int, sigma_max: float, *, seed: int) -> None:
        if sigma_max <= 0:
            raise ValueError(f"sigma_max must be > 0 for noise-aware training, got {sigma_max}.")
        st = pipeline.stats(n_channels)
        off = np.array([rtd.NORMALISATION[n][0] for n in ("E", "|F|", "T")], dtype=np.float32)
        sc = np.array([rtd.NORMALISATION[n][1] for n in ("E", "|F|", "T")], dtype=np.float32)
        self._off = torch.from_numpy(np.tile(off, n_channels // 3)[None, :, None, None])
        self._sc = torch.from_numpy(np.tile(sc, n_channels // 3)[None, :, None, None])
        self._mean = None if st is None else torch.from_numpy(st["mean"].astype(np.float32))
        self._std = None if st is None else torch.from_numpy(st["std"].astype(np.float32))
        self.sigma_max = float(sigma_max)
        self._gen = torch.Generator().manual_seed(int(seed))

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        dev = x.device
        fixed = x if self._std is None else x * self._std.to(dev) + self._mean.to(dev)
        raw = fixed * self._sc.to(dev) + self._off.to(dev)
        sig = torch.rand((x.shape[0], 1, 1, 1), generator=self._gen) * self.sigma_max
        eps = torch.randn(x.shape, generator=self._gen)
        d_fixed = raw * (sig * eps).to(dev) / self._sc.to(dev)
        d = d_fixed if self._std is None else d_fixed / self._std.to(dev)
        return x + d, y


# ----------------------------------------------------------------------------- training / evaluation of map models
def batch_r2(out: torch.Tensor, target: torch.Tensor) -> float:
    """The authors' Keras metric: R² over the whole batch (``axis=None``), via :func:`lib.core.metrics.r2_score`."""
    return metrics.r2_score(target.detach().cpu().numpy(), out.detach().cpu().numpy())


LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine", "onecycle")
"""Learning-rate schedules of :func:`fit_map_model`, applied per optimiser step (:mod:`lib.core.schedules`)."""


def fit_map_model(model: nn.Module, train_xy: tuple[np.ndarray, np.ndarray], val_xy: tuple[np.ndarray, np.ndarray],
                  *, epochs: int, batch_size: int, lr: float, seed: int, device: Any = "auto",
                  batch_transform: Callable | None = None, schedule: str = "constant") -> tuple[train.FitResult, float]:
    """Train a density-map network with MSE and Adam, keeping the best-validation-loss weights.

    Parameters
    ----------
    model : nn.Module
        ``(B, C, H, W) -> (B, 1, H, W)`` in (0, 1); its output bias starts at the logit of the mean training
        density (:func:`lib.radiative.vnet.init_output_mean`).
    train_xy, val_xy : (ndarray, ndarray)
        Prepared inputs ``(n, C, H, W)`` and normalised targets ``(n, 1, H, W)`` for training and validation.
    epochs, batch_size, lr, seed
        Loop settings; ``seed`` fixes the initial weights and the shuffling order.
    batch_transform : callable, optional
        Applied to every training and validation batch (e.g. :class:`NoiseAugment`).
    schedule : {"constant", "cosine", "onecycle"}
        Learning-rate schedule over all optimiser steps, ``lr`` being the peak
        (:func:`lib.core.schedules.lr_factor`; ``onecycle`` warms up over the first quarter).

    Returns
    -------
    result : FitResult
    seconds : float
        Wall time of the training.
    """
    (xt, yt), (xv, yv) = train_xy, val_xy
    torch.manual_seed(seed)
    init_output_mean(model, float(np.mean(yt)))
    tr = train.array_loader(xt, yt, batch_size=batch_size, shuffle=True, seed=seed)
    va = train.array_loader(xv, yv, batch_size=batch_size)
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"schedule must be one of {LR_SCHEDULES}, got {schedule!r}.")
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = schedules.LRSchedule(opt, schedule, total=max(1, epochs * len(tr)), pct_start=0.25)
    t0 = time.perf_counter()
    res = train.fit(model, tr, loss_fn=nn.functional.mse_loss, epochs=epochs,
                    optimizer=opt, val_loader=va, scheduler=sched, scheduler_interval="step",
                    metrics={"r2": batch_r2}, batch_transform=batch_transform, device=device, progress=False)
    return res, time.perf_counter() - t0


def fit_and_score(model: nn.Module, data: tuple, truth: np.ndarray, *, epochs: int, batch_size: int, lr: float,
                  seed: int, device: Any = "auto", schedule: str = "constant",
                  batch_transform: Callable | None = None) -> tuple[train.FitResult, float, MapScores]:
    """Train a density-map network (:func:`fit_map_model`, seeded) and score it on the test maps.

    Parameters
    ----------
    model : nn.Module
    data : (train_xy, val_xy, test_x)
        Prepared training and validation pairs and test inputs.
    truth : ndarray
        Test maps (densities / 10).
    epochs, batch_size, lr, seed, device, schedule, batch_transform
        As in :func:`fit_map_model`; ``torch.manual_seed(seed)`` is set first, so that a model built
        lazily draws the same weights.

    Returns
    -------
    (FitResult, seconds, MapScores)
    """
    torch.manual_seed(seed)
    res, sec = fit_map_model(model, data[0], data[1], epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                             device=device, schedule=schedule, batch_transform=batch_transform)
    return res, sec, evaluate_maps(res.model, data[2], truth, batch_size=batch_size, device=device)


def predict_maps(model: nn.Module, x: np.ndarray, *, batch_size: int = 32, device: Any = "auto") -> np.ndarray:
    """Predicted maps ``(n, H, W)`` for prepared inputs ``(n, C, H, W)``."""
    return train.predict(model, train.array_loader(x, batch_size=batch_size), device=device).numpy()[:, 0]


@dataclass
class MapScores:
    """Scores of predicted density maps against the truth (normalised densities).

    Attributes
    ----------
    pred : ndarray, shape (n, H, W)
    per_map : dict of ndarray (n,)
        ``r2``, ``relative_l2``, ``ssim``, ``psnr`` (:func:`lib.core.metrics.image_regression_report`) and
        ``dice_loss``.
    overall : dict of float
        ``mse``, ``r2`` (global, pooled over all pixels of all maps), and the means of ``per_map``.
    """

    pred: np.ndarray
    per_map: dict[str, np.ndarray]
    overall: dict[str, float]


def evaluate_maps(model: nn.Module, x: np.ndarray, truth: np.ndarray, *, batch_size: int = 32,
                  device: Any = "auto") -> MapScores:
    """Predict ``x`` and score against ``truth`` ``(n, H, W)`` or ``(n, 1, H, W)`` (densities / 10)."""
    truth = np.asarray(truth)
    truth = truth[:, 0] if truth.ndim == 4 else truth
    pred = predict_maps(model, x, batch_size=batch_size, device=device)
    rep = metrics.image_regression_report(truth, pred, data_range=1.0)
    rep["dice_loss"] = metrics.soft_dice_loss(truth, pred)
    overall = {"mse": float(np.mean((truth - pred) ** 2)), "r2": metrics.r2_score(truth, pred)}
    overall.update({k: float(np.mean(rep[k])) for k in ("relative_l2", "ssim", "psnr", "dice_loss")})
    return MapScores(pred, rep, overall)


def noise_curve(model: nn.Module, pipeline: InputPipeline, x_raw: np.ndarray, truth: np.ndarray,
                levels: Sequence[float], *, seed: int, n_channels: int = 48, batch_size: int = 32,
                device: Any = "auto") -> np.ndarray:
    """Global test R² of ``model`` at each relative noise level (one fixed noise draw per level).

    Returns
    -------
    ndarray, shape (len(levels),)
    """
    rng = np.random.default_rng(seed)
    out = []
    for s in levels:
        x = pipeline.transform(add_relative_noise(x_raw, float(s), rng), n_channels)
        out.append(evaluate_maps(model, x, truth, batch_size=batch_size, device=device).overall["r2"])
    return np.asarray(out)


def level_where_below(levels: Sequence[float], values: Sequence[float], threshold: float = 0.5) -> float:
    """Smallest level at which a decreasing curve falls to ``threshold``, linearly interpolated in the level.

    Returns ``0.0`` when already below at the first level and ``nan`` when it stays above over the range
    (then the answer is "beyond the largest level tried").
    """
    lv = np.asarray(levels, dtype=float)
    v = np.asarray(values, dtype=float)
    if lv.shape != v.shape or lv.ndim != 1 or lv.size == 0:
        raise ValueError("levels and values must be 1-D sequences of equal, non-zero length.")
    if np.any(np.diff(lv) <= 0):
        raise ValueError("levels must be strictly increasing.")
    if v[0] <= threshold:
        return float(lv[0])
    for i in range(1, len(v)):
        if v[i] <= threshold:
            return float(lv[i - 1] + (v[i - 1] - threshold) / (v[i - 1] - v[i]) * (lv[i] - lv[i - 1]))
    return float("nan")


# ----------------------------------------------------------------------------- bump CNN (regression)
@dataclass
class BumpRun:
    """Outcome of :func:`fit_bump_regression`: test truth/predictions (x, y, height), scores, model.

    ``keras_r2_mean_predictor`` is the notebook's metric for predicting the mean training label everywhere
    (what a model that learned nothing scores).
    """

    truth: np.ndarray
    pred: np.ndarray
    keras_r2: float
    r2_per_target: list[float]
    score: dict[str, float]
    n_train: int
    n_test: int
    n_params: int
    model: nn.Module
    seconds: float
    keras_r2_mean_predictor: float = float("nan")


def _bump_split(n: int, seed: int, n_test: int | None) -> Splits:
    return split_indices(n, seed=seed, n_test=n_test)


def fit_bump_regression(bds: rtd.BumpDataset, *, filters: Sequence[int], hidden: Sequence[int], epochs: int,
                        batch_size: int, lr: float, seed: int, n_test: int | None = None,
                        device: Any = "auto") -> BumpRun:
    """Train the M1 CNN on a bump dataset and score it on the held-out bumps.

    Inputs are standardised with training statistics (a bump perturbs a common response by ~1e-3) and so
    are the labels (x, y in cm and the height in g/cm^3 differ by a factor 10); the kept weights are those
    of the best validation loss.
    """
    sp = _bump_split(len(bds.labels), seed, n_test)
    xb, _ = rtd.standardise_by_train(bds.inputs(), sp.train)
    yb = bds.labels.astype(np.float32)
    mu, sd = yb[sp.train].mean(0), yb[sp.train].std(0) + 1e-6
    ys = (yb - mu) / sd
    torch.manual_seed(seed)
    cnn = BumpCNN(48, xb.shape[2], xb.shape[3], filters=filters, hidden=hidden)
    t0 = time.perf_counter()
    res = train.fit(cnn, train.array_loader(xb[sp.train], ys[sp.train], batch_size=batch_size, shuffle=True, seed=seed),
                    loss_fn=nn.functional.mse_loss, epochs=epochs, optimizer=torch.optim.Adam(cnn.parameters(), lr=lr),
                    val_loader=train.array_loader(xb[sp.val], ys[sp.val], batch_size=batch_size),
                    device=device, progress=False)
    seconds = time.perf_counter() - t0
    pred = train.predict(res.model, train.array_loader(xb[sp.test], batch_size=batch_size), device=device).numpy() * sd + mu
    truth = yb[sp.test]
    return BumpRun(truth, pred, keras_r2(truth, pred), [metrics.r2_score(truth[:, j], pred[:, j]) for j in range(3)],
                   bump_score(truth, pred), len(sp.train), len(sp.test), train.count_parameters(cnn), res.model, seconds,
                   keras_r2(truth, np.broadcast_to(yb[sp.train].mean(0), truth.shape)))


def bump_seed_table(runs: Sequence[BumpRun], seeds: Sequence[int]) -> pd.DataFrame:
    """One row per training of the bump CNN: Keras R² (%), mean per-target R² and custom score (%).

    Parameters
    ----------
    runs : sequence of BumpRun
        From :func:`fit_bump_regression`, one per seed.
    seeds : sequence of int
        The seed of each run (the index of the table).

    Returns
    -------
    DataFrame
        Columns ``"Keras R² (%)"``, ``"mean per-target R²"``, ``"custom score (%)"``, indexed by seed.
    """
    import pandas as pd

    if len(runs) != len(seeds) or not runs:
        raise ValueError(f"need one seed per run and at least one run, got {len(runs)} runs and {len(seeds)} seeds.")
    return pd.DataFrame({"Keras R² (%)": [100 * r.keras_r2 for r in runs],
                         "mean per-target R²": [float(np.mean(r.r2_per_target)) for r in runs],
                         "custom score (%)": [float(r.score["score"]) for r in runs]},
                        index=pd.Index(list(seeds), name="seed"))


def bump_spread_text(table: pd.DataFrame) -> str:
    """`` (means of n trainings, SD ...)`` for a :func:`bump_seed_table` of two rows or more, else `` (one training)``.

    The text follows the two means in the chapter's sentence: it gives the sample standard deviations
    (``ddof=1``) of the Keras R² and of the custom score, then the range of the custom score.
    """
    if len(table) < 2:
        return " (one training)"  # a glued sentence is never empty (lib.core.report.text)
    sd = table.std(ddof=1)
    k, c = "Keras R² (%)", "custom score (%)"
    return (f" (means of {len(table)} trainings; SD {sd[k]:.2f} and {sd[c]:.1f} points, custom score per training "
            f"{table[c].min():.1f}–{table[c].max():.1f} %)")


def bump_metrics(runs: Sequence[BumpRun], table: pd.DataFrame) -> dict[str, float]:
    """The chapter's ``rt_bump_*`` numbers from the trainings of one bump dataset.

    Parameters
    ----------
    runs : sequence of BumpRun
        The trainings, one per seed (the first gives the sizes).
    table : DataFrame
        Their :func:`bump_seed_table`.

    Returns
    -------
    dict
        Means over the trainings of ``keras_r2`` (fraction), ``keras_r2_pct``, ``r2_mean``, ``score`` (%) and
        ``keras_r2_mean_predictor_pct``; ``score_min``; ``n_seeds``, ``params``, ``n_test``, ``n_train``; and,
        with two trainings or more, ``score_sd`` (sample SD, points).
    """
    mean = table.mean()
    out = {"keras_r2": mean["Keras R² (%)"] / 100, "keras_r2_pct": mean["Keras R² (%)"],
           "r2_mean": mean["mean per-target R²"], "score": mean["custom score (%)"],
           "score_min": table["custom score (%)"].min(), "n_seeds": len(runs), "params": runs[0].n_params,
           "n_test": runs[0].n_test, "n_train": runs[0].n_train,
           "keras_r2_mean_predictor_pct": 100 * float(np.mean([r.keras_r2_mean_predictor for r in runs]))}
    if len(table) > 1:
        out["score_sd"] = table["custom score (%)"].std(ddof=1)
    return {k: float(v) for k, v in out.items()}


def bump_verdict(table: pd.DataFrame, *, keras_goal: float = 95.0, score_goal: float = 90.0) -> str:
    """The verdict on the bump CNN's goals, computed from the means of a :func:`bump_seed_table`.

    Each mean is compared with its goal (:func:`lib.core.verdict.position`, 0.05-point tolerance). When the custom
    score falls short by no more than two sample SDs of the trainings (:func:`lib.core.verdict.gap_in_spread`), the
    sentence says so.
    """
    mean = table.mean()
    keras, score = mean["Keras R² (%)"], mean["custom score (%)"]
    on_keras = verdict.position(keras, keras_goal, what=f"the goal of {keras_goal:g} %", tol=0.05, fmt=".1f",
                                unit=" points")
    on_score = verdict.position(score, score_goal, what=f"the goal of {score_goal:g} %", tol=0.05, fmt=".1f",
                                unit=" points")
    text = f"{on_keras} for the Keras R² and {on_score} for the custom score"
    if len(table) > 1:
        sd = table["custom score (%)"].std(ddof=1)
        if verdict.gap_in_spread(score, score_goal, sd, k=2.0):
            text += f", a gap within two SDs of the spread between trainings ({sd:.1f} points)"
    return text


# ----------------------------------------------------------------------------- bump CNN (classification, 90x90)
SOURCE_STARTS: tuple[float, ...] = (0.1, 0.3, 0.5, 0.7)
"""Lower ends of the four left-edge partial sources ``Ponctuel(p, p + 0.2)`` (cm)."""


def obstacle_labels(y_centre: np.ndarray, *, starts: Sequence[float] = SOURCE_STARTS, width: float = 0.2) -> np.ndarray:
    """Multi-label targets of the classification variant: is the bump in front of source ``s``?

    Parameters
    ----------
    y_centre : ndarray, shape (n,)
        Bump centre ordinates (cm).

    Returns
    -------
    ndarray of float32, shape (n, 4)
        1 where ``p_s <= y < p_s + width``.
    """
    y = np.asarray(y_centre, dtype=float)[:, None]
    p = np.asarray(starts, dtype=float)[None, :]
    return ((y >= p - 1e-9) & (y < p + width - 1e-9)).astype(np.float32)


def severe_score(y_true: np.ndarray, prob: np.ndarray, threshold: float = 0.5) -> float:
    """The M1 'score personnalisé sévère': % of samples whose *every* label is right after thresholding."""
    t = np.asarray(y_true) > 0.5
    p = np.asarray(prob) > threshold
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"expected two (n, k) arrays of equal shape, got {t.shape} and {p.shape}.")
    return 100 * float((t == p).all(1).mean())


@dataclass
class ClassificationRun:
    """Outcome of :func:`fit_bump_classification`: binary accuracy and severe score (%) on the test bumps."""

    binary_accuracy: float
    severe: float
    n_train: int
    n_test: int
    n_params: int
    seconds: float


def fit_bump_classification(bds: rtd.BumpDataset, *, filters: Sequence[int], hidden: Sequence[int], epochs: int,
                            batch_size: int, lr: float, seed: int, n_test: int | None = None,
                            device: Any = "auto") -> ClassificationRun:
    """Train the M1 CNN with 4 sigmoid outputs (bump in front of source s) with binary cross-entropy."""
    sp = _bump_split(len(bds.labels), seed, n_test)
    xb, _ = rtd.standardise_by_train(bds.inputs(), sp.train)
    yl = obstacle_labels(bds.labels[:, 1])
    torch.manual_seed(seed)
    cnn = BumpCNN(48, xb.shape[2], xb.shape[3], filters=filters, hidden=hidden, n_out=4)
    t0 = time.perf_counter()
    res = train.fit(cnn, train.array_loader(xb[sp.train], yl[sp.train], batch_size=batch_size, shuffle=True, seed=seed),
                    loss_fn=nn.functional.binary_cross_entropy_with_logits, epochs=epochs,
                    optimizer=torch.optim.Adam(cnn.parameters(), lr=lr),
                    val_loader=train.array_loader(xb[sp.val], yl[sp.val], batch_size=batch_size),
                    device=device, progress=False)
    seconds = time.perf_counter() - t0
    prob = torch.sigmoid(train.predict(res.model, train.array_loader(xb[sp.test], batch_size=batch_size),
                                       device=device)).numpy()
    truth = yl[sp.test]
    return ClassificationRun(metrics.accuracy(truth.ravel() > 0.5, prob.ravel() > 0.5) * 100, severe_score(truth, prob),
                             len(sp.train), len(sp.test), train.count_parameters(cnn), seconds)


# ----------------------------------------------------------------------------- prose helpers
def _repo_path(path: str | Path) -> Path:
    """``path``, or the repository root joined with it when it is relative."""
    p = Path(path)
    return p if p.is_absolute() else Path(__file__).resolve().parents[2] / p


def read_speed_record(path: str | Path) -> dict[str, Any] | None:
    """The side-by-side speed record written by ``benchmarks/radiative_solver.py --reference-binary``, or None.

    Relative paths are taken from the repository root. A record must hold ``ratio``, ``machine``, ``date``, ``grid``, ``reference_seconds`` and ``ours_seconds``;
    anything else raises, so that a malformed record is never quoted.
    """
    p = _repo_path(path)
    if not p.is_file():
        return None
    rec = json.loads(p.read_text())
    need = {"ratio", "machine", "date", "grid", "reference_seconds", "ours_seconds"}
    if not need <= set(rec):
        raise ValueError(f"speed record {p} lacks {sorted(need - set(rec))}; re-run benchmarks/radiative_solver.py "
                         "--reference-binary PATH to rewrite it.")
    if not (isinstance(rec["ratio"], (int, float)) and math.isfinite(rec["ratio"]) and rec["ratio"] > 0):
        raise ValueError(f"speed record {p} has a bad ratio {rec['ratio']!r}.")
    return rec


def speed_sentence(record: Mapping[str, Any]) -> str:
    """The chapter's sentence for a side-by-side speed record (:func:`read_speed_record`).

    Says where and when it was measured, the clock, both times (ours amortised over the record's batch, and
    alone when recorded), the threads and backend when recorded, and the ratio.
    """
    clock = "CPU time" if record.get("clock") == "cpu" else "wall time"
    how = [f"{record['threads']} thread(s)" if "threads" in record else "one thread each"]
    if record.get("backend"):
        how.append(f"our {record['backend']} backend")
    ours = f"{record['ours_seconds']:.3f} s in ours"
    if record.get("batch", 1) > 1:
        ours += f" (amortised over a batch of {record['batch']}"
        ours += f"; {record['ours_seconds_unbatched']:.3f} s alone)" if "ours_seconds_unbatched" in record else ")"
    text = (f"Measured side by side with the original program on {record['machine']} ({record['date']}; "
            f"{', '.join(how)}; {clock}), one N = {record['grid']} simulation took "
            f"{record['reference_seconds']:.1f} s in the original program and {ours}: a ratio of "
            f"{record['ratio']:.0f}.")
    if "ratio_parallel" in record:
        text += (f" Batched on {record['parallel_threads']} threads, ours took {record['ours_wall_seconds_parallel']:.3f} s "
                 f"of wall time per simulation (the original program forces one thread): a throughput ratio of "
                 f"{record['ratio_parallel']:.0f}.")
    return text


GPU_RECORD_KEYS: frozenset[str] = frozenset({
    "device_name", "grid", "steps", "batch", "seconds_per_simulation", "simulations_per_second",
    "torch_version", "cuda_version", "date", "machine"})
"""Keys a GPU throughput record (``benchmarks/radiative_solver.py --gpu-record``) must hold to be quoted."""


def read_gpu_record(path: str | Path) -> dict[str, Any] | None:
    """The GPU throughput record of the torch backend, or None when there is none.

    Parameters
    ----------
    path : str or Path
        JSON file written by ``benchmarks/radiative_solver.py --backend torch --device cuda --gpu-record``;
        relative paths are taken from the repository root. An empty string means "no record".

    Returns
    -------
    dict or None
        The record; None when ``path`` is empty or the file does not exist.

    Raises
    ------
    ValueError
        A record that lacks a key of :data:`GPU_RECORD_KEYS`, or whose grid, steps, batch, seconds per
        simulation or simulations per second are not positive finite numbers, or whose two rates disagree
        (``simulations_per_second * seconds_per_simulation`` not 1 within 1 %): a malformed record is never quoted.
    """
    if not str(path):
        return None
    p = _repo_path(path)
    if not p.is_file():
        return None
    rec = json.loads(p.read_text())
    if not isinstance(rec, dict) or not GPU_RECORD_KEYS <= set(rec):
        missing = sorted(GPU_RECORD_KEYS - set(rec)) if isinstance(rec, dict) else sorted(GPU_RECORD_KEYS)
        raise ValueError(f"GPU record {p} lacks {missing}; re-run benchmarks/radiative_solver.py --backend torch "
                         "--device cuda --gpu-record to rewrite it.")
    for k in ("grid", "steps", "batch", "seconds_per_simulation", "simulations_per_second"):
        v = rec[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise ValueError(f"GPU record {p} has a bad {k} {v!r} (a positive finite number is needed).")
    if abs(rec["simulations_per_second"] * rec["seconds_per_simulation"] - 1) > 0.01:
        raise ValueError(f"GPU record {p}: simulations_per_second {rec['simulations_per_second']} is not "
                         f"1 / seconds_per_simulation {rec['seconds_per_simulation']}.")
    return rec


def gpu_sentence(record: Mapping[str, Any] | None) -> str:
    """The chapter's sentence on the torch backend's GPU throughput, from a record or its absence.

    Parameters
    ----------
    record : mapping or None
        From :func:`read_gpu_record`.

    Returns
    -------
    str
        With a record: the device, the day of the measurement, the simulations per second at the record's
        grid, steps and batch, the time per simulation (ms), torch/CUDA versions and, when recorded, the ratio
        to the Numba kernel on the same machine's CPU threads. Without: that no GPU measurement is recorded
        and how to make one.
    """
    if record is None:
        return ("No GPU measurement has been recorded (`benchmarks/radiative_solver.py --backend torch --device cuda "
                "--gpu-record` writes one on a machine with CUDA), so no GPU throughput is quoted.")
    name = str(record["device_name"])
    gpu = name if "gpu" in name.lower() else f"{name} GPU"
    day = str(record["date"]).split()[0]
    text = (f"On one {gpu} (measured {day} on {record['machine']}; torch {record['torch_version']}, CUDA "
            f"{record['cuda_version']}), the torch backend runs {record['simulations_per_second']:,.0f} N = "
            f"{record['grid']} simulations ({record['steps']} steps) per second at batch {record['batch']}, "
            f"{1e3 * record['seconds_per_simulation']:.2f} ms of wall time each")
    ratio = record.get("gpu_over_cpu")
    if isinstance(ratio, (int, float)) and not isinstance(ratio, bool) and "cpu_threads" in record:
        kernel = f"the fused Numba kernel on {record['cpu_threads']} CPU thread(s) of the same machine"
        if ratio >= 1:
            text += f": {ratio:.1f} times the throughput of {kernel}"
        else:
            text += f", slower than {kernel} ({ratio:.2f} times its throughput): at this grid size the GPU does not pay"
    return text + "."
