"""Compact spectrum classifiers for the Table II comparison of Cheng et al.

- :class:`SmallCNN1d` — the "custom 1D CNN": conv/BN/ReLU/max-pool stages, GAP, linear.
- :class:`ResNet1d` — a 1D ResNet (basic or bottleneck blocks; ``layers=(3, 4, 23, 3)`` with
  bottlenecks is the ResNet-101 layout, smaller settings for CPU).
- :class:`GRUClassifier` — a strided-conv front end then a bidirectional GRU ("RNN custom").
- :class:`TransformerClassifier` — patch embedding, learned positions, Transformer encoder,
  mean pooling ("Transformer custom").
- :class:`ImageCNN2d` — a small 2D CNN for the RSM-4 images; a **stand-in** for the
  paper's NASNet-A-Large / PNASNet-5-Large, not a reproduction of them.

All take ``(batch, in_channels, length)`` (images: ``(batch, 1, H, W)``) and return logits
``(batch, num_classes)``. The CNNs expose ``features(x)`` and a linear ``classifier`` after
global average pooling, as :mod:`lib.pgnaa.cam` needs.
"""

from __future__ import annotations

import torch
from torch import nn

from lib.core.blocks import ConvNormAct

__all__ = ["SmallCNN1d", "ResNet1d", "GRUClassifier", "TransformerClassifier", "ImageCNN2d"]


def _check_1d(x: torch.Tensor, min_len: int = 1) -> None:
    if x.ndim != 3:
        raise ValueError(f"expected input (batch, channels, length), got shape {tuple(x.shape)}")
    if x.shape[-1] < min_len:
        raise ValueError(f"input length {x.shape[-1]} shorter than the minimum {min_len}")


