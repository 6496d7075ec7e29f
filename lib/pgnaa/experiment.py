"""Glue for the PGNAA chapter: models by name, RSM training, accuracy-versus-counts curves.

The protocol of Cheng et al.: every class has one (or, for NIST, several) full
measurements ("sources"); training and test samples are fresh RSM draws of ``k`` counts
from them. :func:`accuracy_vs_k` evaluates any set of classifiers on the same test
draws, with Wilson 95 % intervals, so the CNN can be put next to the likelihood limit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.core import train
from lib.pgnaa.inception_resnet1d import InceptionResNetV2_1D
from lib.pgnaa.sampling import RSMBatch, normalise_counts, rsm1, rsm2, rsm3
from lib.pgnaa.small1d import GRUClassifier, ImageCNN2d, ResNet1d, SmallCNN1d, TransformerClassifier

__all__ = [
    "make_model",
    "n_parameters",
    "train_rsm",
    "predict_labels",
    "draw_test_set",
    "wilson_interval",
    "accuracy_vs_k",
    "counts_for_accuracy",
    "bin_channels",
    "cnn_classifier",
]


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def make_model(name: str, n_classes: int, length: int, *, width: float = 0.125,
               repeats: tuple[int, int, int] = (1, 1, 1), channels: tuple[int, ...] = (16, 32, 64, 64)) -> nn.Module:
    """Build a classifier by name.

    ``"irv2"`` (1D Inception-ResNet-V2, ``width``/``repeats``), ``"small_cnn"`` (``channels``),
    ``"resnet1d"`` (basic blocks (1,1,1,1), base width ``channels[0]``), ``"resnet101_1d"``
    (bottleneck (3,4,23,3), base width ``channels[0]``), ``"gru"``, ``"transformer"`` and
    ``"image2d"`` (for RSM-4 images).
    """
    if name == "irv2":
        return InceptionResNetV2_1D(n_classes, width=width, repeats=tuple(repeats))
    if name == "small_cnn":
        return SmallCNN1d(n_classes, channels=tuple(channels))
    if name == "resnet1d":
        return ResNet1d(n_classes, layers=(1, 1, 1, 1), base_width=channels[0])
    if name == "resnet101_1d":
        return ResNet1d(n_classes, layers=(3, 4, 23, 3), base_width=channels[0], bottleneck=True)
    if name == "gru":
        return GRUClassifier(n_classes, hidden=channels[-1], stride=8)
    if name == "transformer":
        patch = 16
        return TransformerClassifier(n_classes, length=length - length % patch, patch=patch, d_model=channels[-1],
                                     n_heads=4, n_layers=2, dim_feedforward=2 * channels[-1])
    if name == "image2d":
        return ImageCNN2d(n_classes, channels=tuple(channels[:3]))
    raise ValueError(f"unknown model {name!r}")


def _crop_for(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(model, TransformerClassifier):
        return lambda x: x[..., : model.length]
    return lambda x: x


def train_rsm(model: nn.Module, sources: torch.Tensor, source_labels: torch.Tensor, *, k: int | tuple[int, int],
              method: str = "rsm3", epochs: int = 5, steps_per_epoch: int = 20, batch_size: int = 64,
              lr: float = 1e-3, seed: int = 0, device="auto", image_size: tuple[int, int] = (64, 256)
              ) -> tuple[train.FitResult, float]:
    """Train ``model`` on fresh RSM draws from ``sources`` (a new sample every step).

    Each epoch is ``steps_per_epoch`` batches; sources are visited in a seeded shuffled
    order, and every visit draws a new RSM sample of ``k`` counts (fixed or log-uniform in
    the ``k`` range). The best epoch by training loss (on fresh draws, hence an unbiased
    estimate) is kept.

    Returns
    -------
    (FitResult, seconds)
    """
    src_idx = torch.arange(steps_per_epoch * batch_size) % sources.shape[0]
    ds = torch.utils.data.TensorDataset(src_idx, source_labels[src_idx].long())
    loader = train.seeded_loader(ds, batch_size=batch_size, shuffle=True, seed=seed)
    tf = RSMBatch(sources, k, method=method, seed=seed + 1, image_size=image_size)
    crop = _crop_for(model)

    def transform(x, y):
        xx, yy = tf(x, y)
        return crop(xx), yy

    def acc(out, y):
        return float((out.argmax(1) == y).float().mean())

    t0 = time.perf_counter()
    res = train.fit(model, loader, loss_fn=nn.functional.cross_entropy, epochs=epochs,
                    optimizer=torch.optim.Adam(model.parameters(), lr=lr), metrics={"acc": acc},
                    batch_transform=transform, monitor="loss", device=device, progress=False)
    return res, time.perf_counter() - t0


@torch.no_grad()
def predict_labels(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256, device="auto") -> np.ndarray:
    """Predicted class per row of network inputs ``x`` (batch, 1, L) (or images)."""
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    model.to(dev).eval()
    crop = _crop_for(model)
    out = [model(crop(x[s : s + batch_size].to(dev))).argmax(1).cpu() for s in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


def draw_test_set(sources: torch.Tensor, source_labels: torch.Tensor, k: int, n_per_source: int, *,
                  generator: torch.Generator, method: str = "rsm3") -> tuple[torch.Tensor, np.ndarray]:
    """``n_per_source`` RSM draws of ``k`` counts from every source: (counts (B, N), labels (B,))."""
    idx = torch.arange(sources.shape[0]).repeat_interleave(n_per_source)
    rows = sources[idx].to(torch.float64)
    fn = {"rsm1": rsm1, "rsm2": rsm2, "rsm3": rsm3}[method]
    return fn(rows, k, generator=generator), source_labels[idx].numpy()


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    d = 1 + z**2 / n
    c = (p + z**2 / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def accuracy_vs_k(k_grid, sources: torch.Tensor, source_labels: torch.Tensor, n_per_source: int,
                  classifiers: dict[str, Callable[[torch.Tensor], np.ndarray]], *, seed: int = 0) -> pd.DataFrame:
    """Accuracy of every classifier on the same RSM-3 test draws at each ``k``.

    Parameters
    ----------
    k_grid : iterable of int
    sources, source_labels : torch.Tensor
        Test sources (full measurements) and their classes.
    n_per_source : int
    classifiers : dict name -> fn(counts (B, N) float tensor) -> predicted labels (B,)
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``k, method, accuracy, low, high, n, seconds`` (Wilson 95 % interval,
        prediction time for all ``n`` samples).
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for k in k_grid:
        x, y = draw_test_set(sources, source_labels, int(k), n_per_source, generator=g)
        for name, fn in classifiers.items():
            t0 = time.perf_counter()
            pred = np.asarray(fn(x))
            dt = time.perf_counter() - t0
            s = int((pred == y).sum())
            lo, hi = wilson_interval(s, len(y))
            rows.append({"k": int(k), "method": name, "accuracy": s / len(y), "low": lo, "high": hi, "n": len(y),
                         "seconds": dt})
    return pd.DataFrame(rows)


