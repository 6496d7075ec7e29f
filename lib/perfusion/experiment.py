"""End-to-end CT-perfusion processing used by the perfusion chapter.

* :func:`preprocess` — per slice: optional rigid registration, bilateral filter, automatic
  AIF/VOF with partial-volume scaling, baseline length from the AIF arrival, brain mask.
* :func:`deconvolve_slices` — a deconvolution method applied slice by slice (own AIF each),
  plus the model-free TTP; maps of shape ``(N, H, W)``.
* :func:`cnn_inputs`, :func:`cnn_targets`, :func:`targets_to_maps` — the paper's scaling:
  frames windowed to [-160, 240] HU, mapped to [0, 1] (8-bit) and standardised with the
  authors' constants; maps windowed to [0, 1] by their display windows.
* :func:`enhancement_inputs` — our alternative input: baseline-subtracted frames in a
  [-20, 100] HU enhancement window (the contrast signal made explicit).
* :func:`map_loss_weights`, :func:`map_loss` — per-map inverse-variance weights and a
  brain-weighted MSE, so that the low-variance TTP target is not drowned by CBV/CBF.
* :func:`train_map_unet` — trains :class:`lib.perfusion.unet.UNet` (Adam +
  ReduceLROnPlateau as in the paper-era code, or cosine) through :func:`lib.core.train.fit`.
* :func:`map_errors` — per-class MAE and bias of estimated maps against the truth.
* :func:`lesion_scores` — lesion Dice (mean and spread over subjects) and volume agreement
  of several methods' maps under the threshold rules.
* :func:`protocol_scores`, :func:`motion_scores` — deconvolution on another acquisition
  protocol, and box-NLR with per-frame motion with and without rigid registration.
* :func:`delay_mtt_sweep` — estimated/true CBF of every method on synthetic curves over
  delay and MTT (Kudo-style), on the phantom's protocol grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from lib.perfusion import phantom as P
from lib.perfusion.deconvolution import bolus_arrival, deconvolve, enhancement, time_to_peak
from lib.perfusion.dicom import window_to_unit
from lib.perfusion.lesions import lesion_agreement, lesion_labels
from lib.perfusion.preprocess import bilateral_filter, brain_mask, register_frames, select_input_functions

__all__ = [
    "INPUT_WINDOW",
    "INPUT_MEAN",
    "INPUT_STD",
    "map_windows",
    "subsample_frames",
    "Preprocessed",
    "preprocess",
    "deconvolve_slices",
    "cnn_inputs",
    "INPUT_MODES",
    "network_inputs",
    "ENHANCEMENT_WINDOW",
    "enhancement_inputs",
    "cnn_targets",
    "map_loss_weights",
    "map_loss",
    "targets_to_maps",
    "train_map_unet",
    "predict_maps",
    "map_errors",
    "lesion_scores",
    "agreement_value",
    "map_scores",
    "delay_mtt_sweep",
    "protocol_scores",
    "motion_scores",
]

#: The authors' input window (DICOM 40/400 HU).
INPUT_WINDOW: tuple[float, float] = (-160.0, 240.0)
#: The authors' standardisation of the [0, 1]-scaled input (``src/dataloader.py@0c95485``).
INPUT_MEAN: float = 0.2375
INPUT_STD: float = 0.3159
#: Enhancement window of :func:`enhancement_inputs`, HU above the pre-contrast baseline.
ENHANCEMENT_WINDOW: tuple[float, float] = (-20.0, 100.0)


def map_windows(duration_s: float) -> dict[str, tuple[float, float]]:
    """Display windows ``(low, high)`` that scale each map to [0, 1].

    CBV [0, 4] ml/100 g is the UniToBrain NLR DICOM window (WC 2, WW 4); CBF [0, 100]
    ml/100 g/min and TTP [0, duration] s are ours (the CBF and TTP windows of the dataset
    were not available).
    """
    return {"cbv": (0.0, 4.0), "cbf": (0.0, 100.0), "ttp": (0.0, float(duration_s))}


def subsample_frames(n_total: int, n: int) -> np.ndarray:
    """``n`` frame indices at a constant stride ``floor((n_total - 1) / (n - 1))`` from frame 0.

    Unlike the authors' ``arange(0, T, floor(T / n))[:n]``, the stride spans (nearly) the whole
    acquisition, and it stays uniform so that deconvolution can use ``dt * stride``.
    """
    if not 2 <= n <= n_total:
        raise ValueError(f"n must be in [2, {n_total}], got {n}")
    stride = (n_total - 1) // (n - 1)
    return np.arange(n) * stride


@dataclass
class Preprocessed:
    """Preprocessed slices.

    Attributes
    ----------
    frames : ndarray, shape (N, T, H, W)
        Registered (optionally) and filtered frames, HU.
    aif, vof : ndarray, shape (N, T)
        Partial-volume-corrected AIF and VOF, HU above baseline.
    n_baseline : ndarray, shape (N,)
        Pre-contrast frames per slice.
    mask : ndarray, shape (N, H, W), bool
        Automatic brain mask.
    pv_scale : ndarray, shape (N,)
    dt : float
        Frame interval, s.
    """

    frames: np.ndarray
    aif: np.ndarray
    vof: np.ndarray
    n_baseline: np.ndarray
    mask: np.ndarray
    pv_scale: np.ndarray
    dt: float

    def enhancement(self, i: int) -> np.ndarray:
        """Baseline-subtracted curves of slice ``i``, shape ``(H, W, T)``."""
        return enhancement(self.frames[i], int(self.n_baseline[i])).transpose(1, 2, 0)


def preprocess(
    frames: np.ndarray,
    dt: float,
    pixel_mm: float,
    *,
    register: bool = False,
    bilateral: bool = True,
    n_candidates: int = 100,
) -> Preprocessed:
    """Preprocess slices ``(N, T, H, W)`` (HU): registration, bilateral filter, AIF/VOF, mask."""
    x = np.asarray(frames, dtype=np.float32)
    if x.ndim != 4:
        raise ValueError(f"frames must have shape (N, T, H, W), got {x.shape}")
    N, T = x.shape[:2]
    out = np.empty_like(x)
    aif = np.empty((N, T), np.float32)
    vof = np.empty((N, T), np.float32)
    nb = np.empty(N, int)
    mask = np.empty((N,) + x.shape[2:], bool)
    pv = np.empty(N)
    for i in range(N):
        f = register_frames(x[i], pixel_mm) if register else x[i]
        f = bilateral_filter(f, pixel_mm) if bilateral else f
        first = select_input_functions(f, 2, dt, n_candidates=n_candidates)  # >= 2 pre-contrast frames
        n0 = min(bolus_arrival(first.aif_raw), T // 3)
        inf = select_input_functions(f, n0, dt, n_candidates=n_candidates)
        out[i], aif[i], vof[i], nb[i], pv[i] = f, inf.aif, inf.vof, n0, inf.pv_scale
        mask[i] = brain_mask(f, n0)
    return Preprocessed(out, aif, vof, nb, mask, pv, dt)


def deconvolve_slices(pre: Preprocessed, method: str, *, mask: np.ndarray | None = None,
                      frame_idx: np.ndarray | None = None, **kwargs: Any) -> dict[str, np.ndarray]:
    """Apply a deconvolution method slice by slice.

    Parameters
    ----------
    pre : Preprocessed
    method : str
        A name from :data:`lib.perfusion.deconvolution.METHODS`.
    mask : ndarray, shape (N, H, W), optional
        Pixels to process (default ``pre.mask``); maps are 0 elsewhere.
    frame_idx : ndarray, optional
        Uniformly strided subset of frames (see :func:`subsample_frames`); ``dt`` is scaled.

    Returns
    -------
    dict with ``cbf, cbv, mtt, tmax, ttp`` (and ``delay`` for box-NLR), each ``(N, H, W)``.
    """
    mask = pre.mask if mask is None else np.asarray(mask, bool)
    N, T, H, W = pre.frames.shape
    idx = np.arange(T) if frame_idx is None else np.asarray(frame_idx)
    dt = pre.dt * (int(idx[1] - idx[0]) if idx.size > 1 else 1)
    out: dict[str, np.ndarray] = {}
    for i in range(N):
        C = pre.enhancement(i)[..., idx]
        m = mask[i]
        est = deconvolve(C[m], pre.aif[i][idx], dt, method, **kwargs)
        vals = est.as_dict()
        vals["ttp"] = time_to_peak(C[m], dt)
        for k, v in vals.items():
            if k not in out:
                out[k] = np.zeros((N, H, W), np.float32)
            out[k][i][m] = v
    return out


def cnn_inputs(frames: np.ndarray, frame_idx: np.ndarray | None = None) -> np.ndarray:
    """Network input ``(N, n, H, W)`` float32: window [-160, 240] HU -> 8-bit [0, 1] -> standardise."""
    x = np.asarray(frames)
    if frame_idx is not None:
        x = x[:, frame_idx]
    lo, hi = INPUT_WINDOW
    u = window_to_unit(x, (lo + hi) / 2, hi - lo)
    return ((u - INPUT_MEAN) / INPUT_STD).astype(np.float32)


INPUT_MODES: tuple[str, ...] = ("paper", "enhancement")
"""Network inputs: the authors' windowed frames (:func:`cnn_inputs`) or the enhancement (:func:`enhancement_inputs`)."""


