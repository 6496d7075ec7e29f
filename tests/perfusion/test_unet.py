"""Shape and parameter-count tests of Gava et al.'s perfusion U-Net."""

import pytest
import torch

from lib.core.train import count_parameters
from lib.perfusion.unet import UNet


def test_full_width_parameter_count_matches_paper_code():
    # paper-era code (64..1024 features, 89 frames): 31.09 M parameters (research note)
    assert count_parameters(UNet(89, 1)) == pytest.approx(31.09e6, rel=0.002)


@pytest.mark.parametrize("in_ch,out_ch,width,size,pool", [(89, 1, 1 / 16, 32, "avg"), (18, 3, 1 / 8, 64, "max"),
                                                          (5, 2, 0.25, 48, "avg")])
def test_shapes_and_range(in_ch, out_ch, width, size, pool):
    m = UNet(in_ch, out_ch, width=width, pool=pool).eval()
    y = m(torch.randn(2, in_ch, size, size))
    assert y.shape == (2, out_ch, size, size)
    assert torch.all((y > 0) & (y < 1))


def test_avg_and_max_pool_have_same_parameters():
    n_avg = count_parameters(UNet(10, 1, width=0.125, pool="avg"))
    assert n_avg == count_parameters(UNet(10, 1, width=0.125, pool="max"))
    assert isinstance(UNet(10, pool="avg").pool, torch.nn.AvgPool2d)


def test_convs_have_no_bias_and_width_scales():
    m = UNet(89, 1, width=0.5)
    assert m.features == [32, 64, 128, 256, 512]
    convs = [c for c in m.modules() if isinstance(c, torch.nn.Conv2d) and c.kernel_size == (3, 3)]
    assert all(c.bias is None for c in convs)


def test_bad_input_errors():
    m = UNet(4, width=0.125)
    with pytest.raises(ValueError, match="divisible"):
        m(torch.randn(1, 4, 30, 30))
    with pytest.raises(ValueError, match="pool"):
        UNet(4, pool="min")
