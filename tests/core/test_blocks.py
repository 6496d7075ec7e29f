"""ConvNormAct: shapes, parts, defaults, and the same initial weights as the written-out Sequential."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lib.core.blocks import ConvNormAct


@pytest.mark.parametrize("dims,shape", [(1, (2, 3, 20)), (2, (2, 3, 12, 10)), (3, (2, 3, 6, 8, 4))])
def test_same_padding_keeps_the_size_in_every_dimension(dims, shape):
    block = ConvNormAct(3, 5, kernel_size=3, dims=dims)
    assert block(torch.randn(*shape)).shape == (2, 5, *shape[2:])
    assert [n for n, _ in block.named_children()] == ["conv", "norm", "act"]
    assert isinstance(block.norm, {1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}[dims])
    assert (block.in_channels, block.out_channels) == (3, 5)
    assert block.conv.bias is None  # the batch norm's shift makes it redundant


def test_strided_transposed_and_optional_parts():
    down = ConvNormAct(4, 8, kernel_size=2, stride=2, padding=0, act="elu", bias=True)
    assert down(torch.randn(1, 4, 16, 16)).shape == (1, 8, 8, 8) and down.conv.bias is not None
    assert isinstance(down.act, nn.ELU)
    up = ConvNormAct(8, 4, kernel_size=2, stride=2, padding=0, transposed=True)
    assert isinstance(up.conv, nn.ConvTranspose2d) and up(torch.randn(1, 8, 8, 8)).shape == (1, 4, 16, 16)
    plain = ConvNormAct(3, 3, kernel_size=5, norm=None, act=None)
    assert [n for n, _ in plain.named_children()] == ["conv"] and plain.conv.bias is not None
    keras = ConvNormAct(3, 3, kernel_size=1, bn_momentum=0.01, bn_eps=1e-3)
    assert (keras.norm.momentum, keras.norm.eps) == (0.01, 1e-3)
    custom = ConvNormAct(3, 6, kernel_size=1, norm=lambda c: nn.GroupNorm(2, c), act=nn.Tanh)
    assert isinstance(custom.norm, nn.GroupNorm) and isinstance(custom.act, nn.Tanh)


def test_same_weights_and_outputs_as_the_written_out_sequence():
    torch.manual_seed(0)
    ref = nn.Sequential(nn.Conv1d(2, 4, 7, stride=2, padding=3, bias=False), nn.BatchNorm1d(4, eps=1e-3),
                        nn.ReLU(inplace=True))
    torch.manual_seed(0)
    ours = ConvNormAct(2, 4, kernel_size=7, stride=2, padding=3, dims=1, bn_eps=1e-3)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == 2 * 4 * 7 + 8
    x = torch.randn(3, 2, 32)
    assert torch.equal(ours(x), ref(x))


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="kernel_size must be a positive int"):
        ConvNormAct(3, 3, kernel_size=0)
    with pytest.raises(ValueError, match="dims must be 1, 2 or 3"):
        ConvNormAct(3, 3, kernel_size=3, dims=4)
    with pytest.raises(ValueError, match="act must be one of"):
        ConvNormAct(3, 3, kernel_size=3, act="gelu")
    with pytest.raises(ValueError, match="norm must be 'batch'"):
        ConvNormAct(3, 3, kernel_size=3, norm="layer")
    with pytest.raises(ValueError, match="transposed convolution needs an int padding"):
        ConvNormAct(3, 3, kernel_size=2, transposed=True)
