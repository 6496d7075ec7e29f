"""MultiResUNet (Ibtehaz & Rahman 2020) ported exactly from the seed's Keras build.

Two variants are provided:

``variant="seed"`` (default)
    The build the internship report trains (nikhilroxtomar ``TensorFlow/multiresunet.py``):
    every ``conv_block`` is ``Conv2d(bias=False) -> BatchNorm(gamma, beta)``, the ResPath 3x3
    convolution has **no** ReLU, and the head is ``Conv2d(1x1, bias) -> sigmoid``.
    At 256x256x3 it has **7,244,774** trainable parameters and **24,520** batch-norm
    running-statistic elements, exactly as Keras ``model.summary()`` reports
    (7,269,294 total).

``variant="paper"``
    The original ``nibtehaz/MultiResUNet`` Keras code: batch norms inside ``conv2d_bn`` are
    ``scale=False`` (beta only), the ResPath 3x3 convolution is followed by ReLU and the head is
    ``Conv2d(1x1, no bias) -> BatchNorm(scale=False) -> sigmoid``:
    **7,238,228** trainable + **24,522** running-statistic elements.

Batch norms use the Keras defaults ``eps=1e-3`` and Keras ``momentum=0.99``, which is
PyTorch ``momentum=0.01`` (the two libraries define momentum in opposite directions).
Convolution kernels are Glorot-uniform initialised and biases zero, as in Keras.

The network returns **logits**; the Keras model's final sigmoid is applied by the loss
(:class:`torch.nn.BCEWithLogitsLoss`) or by the caller (``torch.sigmoid``). This changes no
parameter and is numerically safer than ``BCE(sigmoid(x))``.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from lib.core.blocks import ConvNormAct

__all__ = [
    "KERAS_BN_EPS",
    "KERAS_BN_MOMENTUM",
    "BetaOnlyBatchNorm2d",
    "ConvBN",
    "MultiResBlock",
    "ResPath",
    "MultiResUNet",
    "multires_widths",
    "count_bn_running_elements",
    "set_bn_momentum",
]

KERAS_BN_EPS: float = 1e-3
#: Keras ``momentum=0.99`` expressed in PyTorch's convention (``1 - 0.99``).
KERAS_BN_MOMENTUM: float = 0.01

Variant = Literal["seed", "paper"]


class BetaOnlyBatchNorm2d(nn.BatchNorm2d):
    """Batch norm with a learnable shift only (Keras ``BatchNormalization(scale=False)``).

    Parameters
    ----------
    num_features : int
        Number of channels ``C`` of the ``(N, C, H, W)`` input.
    eps, momentum : float
        PyTorch-convention batch-norm constants (defaults: Keras values).
    """

    def __init__(self, num_features: int, eps: float = KERAS_BN_EPS, momentum: float = KERAS_BN_MOMENTUM):
        super().__init__(num_features, eps=eps, momentum=momentum, affine=False)
        self.beta = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return super().forward(x) + self.beta.view(1, -1, 1, 1)


def _bn(channels: int, scale: bool) -> nn.BatchNorm2d:
    if scale:
        return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS, momentum=KERAS_BN_MOMENTUM)
    return BetaOnlyBatchNorm2d(channels)


def set_bn_momentum(model: nn.Module, momentum: float | None) -> nn.Module:
    """Set the PyTorch-convention momentum of every batch norm of ``model`` (in place).

    ``0.01`` is Keras' 0.99 (the faithful default); ``0.1`` (PyTorch's default) lets the running
    statistics follow the weights within a few dozen steps, which short CPU runs need for a
    meaningful validation loss.
    """
    if momentum is not None and not 0.0 < momentum <= 1.0:
        raise ValueError(f"momentum must be in (0, 1] or None, got {momentum}")
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.momentum = momentum
    return model


class ConvBN(ConvNormAct):
    """``Conv2d(k, 'same', bias=False) -> BatchNorm [-> ReLU]`` (the seed's ``conv_block``).

    Parameters
    ----------
    in_ch, out_ch : int
        Input / output channels.
    kernel_size : int
        Square kernel size (1 or 3 here); padding keeps the spatial size.
    act : bool
        Append a ReLU.
    bn_scale : bool
        Learn the batch-norm gamma (``True``: seed build; ``False``: original paper code).
    """

    def __init__(self, in_ch: int, out_ch: int, kernel_size: int, act: bool = True, bn_scale: bool = True):
        super().__init__(in_ch, out_ch, kernel_size=kernel_size, norm=lambda c: _bn(c, bn_scale),
                         act="relu" if act else None, bias=False)


def multires_widths(filters: int, alpha: float = 1.67) -> tuple[int, int, int]:
    """Widths of the three chained 3x3 convolutions of a MultiRes block.

    ``W = alpha * filters``; widths are ``int(W*0.167)``, ``int(W*0.333)``, ``int(W*0.5)``
    (Python ``int`` truncation, as in the Keras code). E.g. 32 -> (8, 17, 26), total 51.
    """
    w = filters * alpha
    return int(w * 0.167), int(w * 0.333), int(w * 0.5)


class MultiResBlock(nn.Module):
    """MultiRes block: three chained 3x3 conv-BN-ReLU, concatenated, plus a 1x1 shortcut.

    ``out = BN(ReLU(BN(concat(x1, x2, x3)) + shortcut(x)))``.

    Parameters
    ----------
    in_ch : int
        Input channels.
    filters : int
        Nominal width ``U``; the output has ``sum(multires_widths(U))`` channels.
    alpha : float
        Width multiplier of the paper (1.67).
    variant : {"seed", "paper"}
        See the module docstring.
    """

    def __init__(self, in_ch: int, filters: int, alpha: float = 1.67, variant: Variant = "seed"):
        super().__init__()
        scale = variant == "seed"
        w1, w2, w3 = multires_widths(filters, alpha)
        self.out_channels = w1 + w2 + w3
        self.conv1 = ConvBN(in_ch, w1, 3, bn_scale=scale)
        self.conv2 = ConvBN(w1, w2, 3, bn_scale=scale)
        self.conv3 = ConvBN(w2, w3, 3, bn_scale=scale)
        self.bn_cat = _bn(self.out_channels, True)
        self.shortcut = ConvBN(in_ch, self.out_channels, 1, act=False, bn_scale=scale)
        self.bn_out = _bn(self.out_channels, True)

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(N, in_ch, H, W)`` to ``(N, out_channels, H, W)``."""
        x1 = self.conv1(x)
        x2 = self.conv2(x1)
        x3 = self.conv3(x2)
        xc = self.bn_cat(torch.cat([x1, x2, x3], dim=1))
        return self.bn_out(torch.relu(xc + self.shortcut(x)))


class ResPath(nn.Module):
    """Residual path on a skip connection: ``length`` units of 3x3 conv + 1x1 shortcut.

    Each unit: ``BN(ReLU(conv3x3_bn(x) + conv1x1_bn(x)))``. The seed build has no ReLU after
    the 3x3 conv-BN; the paper variant has one.

    Parameters
    ----------
    in_ch : int
        Channels entering the path (the MultiRes output width).
    filters : int
        Channels of every unit (the nominal ``U`` of the stage).
    length : int
        Number of units (4, 3, 2, 1 from the top stage down).
    variant : {"seed", "paper"}
    """

    def __init__(self, in_ch: int, filters: int, length: int, variant: Variant = "seed"):
        super().__init__()
        if length < 1:
            raise ValueError(f"ResPath length must be >= 1, got {length}")
        scale = variant == "seed"
        self.convs = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        self.bns = nn.ModuleList()
        c = in_ch
        for _ in range(length):
            self.convs.append(ConvBN(c, filters, 3, act=not scale, bn_scale=scale))
            self.shortcuts.append(ConvBN(c, filters, 1, act=False, bn_scale=scale))
            self.bns.append(_bn(filters, True))
            c = filters
        self.out_channels = filters

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(N, in_ch, H, W)`` to ``(N, filters, H, W)``."""
        for conv, sc, bn in zip(self.convs, self.shortcuts, self.bns):
            x = bn(torch.relu(conv(x) + sc(x)))
        return x


def _glorot_init(module: nn.Module) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class MultiResUNet(nn.Module):
    """MultiResUNet for binary segmentation (returns logits of shape ``(N, out_channels, H, W)``).

    Parameters
    ----------
    in_channels : int
        Image channels (3 for the seed's RGB input).
    out_channels : int
        Output maps (1 for the binary nucleus mask).
    base_filters : int
        Nominal width ``U`` of the top stage; stages use ``U, 2U, 4U, 8U`` and the bridge
        ``16U``. 32 reproduces the seed; smaller values give a proportionally narrower network
        for CPU runs (about ``(base_filters/32)**2`` of the parameters).
    alpha : float
        MultiRes width multiplier (1.67).
    variant : {"seed", "paper"}
        ``"seed"``: the internship report's Keras build (7,244,774 parameters).
        ``"paper"``: the original nibtehaz code (7,238,228 parameters).

    Notes
    -----
    ``H`` and ``W`` must be divisible by 16 (four 2x2 poolings).
    """

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 1,
        base_filters: int = 32,
        alpha: float = 1.67,
        variant: Variant = "seed",
    ):
        super().__init__()
        if variant not in ("seed", "paper"):
            raise ValueError(f"variant must be 'seed' or 'paper', got {variant!r}")
        if base_filters < 4:
            raise ValueError(f"base_filters must be >= 4, got {base_filters}")
        self.variant = variant
        u = [base_filters * 2**i for i in range(5)]
        lengths = [4, 3, 2, 1]
        self.encoders = nn.ModuleList()
        self.respaths = nn.ModuleList()
        c = in_channels
        for f, n in zip(u[:4], lengths):
            enc = MultiResBlock(c, f, alpha, variant)
            self.encoders.append(enc)
            self.respaths.append(ResPath(enc.out_channels, f, n, variant))
            c = enc.out_channels
        self.pool = nn.MaxPool2d(2)
        self.bridge = MultiResBlock(c, u[4], alpha, variant)
        c = self.bridge.out_channels
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for f in reversed(u[:4]):
            self.ups.append(nn.ConvTranspose2d(c, f, kernel_size=2, stride=2))
            dec = MultiResBlock(2 * f, f, alpha, variant)
            self.decoders.append(dec)
            c = dec.out_channels
        if variant == "seed":
            self.head: nn.Module = nn.Conv2d(c, out_channels, 1, bias=True)
        else:
            self.head = ConvBN(c, out_channels, 1, act=False, bn_scale=False)
        self.apply(_glorot_init)

    def forward(self, x: Tensor) -> Tensor:
        """Logits ``(N, out_channels, H, W)`` for an image batch ``(N, in_channels, H, W)``."""
        if x.ndim != 4 or x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError(f"expected (N, C, H, W) with H, W divisible by 16, got {tuple(x.shape)}")
        skips = []
        for enc, rp in zip(self.encoders, self.respaths):
            x = enc(x)
            skips.append(rp(x))
            x = self.pool(x)
        x = self.bridge(x)
        for up, dec, s in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), s], dim=1))
        return self.head(x)


def count_bn_running_elements(model: nn.Module) -> int:
    """Number of batch-norm running-mean and running-variance elements (Keras "non-trainable")."""
    return sum(
        m.running_mean.numel() + m.running_var.numel()
        for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None
    )
