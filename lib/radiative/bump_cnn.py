"""The earlier CNN of the M1 internship ("DRNN 2"): regress a bump's (x, y, height) from boundary signals.

Original (Keras, ``projet-inverse-2d/src/notebook/Regression.ipynb``): input ``(168, 28, 48)`` = time x
edge position x (4 edges x 4 sources x 3 channels); six 'valid' Conv2D layers with kernel (6, 2), stride 1,
ReLU and 64, 32, 64, 64, 128, 128 filters; Flatten (388,608); Dense 500 ReLU, Dense 50 ReLU, Dense 3
linear: 194.8 M parameters. "DRNN 1" adds max-pooling. Trained with Adam 1e-5 and MSE.

Scores (reported beside the slides' R² 98.81 % and custom score 93.50 %):

* :func:`keras_r2` -- the notebook's R² metric, transcribed from its Keras code: per sample over the 3
  targets (``axis=-1``), but with the mean taken over *every* target of the batch (``K.mean(y_true)`` has no
  axis), then averaged over the samples, which the slides call "mal calculé";
* :func:`bump_score` -- the custom score: percentage of samples with ``|dx| <= 0.1``, ``|dy| <= 0.1`` and
  ``|dh| <= 1``.

Inputs here are channels-first ``(B, 48, n_time, n_pos)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["BumpCNN", "keras_r2", "bump_score"]


class BumpCNN(nn.Module):
    """Stack of 'valid' convolutions and a dense head (the M1 "DRNN").

    Parameters
    ----------
    in_channels : int
        Signal channels (48).
    n_time, n_pos : int
        Input height (time samples, 168 originally) and width (edge positions, 28).
    filters : sequence of int
        Filters of the convolution layers (64, 32, 64, 64, 128, 128).
    kernel : (int, int)
        Convolution kernel over (time, position), (6, 2) originally.
    hidden : sequence of int
        Dense layer widths (500, 50).
    n_out : int
        Outputs (3: x, y, height).
    pool : bool
        Add a 2x2 max-pooling after every second convolution ("DRNN 1").

    Shapes
    ------
    ``(B, in_channels, n_time, n_pos) -> (B, n_out)``.
    """

    def __init__(
        self,
        in_channels: int = 48,
        n_time: int = 168,
        n_pos: int = 28,
        filters: Sequence[int] = (64, 32, 64, 64, 128, 128),
        kernel: tuple[int, int] = (6, 2),
        hidden: Sequence[int] = (500, 50),
        n_out: int = 3,
        pool: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        h, w, c = n_time, n_pos, in_channels
        for i, f in enumerate(filters):
            layers += [nn.Conv2d(c, f, kernel), nn.ReLU(inplace=True)]
            h, w, c = h - kernel[0] + 1, w - kernel[1] + 1, f
            if pool and i % 2 == 1 and h >= 2 and w >= 2:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            if h < 1 or w < 1:
                raise ValueError(
                    f"input {n_time}x{n_pos} is too small for {len(filters)} valid convolutions of {kernel}; "
                    "use fewer filters or a larger input."
                )
        self.features = nn.Sequential(*layers)
        self.flat_features = h * w * c
        dims = [self.flat_features, *hidden]
        head: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(dims[:-1], dims[1:]):
            head += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        head.append(nn.Linear(dims[-1], n_out))
        self.head = nn.Sequential(*head)
        self.in_channels, self.n_time, self.n_pos = in_channels, n_time, n_pos

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.in_channels, self.n_time, self.n_pos):
            raise ValueError(
                f"expected input (B, {self.in_channels}, {self.n_time}, {self.n_pos}), got {tuple(x.shape)}."
            )
        return self.head(self.features(x))


def keras_r2(y_true: np.ndarray, y_pred: np.ndarray, *, batch_size: int | None = 32, eps: float = 1e-7) -> float:
    """The M1 notebook's R² metric (``Regression.ipynb``, cell "Pour calculer le score r^2").

    Its Keras code is ``SS_res = K.sum(K.square(y_true - y_pred), axis=-1)`` and
    ``SS_tot = K.sum(K.square(y_true - K.mean(y_true)), axis=-1)``, ``1 - SS_res / (SS_tot + K.epsilon())``:
    one value per sample, summed over its targets, but ``K.mean(y_true)`` is the mean of *all* the targets
    of the batch (x, y and heights pooled). Keras averages these per-sample values over every sample it
    scores, one batch of ``batch_size`` at a time (``model.evaluate``'s default is 32).

    Because the heights (0.1-10) are pooled with the positions (0.2-0.8), ``SS_tot`` is dominated by the
    distance of each target from a batch mean of about 2: the metric is lenient on positions and is not
    the per-target R² (:func:`lib.core.metrics.r2_score` of each column).

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (n, k)
        Targets and predictions (x (cm), y (cm), height (g/cm^3) for the bump CNN).
    batch_size : int or None
        Samples per batch over which the mean is taken, in order; None: one batch of all ``n``.
    eps : float
        ``K.epsilon()``.

    Returns
    -------
    float
        Mean over the ``n`` samples of the per-sample value.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 2:
        raise ValueError(f"expected two (n, k) arrays of equal shape, got {t.shape} and {p.shape}.")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}.")
    step = len(t) if batch_size is None else int(batch_size)
    values = []
    for s in range(0, len(t), max(step, 1)):
        tb, pb = t[s:s + step], p[s:s + step]
        ss_res = ((tb - pb) ** 2).sum(-1)
        ss_tot = ((tb - tb.mean()) ** 2).sum(-1)
        values.append(1 - ss_res / (ss_tot + eps))
    return float(np.mean(np.concatenate(values)))


def bump_score(
    y_true: np.ndarray, y_pred: np.ndarray, tol: tuple[float, float, float] = (0.1, 0.1, 1.0)
) -> dict[str, float]:
    """The M1 custom score: % of samples with ``|dx| <= 0.1``, ``|dy| <= 0.1`` and ``|dh| <= 1``.

    Parameters
    ----------
    y_true, y_pred : ndarray, shape (n, 3)
        (x (cm), y (cm), height (g/cm^3)).

    Returns
    -------
    dict
        ``score`` (all three conditions) and ``x``, ``y``, ``h`` (each condition alone), in percent.
    """
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 2 or t.shape[1] != 3:
        raise ValueError(f"expected two (n, 3) arrays (x, y, height), got {t.shape} and {p.shape}.")
    ok = np.abs(t - p) <= np.asarray(tol)
    return {"score": 100 * float(ok.all(1).mean()), "x": 100 * float(ok[:, 0].mean()),
            "y": 100 * float(ok[:, 1].mean()), "h": 100 * float(ok[:, 2].mean())}