def counts_for_accuracy(df: pd.DataFrame, target: float = 0.95) -> pd.Series:
    """Smallest ``k`` (log-linear interpolation) at which each method's accuracy reaches ``target``.

    NaN if never reached on the grid; the first grid point if already reached there.
    """
    out = {}
    for name, d in df.sort_values("k").groupby("method"):
        k, a = d.k.to_numpy(float), d.accuracy.to_numpy(float)
        hit = np.flatnonzero(a >= target)
        if hit.size == 0:
            out[name] = float("nan")
        elif hit[0] == 0:
            out[name] = k[0]
        else:
            i = hit[0]
            t = (target - a[i - 1]) / (a[i] - a[i - 1])
            out[name] = float(np.exp(np.log(k[i - 1]) + t * (np.log(k[i]) - np.log(k[i - 1]))))
    return pd.Series(out, name=f"k_for_{target:.2f}")


def bin_channels(x: np.ndarray | torch.Tensor, factor: int):
    """Sum ``factor`` adjacent channels along the last axis (the remainder is dropped)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    n = x.shape[-1] // factor * factor
    y = x[..., :n]
    return y.reshape(*y.shape[:-1], n // factor, factor).sum(-1)


def cnn_classifier(model: nn.Module, *, device="auto", batch_size: int = 256) -> Callable[[torch.Tensor], np.ndarray]:
    """Wrap a trained network as ``fn(counts (B, N)) -> labels`` (normalising the counts like training)."""
    return lambda c: predict_labels(model, normalise_counts(c.to(torch.float32)), batch_size=batch_size,
                                    device=device)

