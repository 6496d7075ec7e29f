"""Class activation maps (Zhou et al. 2016) for 1D networks with a GAP -> linear head.

For a network ``logits = W @ mean_t A(t) + b`` with feature map ``A`` of shape
``(K, L')``, the class-``c`` map ``CAM_c(t) = sum_k W[c, k] A_k(t)`` satisfies
``mean_t CAM_c(t) + b_c = logit_c`` exactly, so no gradients are needed. Maps are
upsampled linearly to the input length so they can be read against the energy axis.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["class_activation_map", "model_cam", "class_mean_cam", "unimportant_ranges"]


def class_activation_map(features: torch.Tensor, weight: torch.Tensor, classes: torch.Tensor | None = None,
                         length: int | None = None) -> torch.Tensor:
    """CAM from a feature map and the linear classifier weights.

    Parameters
    ----------
    features : torch.Tensor, shape (batch, K, L')
    weight : torch.Tensor, shape (n_classes, K)
    classes : torch.Tensor of int, shape (batch,), optional
        Class whose map to return per sample; default: all classes.
    length : int, optional
        Upsample (linear interpolation) to this length.

    Returns
    -------
    torch.Tensor
        ``(batch, L)`` if ``classes`` is given, else ``(batch, n_classes, L)``.
    """
    if features.ndim != 3 or weight.ndim != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(f"need features (B, K, L') and weight (C, K); got {tuple(features.shape)}, "
                         f"{tuple(weight.shape)}")
    cam = torch.einsum("ck,bkl->bcl", weight, features)
    if length is not None and length != cam.shape[-1]:
        cam = F.interpolate(cam, size=length, mode="linear", align_corners=False)
    if classes is not None:
        cam = cam[torch.arange(cam.shape[0], device=cam.device), classes.to(cam.device).long()]
    return cam


@torch.no_grad()
def model_cam(model: nn.Module, x: torch.Tensor, classes: torch.Tensor | None = None) -> torch.Tensor:
    """CAM of ``model`` (must have ``features(x)`` and a linear ``classifier``) at input length.

    ``classes=None`` uses the predicted class. Returns (batch, L).
    """
    if not hasattr(model, "features") or not isinstance(getattr(model, "classifier", None), nn.Linear):
        raise TypeError("model needs a features(x) method and a linear `classifier` after global average pooling")
    model.eval()
    feats = model.features(x)
    w = model.classifier.weight
    if classes is None:
        classes = model.classifier(feats.mean(dim=-1)).argmax(dim=1)
    return class_activation_map(feats, w, classes, length=x.shape[-1])


def class_mean_cam(cams: torch.Tensor, labels: torch.Tensor, n_classes: int, *, mask: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """Average maps per class (optionally over ``mask``-selected samples, e.g. correctly classified).

    Returns (n_classes, L); a class with no selected sample gets NaN.
    """
    labels = labels.long()
    if mask is not None:
        cams, labels = cams[mask], labels[mask]
    out = torch.full((n_classes, cams.shape[-1]), float("nan"), dtype=cams.dtype, device=cams.device)
    sums = torch.zeros((n_classes, cams.shape[-1]), dtype=cams.dtype, device=cams.device).index_add_(0, labels, cams)
    cnt = torch.bincount(labels, minlength=n_classes)
    ok = cnt > 0
    out[ok] = sums[ok] / cnt[ok, None].to(cams.dtype)
    return out


def unimportant_ranges(importance: np.ndarray, energy: np.ndarray, *, threshold: float = 0.05,
                       min_width: float = 0.0) -> list[tuple[float, float]]:
    """Energy ranges where a normalised importance curve stays below ``threshold``.

    Parameters
    ----------
    importance : numpy.ndarray, shape (L,)
        Non-negative importance (e.g. the maximum over classes of the ReLU'd, per-class
        max-normalised mean CAM).
    energy : numpy.ndarray, shape (L,)
        Energy (keV) of every sample.
    threshold : float
        Fraction of the maximum below which a sample is "unimportant".
    min_width : float
        Drop ranges narrower than this (keV).

    Returns
    -------
    list of (start_keV, stop_keV)
    """
    imp = np.asarray(importance, dtype=float)
    low = imp < threshold * np.nanmax(imp)
    ranges = []
    edges = np.flatnonzero(np.diff(np.concatenate([[0], low.astype(int), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        if energy[b - 1] - energy[a] >= min_width:
            ranges.append((float(energy[a]), float(energy[b - 1])))
    return ranges