def network_inputs(pre: Preprocessed, input_mode: str, frame_idx: np.ndarray | None = None) -> np.ndarray:
    """The network input of ``input_mode`` for preprocessed slices ``pre`` (optionally a subset of frames).

    Parameters
    ----------
    pre : Preprocessed
        From :func:`preprocess`.
    input_mode : {"paper", "enhancement"}
        :func:`cnn_inputs` (the authors') or :func:`enhancement_inputs` (baseline-subtracted).
    frame_idx : ndarray, optional
        Subset of frames.
    """
    if input_mode == "paper":
        return cnn_inputs(pre.frames, frame_idx)
    if input_mode == "enhancement":
        return enhancement_inputs(pre.frames, pre.n_baseline, frame_idx)
    raise ValueError(f"input_mode must be one of {INPUT_MODES}, got {input_mode!r}; set it in the parameter file "
                     "or with --set input_mode=enhancement")


def enhancement_inputs(frames: np.ndarray, n_baseline: np.ndarray, frame_idx: np.ndarray | None = None,
                       *, window: tuple[float, float] = ENHANCEMENT_WINDOW, scale_hu: float = 25.0) -> np.ndarray:
    """Network input ``(N, n, H, W)`` float32: frames minus their pre-contrast mean, clipped, in units of 25 HU.

    Parameters
    ----------
    frames : ndarray, shape (N, T, H, W)
        Filtered frames, HU (e.g. :attr:`Preprocessed.frames`).
    n_baseline : ndarray of int, shape (N,)
        Pre-contrast frames per slice (:attr:`Preprocessed.n_baseline`).
    frame_idx : ndarray, optional
        Subset of frames.
    window : (float, float)
        Enhancement clipped to this range, HU (arteries saturate).
    scale_hu : float
        Divisor, HU (grey matter peaks near 1).
    """
    x = np.asarray(frames, dtype=np.float32)
    nb = np.asarray(n_baseline, dtype=int)
    if x.ndim != 4 or nb.shape != (x.shape[0],):
        raise ValueError(f"need frames (N, T, H, W) and n_baseline (N,); got {x.shape} and {nb.shape}")
    if np.any(nb < 1) or np.any(nb > x.shape[1]):
        raise ValueError(f"n_baseline must be in [1, T={x.shape[1]}], got {nb.min()}..{nb.max()}")
    base = np.stack([x[i, : nb[i]].mean(0) for i in range(x.shape[0])])[:, None]
    if frame_idx is not None:
        x = x[:, frame_idx]
    return (np.clip(x - base, *window) / scale_hu).astype(np.float32)


