"""1D Inception-ResNet-V2: shapes, feature lengths and parameter counts."""

from __future__ import annotations

import pytest
import torch

from lib.pgnaa.inception_resnet1d import InceptionResNetV2_1D


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_full_size_parameter_count():
    """Full widths/repeats: 45.1 M parameters without the classifier (research note's analytic count)."""
    m = InceptionResNetV2_1D(12)
    body = n_params(m) - n_params(m.classifier)
    assert body == pytest.approx(45.1e6, rel=0.005)
    assert m.num_features == 1536
    assert n_params(m.classifier) == 1536 * 12 + 12


@pytest.mark.parametrize("width, repeats, length, l_out", [(0.125, (1, 1, 1), 7897, 245), (0.0625, (0, 2, 1), 1974, 60),
                                                           (0.125, (1, 0, 0), 987, 29)])
def test_shapes(width, repeats, length, l_out):
    m = InceptionResNetV2_1D(5, width=width, repeats=repeats).eval()
    x = torch.randn(2, 1, length)
    with torch.no_grad():
        f = m.features(x)
        assert f.shape == (2, m.num_features, l_out)
        assert m(x).shape == (2, 5)


def test_width_scales_parameters_quadratically():
    a = n_params(InceptionResNetV2_1D(4, width=0.125, repeats=(1, 1, 1)))
    b = n_params(InceptionResNetV2_1D(4, width=0.25, repeats=(1, 1, 1)))
    assert 3.0 < b / a < 4.2


def test_bad_input():
    m = InceptionResNetV2_1D(3, width=0.0625, repeats=(0, 0, 0))
    with pytest.raises(ValueError, match="too short"):
        m(torch.randn(1, 1, 40))
    with pytest.raises(ValueError, match="batch, channels, length"):
        m(torch.randn(1, 100))
    with pytest.raises(ValueError, match="width"):
        InceptionResNetV2_1D(3, width=0)
