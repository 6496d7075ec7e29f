"""Small spectrum classifiers for the Table II comparison: shapes and parameter counts."""

from __future__ import annotations

import pytest
import torch

from lib.pgnaa.small1d import GRUClassifier, ImageCNN2d, ResNet1d, SmallCNN1d, TransformerClassifier


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("channels, length", [((8,), 64), ((16, 32, 64, 64), 1974), ((4, 8, 8), 500)])
def test_small_cnn_shapes(channels, length):
    m = SmallCNN1d(7, channels=channels).eval()
    x = torch.randn(3, 1, length)
    assert m(x).shape == (3, 7)
    assert m.features(x).shape[:2] == (3, channels[-1])


def test_small_cnn_parameter_count():
    m = SmallCNN1d(2, channels=(4,), kernel_size=3)
    # conv 1*4*3 (no bias) + BN 2*4 + linear 4*2+2
    assert n_params(m) == 12 + 8 + 10


@pytest.mark.parametrize("layers, bottleneck", [((1, 1, 1, 1), False), ((1, 2, 1, 1), True)])
def test_resnet_shapes(layers, bottleneck):
    m = ResNet1d(4, layers=layers, base_width=8, bottleneck=bottleneck).eval()
    assert m(torch.randn(2, 1, 300)).shape == (2, 4)
    assert m.num_features == 64 * (4 if bottleneck else 1)


def test_resnet101_layout_size():
    """ResNet-101 layout (3,4,23,3) bottlenecks at width 64: the 2D net has 42.5 M params without the head;
    the 1D version has k instead of k*k weights in the 3x3/7x7 convs, hence fewer."""
    m = ResNet1d(1000, layers=(3, 4, 23, 3), base_width=64, bottleneck=True)
    body = n_params(m) - n_params(m.classifier)
    assert 20e6 < body < 42.5e6
    assert m.num_features == 2048


def test_gru_transformer_image():
    assert GRUClassifier(3, hidden=8, stride=8)(torch.randn(2, 1, 256)).shape == (2, 3)
    t = TransformerClassifier(3, length=256, patch=32, d_model=16, n_heads=2, n_layers=1, dim_feedforward=32)
    assert t(torch.randn(2, 1, 256)).shape == (2, 3)
    with pytest.raises(ValueError, match="configured length"):
        t(torch.randn(2, 1, 128))
    assert ImageCNN2d(5, channels=(4, 8))(torch.randn(2, 1, 16, 32)).shape == (2, 5)
    with pytest.raises(ValueError, match="odd"):
        SmallCNN1d(2, kernel_size=4)