def cnn_targets(
    maps: dict[str, np.ndarray], names: tuple[str, ...], windows: dict[str, tuple[float, float]]
) -> np.ndarray:
    """Targets ``(N, len(names), H, W)`` in [0, 1] (8-bit quantised, as the authors' uint8 maps)."""
    missing = [n for n in names if n not in maps or n not in windows]
    if missing:
        raise ValueError(f"maps/windows missing for {missing}")
    ys = []
    for n in names:
        lo, hi = windows[n]
        ys.append(window_to_unit(maps[n], (lo + hi) / 2, hi - lo))
    return np.stack(ys, axis=1).astype(np.float32)


def targets_to_maps(y: np.ndarray | torch.Tensor, names: tuple[str, ...],
                    windows: dict[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """Invert :func:`cnn_targets`: ``(N, C, H, W)`` in [0, 1] -> physical maps ``(N, H, W)``."""
    y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    return {n: (windows[n][0] + y[:, c] * (windows[n][1] - windows[n][0])).astype(np.float32)
            for c, n in enumerate(names)}


def map_loss_weights(y: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """Per-map loss weights ``(C,)``, inversely proportional to each target's variance in the brain, mean 1.

    Parameters
    ----------
    y : ndarray, shape (N, C, H, W)
        Targets (e.g. from :func:`cnn_targets`).
    brain : ndarray of bool, shape (N, H, W)
    """
    y = np.asarray(y, dtype=np.float64)
    brain = np.asarray(brain, bool)
    if y.ndim != 4 or brain.shape != (y.shape[0],) + y.shape[2:]:
        raise ValueError(f"need y (N, C, H, W) and brain (N, H, W); got {y.shape} and {brain.shape}")
    if not brain.any():
        raise ValueError("brain mask is empty: no pixels to weigh the maps on")
    var = y.transpose(1, 0, 2, 3)[:, brain].var(axis=1)
    w = 1.0 / np.maximum(var, 1e-8)
    return (w / w.mean()).astype(np.float32)


def map_loss(out: torch.Tensor, target: torch.Tensor, weights: torch.Tensor | None = None,
             *, background_weight: float = 0.1) -> torch.Tensor:
    """Weighted MSE over maps and pixels.

    Parameters
    ----------
    out : Tensor, shape (B, C, H, W)
    target : Tensor, shape (B, C + 1, H, W)
        The maps followed by one brain-mask channel (1 in the brain).
    weights : Tensor, shape (C,), optional
        Per-map weights (:func:`map_loss_weights`); default 1.
    background_weight : float
        Weight of pixels outside the brain relative to brain pixels.
    """
    if target.shape[1] != out.shape[1] + 1:
        raise ValueError(f"target needs {out.shape[1]} map channels plus a mask channel; got {target.shape[1]}")
    y, m = target[:, :-1], target[:, -1:]
    w = torch.ones(out.shape[1], device=out.device) if weights is None else weights.to(out.device)
    px = background_weight + (1.0 - background_weight) * m
    return ((out - y).square() * w.view(1, -1, 1, 1) * px).sum() / (px.sum() * out.shape[1])


def train_map_unet(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    width: float = 0.125,
    pool: str = "avg",
    epochs: int = 20,
    lr: float = 2e-3,
    batch_size: int = 8,
    seed: int = 0,
    device: Any = "auto",
    flip: bool = True,
    schedule: str = "plateau",
    brain_train: np.ndarray | None = None,
    brain_val: np.ndarray | None = None,
    balance_maps: bool = False,
    background_weight: float = 0.1,
):
    """Train the paper's U-Net (one output channel per map) with MSE.

    With ``brain_train``/``brain_val`` (bool ``(N, H, W)``) the loss is :func:`map_loss`:
    pixels outside the brain weigh ``background_weight`` and, with ``balance_maps``, each map
    is weighted by :func:`map_loss_weights` of the training targets. Without them it is the
    plain MSE of the paper-era code.

    Adam with ``ReduceLROnPlateau(patience=5)`` on the validation loss (``schedule="plateau"``),
    as in the paper-era code (the paper text says SGD; every public version of the code uses
    Adam), or, for short CPU runs where a plateau schedule never triggers, a cosine decay of the
    learning rate to zero over ``epochs`` (``schedule="cosine"``). With ``flip`` each batch is
    mirrored left-right with probability 1/2 (the anatomy is symmetric; the lesion side is random).

    Returns
    -------
    lib.core.train.FitResult
    """
    from lib.core import repro, schedules, train
    from lib.perfusion.unet import UNet

    torch.manual_seed(seed)
    model = UNet(x_train.shape[1], y_train.shape[1], width=width, pool=pool)
    loss_fn = torch.nn.functional.mse_loss
    if (brain_train is None) != (brain_val is None):
        raise ValueError("give both brain_train and brain_val, or neither")
    if brain_train is not None:
        wts = torch.as_tensor(map_loss_weights(y_train, brain_train)) if balance_maps else None
        y_train = np.concatenate([y_train, np.asarray(brain_train, np.float32)[:, None]], axis=1)
        y_val = np.concatenate([y_val, np.asarray(brain_val, np.float32)[:, None]], axis=1)

        def loss_fn(out, y):  # noqa: F811
            return map_loss(out, y, wts, background_weight=background_weight)
    tl = train.array_loader(x_train, y_train, batch_size=batch_size, shuffle=True, seed=seed)
    vl = train.array_loader(x_val, y_val, batch_size=batch_size)
    gen = torch.Generator().manual_seed(repro.derive_seed(seed, "flip"))

    def flip_batch(x: torch.Tensor, y: torch.Tensor):
        if flip and torch.rand((), generator=gen).item() < 0.5:
            return x.flip(-1), y.flip(-1)
        return x, y

    opt = torch.optim.Adam(model.parameters(), lr=lr)
    if schedule == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", patience=5)
    elif schedule == "cosine":
        sched = schedules.LRSchedule(opt, "cosine", total=max(epochs, 1))
    else:
        raise ValueError(f"schedule must be 'plateau' or 'cosine', got {schedule!r}")
    return train.fit(model, tl, loss_fn=loss_fn, epochs=epochs, optimizer=opt, val_loader=vl,
                     batch_transform=flip_batch, scheduler=sched, scheduler_monitor=schedule == "plateau",
                     device=device, progress=False)


def predict_maps(model: torch.nn.Module, x: np.ndarray, names: tuple[str, ...],
                 windows: dict[str, tuple[float, float]], *, device: Any = "auto",
                 batch_size: int = 16) -> dict[str, np.ndarray]:
    """Run the network on ``x`` ``(N, T, H, W)`` and return physical maps."""
    from lib.core import train

    dl = train.array_loader(x, batch_size=batch_size)
    y = train.predict(model, dl, device=device)
    return targets_to_maps(y, names, windows)


def map_errors(est: dict[str, np.ndarray], truth: dict[str, np.ndarray], classes: dict[str, np.ndarray],
               names: tuple[str, ...] = ("cbf", "cbv", "mtt", "tmax", "ttp")) -> pd.DataFrame:
    """Mean absolute error and mean bias (estimate - truth) per map and tissue class.

    Returns
    -------
    DataFrame with columns ``map, class, mae, bias, truth_mean`` (units of the map).
    """
    rows = []
    for n in names:
        if n not in est or n not in truth:
            continue
        for cname, m in classes.items():
            if not np.any(m):
                continue
            d = est[n][m].astype(np.float64) - truth[n][m]
            rows.append({"map": n, "class": cname, "mae": float(np.abs(d).mean()), "bias": float(d.mean()),
                         "truth_mean": float(truth[n][m].mean())})
    return pd.DataFrame(rows)


def lesion_scores(maps_by_name: dict[str, dict[str, np.ndarray]], core: np.ndarray, penumbra: np.ndarray,
                  brain: np.ndarray, subject: np.ndarray, pixel_mm: float, slice_mm: float,
                  *, rules: tuple[str, ...] = ("paper", "mtt", "tmax")) -> tuple[pd.DataFrame, dict]:
    """Lesion agreement of each method's maps with reference masks under each applicable rule.

    Parameters
    ----------
    maps_by_name : dict of name -> maps
        Maps as for :func:`lib.perfusion.lesions.lesion_labels`; a rule is skipped when a
        method lacks one of its maps.
    core, penumbra : ndarray of bool, shape (N, H, W)
        Reference masks (the phantom's truth, or another method's labels).
    brain : ndarray of bool, shape (N, H, W)
    subject : ndarray of int, shape (N,)
        Subject of each slice (Dice is per subject, then mean and SD over subjects with a lesion).
    pixel_mm, slice_mm : float

    Returns
    -------
    table : DataFrame
        One row per (maps, rule): ``core Dice``, ``core Dice SD``, ``penumbra Dice``,
        ``penumbra Dice SD``, ``n core``, ``n penumbra`` (subjects with a reference lesion),
        ``core vol r``, ``penumbra vol r``, ``core vol bias, ml``, ``penumbra vol bias, ml``.
    labels : dict
        ``(name, rule) -> (core, penumbra)`` masks of every method.
    """
    need = {"paper": ("cbv", "cbf", "ttp"), "mtt": ("cbv", "cbf"), "tmax": ("cbf", "tmax")}
    unknown = [r for r in rules if r not in need]
    if unknown:
        raise ValueError(f"unknown rules {unknown}; choose from {sorted(need)}")
    rows, labels = [], {}
    for name, mp in maps_by_name.items():
        for rule in rules:
            if not all(k in mp for k in need[rule]):
                continue
            c, p = lesion_labels(mp, brain, rule=rule)
            labels[(name, rule)] = (c, p)
            a_c = lesion_agreement(core, c, subject, pixel_mm, slice_mm)
            a_p = lesion_agreement(penumbra, p, subject, pixel_mm, slice_mm)
            rows.append({"maps": name, "rule": rule, "core Dice": a_c["dice"], "core Dice SD": a_c["dice_sd"],
                         "penumbra Dice": a_p["dice"], "penumbra Dice SD": a_p["dice_sd"],
                         "n core": a_c["n"], "n penumbra": a_p["n"],
                         "core vol r": a_c["r"], "penumbra vol r": a_p["r"],
                         "core vol bias, ml": a_c["bias"], "penumbra vol bias, ml": a_p["bias"]})
    return pd.DataFrame(rows), labels


def agreement_value(agree: pd.DataFrame, maps: str, rule: str, column: str) -> float:
    """One number of a :func:`lesion_scores` table: ``column`` of the row ``(maps, rule)``; NaN reads 0.

    A NaN Dice (no lesion in either mask on every subject) counts as 0 in the prose and the metrics,
    so that a method that finds nothing is not shown as undefined.

    Raises
    ------
    KeyError
        No row ``(maps, rule)`` or no such column, naming what the table has.
    """
    if column not in agree.columns:
        raise KeyError(f"the lesion table has no column {column!r}; it has {list(agree.columns)}")
    v = agree[(agree["maps"] == maps) & (agree["rule"] == rule)][column]
    if v.empty:
        raise KeyError(f"the lesion table has no row for maps {maps!r} with rule {rule!r}; it has maps "
                       f"{sorted(set(agree['maps']))} and rules {sorted(set(agree['rule']))}")
    return float(np.nan_to_num(v.iloc[0], nan=0.0))


def map_scores(maps: dict[str, np.ndarray], truth: dict[str, np.ndarray], brain: np.ndarray, core: np.ndarray,
               penumbra: np.ndarray, subject: np.ndarray, pixel_mm: float, slice_mm: float) -> dict[str, float]:
    """CBF and CBV mean absolute error in the brain and paper-rule lesion Dice against the truth.

    Parameters
    ----------
    maps, truth : dict of name -> ndarray (N, H, W)
        Estimated and true maps (``"cbf"``, ``"cbv"``, and what :func:`lib.perfusion.lesions.lesion_labels` reads).
    brain, core, penumbra : ndarray of bool, shape (N, H, W)
        Brain mask and true lesions.
    subject : ndarray of int, shape (N,)
        Subject of each slice; ``pixel_mm``, ``slice_mm`` its geometry.

    Returns
    -------
    dict
        ``"CBF MAE"``, ``"CBV MAE"``, ``"core Dice"``, ``"penumbra Dice"``.
    """
    from lib.perfusion import lesions as pm

    est_core, est_pen = pm.lesion_labels(maps, brain, rule="paper")
    return {"CBF MAE": float(np.abs(maps["cbf"] - truth["cbf"])[brain].mean()),
            "CBV MAE": float(np.abs(maps["cbv"] - truth["cbv"])[brain].mean()),
            "core Dice": pm.lesion_agreement(core, est_core, subject, pixel_mm, slice_mm)["dice"],
            "penumbra Dice": pm.lesion_agreement(penumbra, est_pen, subject, pixel_mm, slice_mm)["dice"]}


def delay_mtt_sweep(methods: list[str], sigma: float, rng: np.random.Generator, *,
                    protocol: P.Protocol = P.CINE, fine_dt: float = 0.1, cbv: float = 4.0,
                    delays: np.ndarray | None = None, mtts: np.ndarray | None = None, n_rep: int = 100,
                    shapes: tuple[str, ...] = ("box", "exponential")) -> pd.DataFrame:
    """Estimated over true CBF of each method on synthetic curves with known delay and MTT.

    Curves are made by :func:`lib.perfusion.phantom.tissue_curves` on the protocol's fine grid
    (AIF arrival 8 s, peak 400 HU, dispersion 1 s, CBV ``cbv`` ml/100 g), sampled at the
    protocol's frames, with ``n_rep`` noisy repeats (SD ``sigma`` HU) per setting; identical
    noise for every method.

    Returns
    -------
    DataFrame with columns ``shape, method, delay, mtt, cbf_ratio`` (mean over repeats).
    """
    delays = np.arange(0.0, 8.01, 1.0) if delays is None else np.asarray(delays, float)
    mtts = np.array([3.0, 4.0, 6.0, 8.0, 12.0]) if mtts is None else np.asarray(mtts, float)
    tf = np.arange(0.0, protocol.duration + fine_dt / 2, fine_dt)
    idx = np.rint(protocol.times / fine_dt).astype(int)
    aif = P.aif_curve(tf, t0=8.0, peak=400.0)
    Dg, Mg = np.meshgrid(delays, mtts, indexing="ij")
    cbf_g = 60.0 * cbv / Mg  # central volume theorem, ml/100 g/min
    rows = []
    for shape in shapes:
        curves, _ = P.tissue_curves(tf, aif, cbf_g.ravel(), Mg.ravel(), Dg.ravel(), np.ones(Dg.size), shape)
        c = np.repeat(curves[:, idx], n_rep, axis=0)
        c = c + rng.normal(0.0, sigma, c.shape)
        for m in methods:
            e = deconvolve(c, aif[idx], protocol.dt, m)
            r = (e.cbf.reshape(-1, n_rep).mean(1) / cbf_g.ravel()).reshape(Dg.shape)
            for a, d in enumerate(delays):
                for b, mt in enumerate(mtts):
                    rows.append({"shape": shape, "method": m, "delay": d, "mtt": mt, "cbf_ratio": r[a, b]})
    return pd.DataFrame(rows)


def protocol_scores(ph: P.Phantom, methods: tuple[str, ...] = ("oSVD", "box-NLR")) -> list[dict]:
    """CBF/CBV MAE (brain) and paper-rule penumbra Dice against the truth of a phantom, per method.

    The phantom is preprocessed at its own protocol's frame interval (e.g. :data:`lib.perfusion.phantom.SHUTTLE`).

    Returns
    -------
    list of dict with ``experiment, method, CBF MAE, CBV MAE, penumbra Dice``.
    """
    pre = preprocess(ph.frames, ph.protocol.dt, ph.pixel_mm)
    rows = []
    for m in methods:
        mp = deconvolve_slices(pre, m, mask=ph.brain)
        _, pen = lesion_labels(mp, ph.brain, rule="paper")
        rows.append({"experiment": f"{ph.protocol.name} protocol ({ph.protocol.n_frames} x {ph.protocol.dt:g} s)",
                     "method": m, "CBF MAE": float(np.abs(mp["cbf"] - ph.cbf)[ph.brain].mean()),
                     "CBV MAE": float(np.abs(mp["cbv"] - ph.cbv)[ph.brain].mean()),
                     "penumbra Dice": lesion_agreement(ph.penumbra, pen, ph.subject, ph.pixel_mm, ph.slice_mm)["dice"]})
    return rows


def motion_scores(ph: P.Phantom, method: str = "box-NLR") -> list[dict]:
    """CBF/CBV MAE (brain) of ``method`` on a phantom with motion, without and with rigid registration.

    Returns
    -------
    list of two dicts (not registered, registered) with ``experiment, method, CBF MAE, CBV MAE``.
    """
    rows = []
    mot = f"motion {ph.subjects.motion_px[0]:g} px / {ph.subjects.motion_deg[0]:g} deg"
    for reg in (False, True):
        pre = preprocess(ph.frames, ph.protocol.dt, ph.pixel_mm, register=reg)
        mp = deconvolve_slices(pre, method, mask=ph.brain)
        rows.append({"experiment": f"{mot}, {'registered' if reg else 'not registered'}", "method": method,
                     "CBF MAE": float(np.abs(mp["cbf"] - ph.cbf)[ph.brain].mean()),
                     "CBV MAE": float(np.abs(mp["cbv"] - ph.cbv)[ph.brain].mean())})
    return rows
