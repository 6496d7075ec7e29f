"""The U-Net of Gava et al. (paper-era code): 5 levels, average pooling, time frames as channels.

Architecture (``EIDOSLAB/Neural-Network-derived-perfusion-maps:src/unet.py@0c95485``, a
mateuszbuda-style U-Net with max-pooling replaced by average pooling):

* encoder blocks with ``64, 128, 256, 512`` features, each followed by 2x2 pooling, and a
  ``1024``-feature bottleneck; a block is (Conv 3x3 without bias, BatchNorm, ReLU) x 2;
* decoder: transposed conv (k=2, s=2), concatenation with the skip, block;
* head: 1x1 conv to ``out_channels``; the sigmoid is applied in :meth:`UNet.forward` when
  ``sigmoid=True`` (the original applied it in the training loop), so outputs lie in (0, 1)
  like the paper's window-scaled maps.

``width`` multiplies every feature count (``width=1`` is the paper, 31.1 M parameters for
89 input channels); ``pool="max"`` gives the ablation the paper argues against.
``out_channels > 1`` is the documented multi-head variant (one map per output channel,
shared trunk) used on CPU to train one network for CBV, CBF and TTP instead of three.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from lib.core.blocks import ConvNormAct

__all__ = ["UNet"]


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(cin, cout, kernel_size=3), ConvNormAct(cout, cout, kernel_size=3))


class UNet(nn.Module):
    """Gava et al.'s perfusion U-Net.

    Parameters
    ----------
    in_channels : int
        Number of time frames ``T`` (89 in the paper).
    out_channels : int
        Number of maps predicted (1 in the paper: one network per map).
    features : int
        Features of the first level at ``width=1`` (64); level ``l`` has ``features * 2**l``.
    width : float
        Width multiplier (e.g. 1/8 for CPU profiles); every level keeps at least 1 feature.
    pool : {"avg", "max"}
        Down-sampling (the paper's change is ``"avg"``).
    depth : int
        Number of pooling steps (4 in the paper: 5 levels).
    sigmoid : bool
        Apply a sigmoid to the output.

    Shapes
    ------
    input ``(B, in_channels, H, W)`` with ``H`` and ``W`` divisible by ``2**depth``;
    output ``(B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int = 89,
        out_channels: int = 1,
        *,
        features: int = 64,
        width: float = 1.0,
        pool: Literal["avg", "max"] = "avg",
        depth: int = 4,
        sigmoid: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or out_channels < 1:
            raise ValueError("in_channels and out_channels must be >= 1")
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        if pool not in ("avg", "max"):
            raise ValueError(f"pool must be 'avg' or 'max', got {pool!r}")
        self.depth = depth
        self.sigmoid = sigmoid
        f = [max(1, int(round(features * width * 2**i))) for i in range(depth + 1)]
        self.features = f
        self.encoders = nn.ModuleList()
        cin = in_channels
        for i in range(depth):
            self.encoders.append(_block(cin, f[i]))
            cin = f[i]
        self.pool = nn.AvgPool2d(2, 2) if pool == "avg" else nn.MaxPool2d(2, 2)
        self.bottleneck = _block(f[depth - 1], f[depth])
        self.upconvs = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for i in reversed(range(depth)):
            self.upconvs.append(nn.ConvTranspose2d(f[i + 1], f[i], 2, stride=2))
            self.decoders.append(_block(2 * f[i], f[i]))
        self.head = nn.Conv2d(f[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected input (B, C, H, W), got shape {tuple(x.shape)}")
        m = 2**self.depth
        if x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"H and W must be divisible by {m} (2**depth); got {tuple(x.shape[-2:])}; pad or resize")
        skips = []
        for enc in self.encoders:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.upconvs, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))
        x = self.head(x)
        return torch.sigmoid(x) if self.sigmoid else x


