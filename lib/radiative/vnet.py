"""2D V-Nets for density reconstruction from boundary signals.

:class:`AuthorsVNet`
    PyTorch port of the Keras network of Ngueguin/Nzoyem (MOCO 2020/21): ``levels`` resolution levels
    with ``depth * 2**i`` channels, ``doubleConv`` = Conv5x5-ReLU, Conv5x5-ReLU, BatchNorm; strided 2x2
    convolutions down, 2x2 transposed convolutions up, **additive** encoder-decoder skips and residual
    adds, a 1x1 convolution and a sigmoid. d = 32 with 48 input channels (main deliverable), d = 10 with
    24 channels (about 2.27 M parameters).
:class:`MilletariVNet`
    The standard V-Net of Milletari et al. (2016) in 2D, following MONAI's ``VNet`` layout: residual
    stages of 1-3 5x5 convolutions with BatchNorm and ELU, channels 16-32-64-128-256, concatenated skips,
    a 1x1 stem so that any number of input channels works, and a sigmoid regression output.

Inputs are ``(B, C, H, W)`` with H and W divisible by ``2**(levels - 1)`` (16 for the defaults).
"""

from __future__ import annotations

import torch
from torch import nn

from lib.core.blocks import ConvNormAct

__all__ = ["AuthorsVNet", "MilletariVNet", "init_output_mean"]



def init_output_mean(model: nn.Module, mean: float) -> None:
    """Set the bias of the model's last 1x1 convolution to ``logit(mean)``.

    With a sigmoid output, an untrained network predicts about 0.5 everywhere; starting from the mean of
    the training targets instead spares many epochs of moving a single bias (decisive for short CPU runs
    of the Milletari V-Net, whose BatchNorm + ELU before the last 1x1 convolution makes that bias slow
    to learn).
    """
    if not 0 < mean < 1:
        raise ValueError(f"mean must lie in (0, 1) for a sigmoid output, got {mean}.")
    last = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)][-1]
    with torch.no_grad():
        last.bias.fill_(float(torch.logit(torch.tensor(mean))))


def _check_input(x: torch.Tensor, in_channels: int, factor: int) -> None:
    if x.ndim != 4:
        raise ValueError(f"expected a (B, C, H, W) tensor, got shape {tuple(x.shape)}.")
    if x.shape[1] != in_channels:
        raise ValueError(f"expected {in_channels} input channels, got {x.shape[1]}.")
    if x.shape[2] % factor or x.shape[3] % factor:
        raise ValueError(f"H and W must be divisible by {factor}, got {tuple(x.shape[2:])}; pad or resize the input.")


class _DoubleConv(nn.Sequential):
    def __init__(self, cin: int, cout: int, k: int, bn_momentum: float, bn_eps: float) -> None:
        super().__init__(
            ConvNormAct(cin, cout, kernel_size=k, norm=None),
            ConvNormAct(cout, cout, kernel_size=k, norm=None),
            nn.BatchNorm2d(cout, momentum=bn_momentum, eps=bn_eps),  # the authors' doubleConv normalises last
        )


