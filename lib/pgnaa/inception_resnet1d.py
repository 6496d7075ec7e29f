"""1D Inception-ResNet-V2 (Szegedy et al. 2017) for spectra, as modified by Cheng et al.

A port of the 2D network (layout of timm's ``inception_resnet_v2``) to one dimension:
every ``k x k`` convolution becomes a ``k`` convolution, the factorised pairs
``1x7 -> 7x1`` and ``1x3 -> 3x1`` become ``k7 -> k1`` and ``k3 -> k1``, pooling is 1D, and
the stem takes ``in_channels`` (1 for a spectrum). The head is global average pooling
and a linear layer, so class activation maps are exact (:mod:`lib.pgnaa.cam`).

Stages (input length L):
stem (-> 192 ch, L/8) · Mixed_5b (320) · ``repeats[0]`` x Block35 (scale 0.17) ·
Mixed_6a reduction (1088, /2) · ``repeats[1]`` x Block17 (0.10) · Mixed_7a reduction
(2080, /2) · ``repeats[2]`` x Block8 (0.20) + a final Block8 without ReLU · 1x1 conv to
1536 · GAP · dropout · linear. ``width`` multiplies every channel count (1.0 = paper);
``repeats=(10, 20, 9)`` is the full network (45.1 M parameters without the classifier).
"""

from __future__ import annotations

import torch
from torch import nn

from lib.core.blocks import ConvNormAct

__all__ = ["InceptionResNetV2_1D", "BasicConv1d"]


