"""Classic U-Net baseline: parameter counts of the MultiResUNet paper and shapes."""

import pytest
import torch

from lib.nuclei.unet2d import UNet2D


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_counts():
    assert n_params(UNet2D(3, 1)) == 7_760_097
    assert n_params(UNet2D(1, 1)) == 7_759_521  # the paper's table (1 input channel)


@pytest.mark.parametrize("base,size,depth", [(4, 32, 4), (8, 48, 3), (4, 16, 2)])
def test_shapes(base, size, depth):
    m = UNet2D(3, 2, base_filters=base, depth=depth)
    assert m(torch.rand(2, 3, size, size)).shape == (2, 2, size, size)


def test_bad_size():
    with pytest.raises(ValueError, match="divisible"):
        UNet2D(base_filters=4)(torch.rand(1, 3, 20, 20))


def test_he_init_keeps_signal_scale():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    sd = {init: UNet2D(base_filters=8, init=init)(x).std().item() for init in ("he", "torch")}
    assert sd["he"] > 10 * sd["torch"]  # PyTorch's default shrinks the signal through 23 layers
    with pytest.raises(ValueError):
        UNet2D(init="xavier")