class AuthorsVNet(nn.Module):
    """The authors' 2D V-Net.

    Parameters
    ----------
    in_channels : int
        48, 24 or 12 signal channels.
    depth : int
        Channels at level 0 (``d``; 32 or 10 in the original notebooks).
    levels : int
        Number of resolution levels (5: 64 -> 4 pixels).
    kernel_size : int
        Convolution size (5).
    out_channels : int
        Output maps (1 density).
    keras_bn : bool
        Use Keras' BatchNorm defaults (momentum 0.99 -> PyTorch 0.01, eps 1e-3) as the original.

    Shapes
    ------
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)`` in (0, 1).
    """

    def __init__(
        self,
        in_channels: int = 48,
        depth: int = 32,
        levels: int = 5,
        kernel_size: int = 5,
        out_channels: int = 1,
        keras_bn: bool = True,
    ) -> None:
        super().__init__()
        if in_channels < 1 or depth < 1 or levels < 2 or kernel_size % 2 == 0:
            raise ValueError(
                f"need in_channels >= 1, depth >= 1, levels >= 2 and an odd kernel_size; got "
                f"{in_channels}, {depth}, {levels}, {kernel_size}."
            )
        mom, eps = (0.01, 1e-3) if keras_bn else (0.1, 1e-5)
        self.in_channels, self.levels = in_channels, levels
        ch = [depth * 2**i for i in range(levels)]
        self.left0 = _DoubleConv(in_channels, ch[0], kernel_size, mom, eps)
        self.down = nn.ModuleList(nn.Conv2d(ch[i - 1], ch[i], 2, stride=2) for i in range(1, levels))
        self.enc = nn.ModuleList(_DoubleConv(ch[i], ch[i], kernel_size, mom, eps) for i in range(1, levels))
        self.up = nn.ModuleList(nn.ConvTranspose2d(ch[i + 1], ch[i], 2, stride=2) for i in range(levels - 1))
        self.dec = nn.ModuleList(_DoubleConv(ch[i], ch[i], kernel_size, mom, eps) for i in range(levels - 1))
        self.head = nn.Conv2d(ch[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, 2 ** (self.levels - 1))
        lefts = [self.left0(x)]
        for down, enc in zip(self.down, self.enc):
            d = down(lefts[-1])
            lefts.append(d + enc(d))
        h = lefts[-1]
        for i in range(self.levels - 2, -1, -1):
            u = self.up[i](h)
            h = u + self.dec[i](lefts[i] + u)
        return torch.sigmoid(self.head(h))


class _LUConvs(nn.Sequential):
    def __init__(self, ch: int, n: int) -> None:
        layers: list[nn.Module] = []
        for _ in range(n):
            layers.append(ConvNormAct(ch, ch, kernel_size=5, act="elu", bias=True))
        super().__init__(*layers)


class _Down(nn.Module):
    def __init__(self, cin: int, n_convs: int, dropout: float) -> None:
        super().__init__()
        cout = 2 * cin
        self.down = ConvNormAct(cin, cout, kernel_size=2, stride=2, padding=0, act="elu", bias=True)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.convs = _LUConvs(cout, n_convs)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        return self.act(self.convs(self.drop(d)) + d)


class _Up(nn.Module):
    def __init__(self, cin: int, cout: int, n_convs: int, dropout: float) -> None:
        super().__init__()
        self.up = ConvNormAct(cin, cout // 2, kernel_size=2, stride=2, padding=0, act="elu", bias=True, transposed=True)
        self.drop = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.convs = _LUConvs(cout, n_convs)
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        u = torch.cat([self.up(self.drop(x)), self.drop(skip)], dim=1)
        return self.act(self.convs(u) + u)


class MilletariVNet(nn.Module):
    """Milletari-style 2D V-Net (MONAI ``VNet`` layout) with a 1x1 stem and a sigmoid output.

    Parameters
    ----------
    in_channels : int
        Input channels (any; a 1x1 convolution maps them to ``base``).
    base : int
        Channels after the input transition (16 in the original).
    out_channels : int
        Output maps.
    dropout : float
        Dropout in the two deepest down stages and the up stages (0.5 in MONAI; 0 disables).

    Shapes
    ------
    ``(B, in_channels, H, W) -> (B, out_channels, H, W)``, H and W divisible by 16.
    """

    def __init__(self, in_channels: int = 48, base: int = 16, out_channels: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if in_channels < 1 or base < 2 or base % 2:
            raise ValueError(f"need in_channels >= 1 and an even base >= 2, got {in_channels}, {base}.")
        self.in_channels = in_channels
        self.stem = nn.Conv2d(in_channels, base, 1)
        self.inp = ConvNormAct(base, base, kernel_size=5, act=None, bias=True)
        self.inp_act = nn.ELU(inplace=True)
        b = base
        self.down1 = _Down(b, 1, 0.0)
        self.down2 = _Down(2 * b, 2, 0.0)
        self.down3 = _Down(4 * b, 3, dropout)
        self.down4 = _Down(8 * b, 2, dropout)
        self.up4 = _Up(16 * b, 16 * b, 2, dropout)
        self.up3 = _Up(16 * b, 8 * b, 2, dropout)
        self.up2 = _Up(8 * b, 4 * b, 1, 0.0)
        self.up1 = _Up(4 * b, 2 * b, 1, 0.0)
        self.out = nn.Sequential(
            ConvNormAct(2 * b, out_channels, kernel_size=5, act="elu", bias=True),
            nn.Conv2d(out_channels, out_channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, 16)
        s = self.stem(x)
        x16 = self.inp_act(self.inp(s) + s)
        x32 = self.down1(x16)
        x64 = self.down2(x32)
        x128 = self.down3(x64)
        x256 = self.down4(x128)
        h = self.up4(x256, x128)
        h = self.up3(h, x64)
        h = self.up2(h, x32)
        h = self.up1(h, x16)
        return torch.sigmoid(self.out(h))
