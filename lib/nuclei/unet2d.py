"""Classic 2-D U-Net (Ronneberger et al. 2015) as the MultiResUNet paper's baseline.

Filters ``32-64-128-256-512``, two 3x3 convolutions with bias and ReLU per level, no batch norm,
2x2 max pooling, 2x2 stride-2 transposed-convolution upsampling and a 1x1 output convolution.
With ``in_channels=1`` it has 7,759,521 parameters (the figure in the MultiResUNet paper's
table); with the seed's 3 input channels it has **7,760,097**. Returns logits.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lib.core.blocks import ConvNormAct

__all__ = ["UNet2D"]


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(in_ch, out_ch, kernel_size=3, norm=None),
                         ConvNormAct(out_ch, out_ch, kernel_size=3, norm=None))


class UNet2D(nn.Module):
    """U-Net for binary segmentation, logits ``(N, out_channels, H, W)``.

    Parameters
    ----------
    in_channels : int
        Input channels (3 for RGB).
    out_channels : int
        Output channels (1 for a binary mask).
    base_filters : int
        Filters of the top level; level ``i`` has ``base_filters * 2**i`` (default 32 -> 512).
    depth : int
        Number of poolings (4). ``H`` and ``W`` must be divisible by ``2**depth``.
    init : {"he", "torch"}
        ``"he"``: weights from a Gaussian with sd sqrt(2/fan_in), biases 0, as the U-Net paper
        prescribes for ReLU networks without normalisation; ``"torch"``: PyTorch's default
        (which shrinks the signal through the 23 layers and can leave a short run stuck at an
        all-background prediction).
    """

    def __init__(self, in_channels: int = 3, out_channels: int = 1, base_filters: int = 32, depth: int = 4, init: str = "he"):
        super().__init__()
        if depth < 1 or base_filters < 1:
            raise ValueError(f"depth and base_filters must be positive, got {depth}, {base_filters}")
        f = [base_filters * 2**i for i in range(depth + 1)]
        self.depth = depth
        self.down = nn.ModuleList([_double_conv(in_channels, f[0])] + [_double_conv(f[i - 1], f[i]) for i in range(1, depth + 1)])
        self.ups = nn.ModuleList([nn.ConvTranspose2d(f[i], f[i - 1], 2, stride=2) for i in range(depth, 0, -1)])
        self.up_convs = nn.ModuleList([_double_conv(2 * f[i - 1], f[i - 1]) for i in range(depth, 0, -1)])
        self.pool = nn.MaxPool2d(2)
        self.head = nn.Conv2d(f[0], out_channels, 1)
        if init == "he":
            for m in self.modules():
                if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                    nn.init.zeros_(m.bias)
        elif init != "torch":
            raise ValueError(f"init must be 'he' or 'torch', got {init!r}")

    def forward(self, x: Tensor) -> Tensor:
        """Logits for a batch ``(N, in_channels, H, W)``."""
        m = 2**self.depth
        if x.ndim != 4 or x.shape[-1] % m or x.shape[-2] % m:
            raise ValueError(f"expected (N, C, H, W) with H, W divisible by {m}, got {tuple(x.shape)}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x)
            if i < self.depth:
                skips.append(x)
                x = self.pool(x)
        for up, conv, s in zip(self.ups, self.up_convs, reversed(skips)):
            x = conv(torch.cat([up(x), s], dim=1))
        return self.head(x)
