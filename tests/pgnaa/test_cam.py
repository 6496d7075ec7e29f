"""1D class activation maps."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lib.pgnaa.cam import class_activation_map, class_mean_cam, model_cam, unimportant_ranges
from lib.pgnaa.small1d import SmallCNN1d


def test_cam_mean_equals_logit_minus_bias():
    torch.manual_seed(0)
    m = SmallCNN1d(3, channels=(4, 8), dropout=0.0).eval()
    x = torch.randn(5, 1, 64)
    feats = m.features(x)
    cams = class_activation_map(feats, m.classifier.weight)  # (B, C, L')
    logits = m(x)
    torch.testing.assert_close(cams.mean(-1) + m.classifier.bias, logits, rtol=1e-5, atol=1e-5)
    assert model_cam(m, x).shape == (5, 64)


class _LineDetector(nn.Module):
    """Toy network whose feature is the input itself: the CAM of class 1 is the spectrum."""

    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(1, 2)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.tensor([[-1.0], [1.0]]))
            self.classifier.bias.zero_()

    def features(self, x):
        return x


def test_cam_peaks_at_injected_line():
    x = torch.zeros(2, 1, 200)
    x[:, 0, 120] = 10.0
    x[1, 0, 40] = 3.0
    cam = model_cam(_LineDetector(), x, classes=torch.tensor([1, 1]))
    assert cam.shape == (2, 200)
    assert cam.argmax(dim=1).tolist() == [120, 120]


def test_class_mean_and_ranges():
    cams = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    mean = class_mean_cam(cams, torch.tensor([0, 0, 2]), 3)
    torch.testing.assert_close(mean[0], torch.tensor([2.0, 3.0]))
    assert torch.isnan(mean[1]).all()
    imp = np.array([0.0, 0.0, 1.0, 1.0, 0.01, 0.0, 1.0])
    e = np.arange(7) * 10.0
    assert unimportant_ranges(imp, e, threshold=0.05) == [(0.0, 10.0), (40.0, 50.0)]