class SmallCNN1d(nn.Module):
    """Custom small 1D CNN.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    channels : tuple of int
        Output channels of the stages; each stage is conv(k) + BN + ReLU + max-pool(2)
        (the first conv has stride 2).
    kernel_size : int
        Odd kernel size.
    dropout : float
    """

    def __init__(self, num_classes: int, in_channels: int = 1, channels: tuple[int, ...] = (16, 32, 64, 64),
                 kernel_size: int = 7, dropout: float = 0.1) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        if not channels:
            raise ValueError("channels must name at least one stage")
        layers: list[nn.Module] = []
        cin = in_channels
        for i, c in enumerate(channels):
            layers += [ConvNormAct(cin, c, kernel_size=kernel_size, stride=2 if i == 0 else 1,
                                   padding=kernel_size // 2, dims=1), nn.MaxPool1d(2)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.num_features = cin
        self.min_length = 2 ** (len(channels) + 1)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature map (batch, num_features, L / 2**(n_stages+1))."""
        _check_1d(x, self.min_length)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(x).mean(dim=-1)))


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, cin: int, c: int, stride: int) -> None:
        super().__init__()
        self.f = nn.Sequential(ConvNormAct(cin, c, kernel_size=3, stride=stride, padding=1, dims=1),
                               ConvNormAct(c, c, kernel_size=3, dims=1, act=None))
        self.skip = (nn.Identity() if stride == 1 and cin == c else
                     ConvNormAct(cin, c, kernel_size=1, stride=stride, padding=0, dims=1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.f(x) + self.skip(x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, c: int, stride: int) -> None:
        super().__init__()
        cout = 4 * c
        self.f = nn.Sequential(ConvNormAct(cin, c, kernel_size=1, dims=1),
                               ConvNormAct(c, c, kernel_size=3, stride=stride, padding=1, dims=1),
                               ConvNormAct(c, cout, kernel_size=1, dims=1, act=None))
        self.skip = (nn.Identity() if stride == 1 and cin == cout else
                     ConvNormAct(cin, cout, kernel_size=1, stride=stride, padding=0, dims=1, act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.f(x) + self.skip(x))


class ResNet1d(nn.Module):
    """1D ResNet: stem conv7/2 + max-pool/2, four stages (stride 1, 2, 2, 2), GAP, linear.

    Parameters
    ----------
    num_classes : int
    in_channels : int
    layers : tuple of 4 int
        Blocks per stage (ResNet-101: (3, 4, 23, 3) with ``bottleneck=True``).
    base_width : int
        Channels of the first stage (64 in ResNet); doubled per stage.
    bottleneck : bool
        Bottleneck (1-3-1, expansion 4) instead of basic (3-3) blocks.
    """

    def __init__(self, num_classes: int, in_channels: int = 1, layers: tuple[int, int, int, int] = (1, 1, 1, 1),
                 base_width: int = 16, bottleneck: bool = False) -> None:
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"layers must have 4 entries, got {layers}")
        block = _Bottleneck if bottleneck else _Basic
        self.stem = nn.Sequential(ConvNormAct(in_channels, base_width, kernel_size=7, stride=2, padding=3, dims=1),
                                  nn.MaxPool1d(3, 2, 1))
        stages = []
        cin = base_width
        for i, n in enumerate(layers):
            c = base_width * 2**i
            for j in range(n):
                stages.append(block(cin, c, 2 if (j == 0 and i > 0) else 1))
                cin = c * block.expansion
        self.stages = nn.Sequential(*stages)
        self.num_features = cin
        self.classifier = nn.Linear(cin, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        _check_1d(x, 32)
        return self.stages(self.stem(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=-1))


class GRUClassifier(nn.Module):
    """Strided conv front end (``stride`` x shorter sequence) + bidirectional GRU + linear on the mean state.

    Parameters
    ----------
    num_classes, in_channels : int
    hidden : int
        GRU hidden size per direction.
    num_layers : int
    stride : int
        Downsampling of the front end (a GRU over 16384 steps is impractically slow).
    """

    def __init__(self, num_classes: int, in_channels: int = 1, hidden: int = 32, num_layers: int = 1,
                 stride: int = 16) -> None:
        super().__init__()
        self.stride = stride
        self.front = nn.Sequential(nn.Conv1d(in_channels, hidden, stride, stride), nn.ReLU(inplace=True))
        self.gru = nn.GRU(hidden, hidden, num_layers=num_layers, batch_first=True, bidirectional=True)
        self.classifier = nn.Linear(2 * hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_1d(x, self.stride)
        h = self.front(x).transpose(1, 2)  # (B, T, hidden)
        out, _ = self.gru(h)
        return self.classifier(out.mean(dim=1))


class TransformerClassifier(nn.Module):
    """Patch embedding (non-overlapping conv) + learned positions + Transformer encoder + mean pool.

    Parameters
    ----------
    num_classes, in_channels : int
    length : int
        Input length (fixes the number of learned positions, ``length // patch``).
    patch : int
        Channels per token.
    d_model, n_heads, n_layers, dim_feedforward : int
    dropout : float
    """

    def __init__(self, num_classes: int, length: int, in_channels: int = 1, patch: int = 32, d_model: int = 64,
                 n_heads: int = 4, n_layers: int = 2, dim_feedforward: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        if length < patch:
            raise ValueError(f"length ({length}) must be at least one patch ({patch})")
        if d_model % n_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})")
        self.length, self.patch = length, patch
        self.embed = nn.Conv1d(in_channels, d_model, patch, patch)
        self.pos = nn.Parameter(torch.zeros(1, length // patch, d_model))
        nn.init.trunc_normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, n_heads, dim_feedforward, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_1d(x)
        if x.shape[-1] != self.length:
            raise ValueError(f"input length {x.shape[-1]} differs from the configured length {self.length}")
        h = self.embed(x).transpose(1, 2) + self.pos
        return self.classifier(self.norm(self.encoder(h)).mean(dim=1))


class ImageCNN2d(nn.Module):
    """Small 2D CNN for RSM-4 images (stand-in for NASNet/PNASNet): conv stages, GAP, linear."""

    def __init__(self, num_classes: int, channels: tuple[int, ...] = (16, 32, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 1
        for c in channels:
            layers += [ConvNormAct(cin, c, kernel_size=3), nn.MaxPool2d(2)]
            cin = c
        self.body = nn.Sequential(*layers)
        self.num_features = cin
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4:
            raise ValueError(f"expected images (batch, 1, H, W), got shape {tuple(x.shape)}")
        return self.classifier(self.body(x).mean(dim=(2, 3)))
