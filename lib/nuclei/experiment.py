"""The internship report's training and evaluation protocol for binary nuclei segmentation.

Training (:func:`fit_seed_protocol`): Adam (seed: lr 1e-4), batch 8, binary cross-entropy on the
soft resized masks, keep the weights of the best validation loss (the seed's ``ModelCheckpoint``),
``ReduceLROnPlateau`` x0.1 after 5 epochs without improvement (min 1e-7), early stopping after 20,
a per-epoch log. Optional random flips (horizontal, vertical) as augmentation.

Evaluation (:func:`predict_proba`, :func:`evaluate_masks`): sigmoid probabilities, optionally
averaged over the four flips (test-time augmentation), bilinearly resized to the evaluation size,
thresholded at 0.5, and scored with the pixel metrics of :mod:`lib.core.metrics` both pooled over the
test set and as per-image means (the seed's aggregation).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.core import train
from lib.core.metrics import segmentation_report
from lib.nuclei.dsb import NucleiArrays

__all__ = [
    "UInt8Batch",
    "fit_seed_protocol",
    "recalibrate_batchnorm",
    "predict_proba",
    "evaluate_masks",
    "per_image_table",
]


class UInt8Batch:
    """Batch transform: uint8 images/masks -> float in [0, 1], plus random flips while training.

    Parameters
    ----------
    model : torch.nn.Module
        Flips are applied only when ``model.training`` is true (never to validation batches).
    augment : bool
        Random horizontal and vertical flips, the same for image and mask.
    generator : torch.Generator, optional
        CPU generator for the flip decisions (reproducible).
    """

    def __init__(self, model: nn.Module, augment: bool = False, generator: torch.Generator | None = None):
        self.model, self.augment, self.generator = model, augment, generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Map uint8 ``(N, 3, S, S)`` / ``(N, 1, S, S)`` to float32 in [0, 1]."""
        x = x.float() / 255.0
        y = y.float() / 255.0
        if self.augment and self.model.training:
            flips = torch.rand(2, generator=self.generator) < 0.5
            dims = [d for d, f in zip((-1, -2), flips.tolist()) if f]
            if dims:
                x, y = x.flip(dims), y.flip(dims)
        return x, y


def fit_seed_protocol(
    model: nn.Module,
    train_set: NucleiArrays,
    valid_set: NucleiArrays,
    *,
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 8,
    augment: bool = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    reduce_patience: int = 5,
    early_stopping: int = 20,
) -> train.FitResult:
    """Train with the seed's protocol (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(N, 1, S, S)`` for images ``(N, 3, S, S)``.
    train_set, valid_set : NucleiArrays
        Preprocessed sets (same size ``S``).
    epochs, lr, batch_size : int, float, int
        Seed: 10, 1e-4, 8.
    augment : bool
        Random flips of the training batches.
    seed : int
        Seeds the shuffling order and the flips.
    device : str or torch.device
    reduce_patience, early_stopping : int
        Epochs without validation-loss improvement before lr x0.1 / stopping (seed: 5 / 20).

    Returns
    -------
    lib.core.train.FitResult
        ``history`` has ``loss, val_loss, dice, val_dice, lr, time_s`` per epoch.
    """
    if len(train_set) == 0 or len(valid_set) == 0:
        raise ValueError("training and validation sets must not be empty")
    tr = train.array_loader(train_set.images, train_set.soft, batch_size=batch_size, shuffle=True, seed=seed)
    va = train.array_loader(valid_set.images, valid_set.soft, batch_size=batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=reduce_patience, min_lr=1e-7)
    gen = torch.Generator().manual_seed(seed + 1)

    def soft_dice(out: Tensor, y: Tensor) -> float:
        p = torch.sigmoid(out)
        return float((2 * (p * y).sum() + 1e-15) / (p.sum() + y.sum() + 1e-15))

    return train.fit(
        model, tr, loss_fn=nn.BCEWithLogitsLoss(), epochs=epochs, optimizer=opt, val_loader=va,
        metrics={"dice": soft_dice}, batch_transform=UInt8Batch(model, augment, gen), scheduler=sched,
        scheduler_monitor=True, early_stopping=early_stopping, device=device, progress=False,
    )


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, images: np.ndarray, *, batch_size: int = 8, device: str | torch.device = "auto"
) -> nn.Module:
    """Re-estimate batch-norm running statistics as exact averages over ``images``.

    With the Keras momentum (0.99, PyTorch 0.01) the running mean and variance forget their
    initial values (0 and 1) only after several hundred steps; after a short CPU run they are
    still far from the data's statistics and the network in evaluation mode predicts almost
    nothing. This pass (``momentum=None``: cumulative average over the batches, weights
    unchanged) fixes the statistics; with long training it changes little.

    Parameters
    ----------
    model : torch.nn.Module
    images : numpy.ndarray
        ``(N, 3, S, S)`` uint8 training images.
    batch_size : int
    device : str or torch.device

    Returns
    -------
    torch.nn.Module
        ``model`` (modified in place), in evaluation mode.
    """
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.to(dev).train()
    for i in range(0, len(images), batch_size):
        model(torch.from_numpy(images[i : i + batch_size]).to(dev).float() / 255.0)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    images: np.ndarray,
    *,
    out_size: int | None = None,
    tta: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Foreground probabilities for uint8 images.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits.
    images : numpy.ndarray
        ``(N, 3, S, S)`` uint8.
    out_size : int, optional
        Resize the probabilities (bilinear, half-pixel) to ``out_size x out_size``.
    tta : bool
        Average the probabilities over identity, horizontal, vertical and both flips.
    batch_size : int
    device : str or torch.device

    Returns
    -------
    numpy.ndarray
        ``(N, out_size, out_size)`` float32 in [0, 1].
    """
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    model.to(dev).eval()
    flips: list[list[int]] = [[], [-1], [-2], [-1, -2]] if tta else [[]]
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).to(dev).float() / 255.0
        p = sum(torch.sigmoid(model(x.flip(f) if f else x)).flip(f) if f else torch.sigmoid(model(x)) for f in flips) / len(flips)
        if out_size is not None and out_size != p.shape[-1]:
            p = F.interpolate(p, size=(out_size, out_size), mode="bilinear", align_corners=False)
        out.append(p[:, 0].cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def evaluate_masks(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Pixel metrics, pooled and per-image mean (``lib.core.metrics.segmentation_report``)."""
    return segmentation_report(np.asarray(y_true, bool), np.asarray(y_pred, bool))


def per_image_table(ids: list[str], modality: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Per-image F1 and Jaccard with ids and modality (for best/worst cases and breakdowns)."""
    from lib.core.metrics import f1_score, jaccard

    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    return pd.DataFrame({
        "id": ids,
        "modality": modality,
        "f1": f1_score(t, p, reduction="none"),
        "jaccard": jaccard(t, p, reduction="none"),
    })