class BasicConv1d(ConvNormAct):
    """Conv1d (no bias) + BatchNorm1d (eps 1e-3) + ReLU: :class:`~lib.core.blocks.ConvNormAct` with Keras' eps."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, padding: int = 0) -> None:
        super().__init__(cin, cout, kernel_size=kernel, stride=stride, padding=padding, dims=1, bn_eps=1e-3,
                         bn_momentum=0.1)


class _Mixed5b(nn.Module):
    def __init__(self, cin: int, w) -> None:
        super().__init__()
        self.b0 = BasicConv1d(cin, w(96), 1)
        self.b1 = nn.Sequential(BasicConv1d(cin, w(48), 1), BasicConv1d(w(48), w(64), 5, padding=2))
        self.b2 = nn.Sequential(BasicConv1d(cin, w(64), 1), BasicConv1d(w(64), w(96), 3, padding=1),
                                BasicConv1d(w(96), w(96), 3, padding=1))
        self.b3 = nn.Sequential(nn.AvgPool1d(3, stride=1, padding=1, count_include_pad=False),
                                BasicConv1d(cin, w(64), 1))
        self.out_channels = w(96) + w(64) + w(96) + w(64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class _Block35(nn.Module):
    def __init__(self, c: int, w, scale: float = 0.17) -> None:
        super().__init__()
        self.scale = scale
        self.b0 = BasicConv1d(c, w(32), 1)
        self.b1 = nn.Sequential(BasicConv1d(c, w(32), 1), BasicConv1d(w(32), w(32), 3, padding=1))
        self.b2 = nn.Sequential(BasicConv1d(c, w(32), 1), BasicConv1d(w(32), w(48), 3, padding=1),
                                BasicConv1d(w(48), w(64), 3, padding=1))
        self.conv = nn.Conv1d(w(32) + w(32) + w(64), c, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv(torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1))
        return self.relu(x + self.scale * r)


class _Mixed6a(nn.Module):
    def __init__(self, cin: int, w) -> None:
        super().__init__()
        self.b0 = BasicConv1d(cin, w(384), 3, stride=2)
        self.b1 = nn.Sequential(BasicConv1d(cin, w(256), 1), BasicConv1d(w(256), w(256), 3, padding=1),
                                BasicConv1d(w(256), w(384), 3, stride=2))
        self.b2 = nn.MaxPool1d(3, stride=2)
        self.out_channels = w(384) + w(384) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x)], 1)


class _Block17(nn.Module):
    def __init__(self, c: int, w, scale: float = 0.10) -> None:
        super().__init__()
        self.scale = scale
        self.b0 = BasicConv1d(c, w(192), 1)
        self.b1 = nn.Sequential(BasicConv1d(c, w(128), 1), BasicConv1d(w(128), w(160), 7, padding=3),
                                BasicConv1d(w(160), w(192), 1))
        self.conv = nn.Conv1d(w(192) + w(192), c, 1)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv(torch.cat([self.b0(x), self.b1(x)], 1))
        return self.relu(x + self.scale * r)


class _Mixed7a(nn.Module):
    def __init__(self, cin: int, w) -> None:
        super().__init__()
        self.b0 = nn.Sequential(BasicConv1d(cin, w(256), 1), BasicConv1d(w(256), w(384), 3, stride=2))
        self.b1 = nn.Sequential(BasicConv1d(cin, w(256), 1), BasicConv1d(w(256), w(288), 3, stride=2))
        self.b2 = nn.Sequential(BasicConv1d(cin, w(256), 1), BasicConv1d(w(256), w(288), 3, padding=1),
                                BasicConv1d(w(288), w(320), 3, stride=2))
        self.b3 = nn.MaxPool1d(3, stride=2)
        self.out_channels = w(384) + w(288) + w(320) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1(x), self.b2(x), self.b3(x)], 1)


class _Block8(nn.Module):
    def __init__(self, c: int, w, scale: float = 0.20, relu: bool = True) -> None:
        super().__init__()
        self.scale = scale
        self.b0 = BasicConv1d(c, w(192), 1)
        self.b1 = nn.Sequential(BasicConv1d(c, w(192), 1), BasicConv1d(w(192), w(224), 3, padding=1),
                                BasicConv1d(w(224), w(256), 1))
        self.conv = nn.Conv1d(w(192) + w(256), c, 1)
        self.relu = nn.ReLU(inplace=False) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv(torch.cat([self.b0(x), self.b1(x)], 1))
        return self.relu(x + self.scale * r)


class InceptionResNetV2_1D(nn.Module):
    """1D Inception-ResNet-V2 classifier.

    Parameters
    ----------
    num_classes : int
    in_channels : int
        Input channels (1 for one spectrum).
    width : float
        Channel multiplier (1.0 = the paper's widths; 0.125 for CPU profiles).
    repeats : tuple of int
        Numbers of Block35, Block17 and Block8 (the full network: (10, 20, 9)).
    dropout : float
        Dropout before the classifier (timm default 0.0; the Keras original 0.2).

    Notes
    -----
    Input ``(batch, in_channels, L)`` with ``L >= 75`` (the stem and reductions use
    unpadded stride-2 layers); output logits ``(batch, num_classes)``. The feature map
    has stride about 32: ``L'`` = 245 for ``L = 7897``.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, width: float = 1.0,
                 repeats: tuple[int, int, int] = (10, 20, 9), dropout: float = 0.0) -> None:
        super().__init__()
        if width <= 0:
            raise ValueError(f"width must be positive, got {width}")
        if len(repeats) != 3 or any(r < 0 for r in repeats):
            raise ValueError(f"repeats must be three non-negative ints, got {repeats}")

        def w(c: int) -> int:
            return max(1, int(round(c * width)))

        self.width, self.repeats = width, tuple(repeats)
        self.stem = nn.Sequential(
            BasicConv1d(in_channels, w(32), 3, stride=2), BasicConv1d(w(32), w(32), 3),
            BasicConv1d(w(32), w(64), 3, padding=1), nn.MaxPool1d(3, stride=2),
            BasicConv1d(w(64), w(80), 1), BasicConv1d(w(80), w(192), 3), nn.MaxPool1d(3, stride=2),
        )
        m5 = _Mixed5b(w(192), w)
        c = m5.out_channels
        blocks: list[nn.Module] = [m5, *[_Block35(c, w) for _ in range(repeats[0])]]
        m6 = _Mixed6a(c, w)
        c = m6.out_channels
        blocks += [m6, *[_Block17(c, w) for _ in range(repeats[1])]]
        m7 = _Mixed7a(c, w)
        c = m7.out_channels
        blocks += [m7, *[_Block8(c, w) for _ in range(repeats[2])], _Block8(c, w, scale=1.0, relu=False)]
        blocks.append(BasicConv1d(c, w(1536), 1))
        self.blocks = nn.Sequential(*blocks)
        self.num_features = w(1536)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(self.num_features, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature map before pooling, shape (batch, num_features, L')."""
        if x.ndim != 3:
            raise ValueError(f"expected input (batch, channels, length), got shape {tuple(x.shape)}")
        if x.shape[-1] < 75:
            raise ValueError(f"input length {x.shape[-1]} is too short; the network needs at least 75 samples")
        return self.blocks(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x).mean(dim=-1)))
