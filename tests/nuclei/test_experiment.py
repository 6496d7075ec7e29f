"""Seed training/evaluation protocol helpers."""

import numpy as np
import pytest
import torch
from torch import nn

from lib.nuclei.experiment import UInt8Batch, fit_seed_protocol, per_image_table, predict_proba, recalibrate_batchnorm
from lib.nuclei.multiresunet import MultiResUNet
from lib.nuclei.synthetic import synth_nuclei_arrays


def test_uint8_batch_flips_only_in_training():
    m = nn.Identity()
    x = torch.arange(16, dtype=torch.uint8).reshape(1, 1, 4, 4).repeat(1, 3, 1, 1)
    y = (x[:, :1] > 7).to(torch.uint8) * 255
    t = UInt8Batch(m, augment=True, generator=torch.Generator().manual_seed(0))
    m.eval()
    xe, ye = t(x, y)
    assert torch.equal(xe, x.float() / 255) and torch.equal(ye, y.float() / 255)
    m.train()
    seen = set()
    for _ in range(20):
        xa, ya = t(x, y)
        assert torch.equal((xa[:, :1] * 255 > 7.5).float(), ya)  # image and mask flipped together
        seen.add(tuple(xa[0, 0].flatten().tolist()))
    assert len(seen) == 4


def test_recalibrated_bn_equals_data_statistics():
    m = nn.Sequential(nn.Conv2d(3, 2, 1, bias=False), nn.BatchNorm2d(2, momentum=0.01))
    imgs = np.random.default_rng(0).integers(0, 255, (10, 3, 8, 8), dtype=np.uint8)
    recalibrate_batchnorm(m, imgs, batch_size=5, device="cpu")
    with torch.no_grad():
        feats = m[0](torch.from_numpy(imgs).float() / 255)
    # cumulative average of the two batch means equals the overall mean (equal batch sizes)
    torch.testing.assert_close(m[1].running_mean, feats.mean((0, 2, 3)), rtol=1e-5, atol=1e-6)
    assert m[1].momentum == 0.01 and not m.training


def test_predict_proba_resize_and_tta():
    m = nn.Conv2d(3, 1, 1)  # pointwise: flip-equivariant, so TTA must not change the output
    imgs = np.random.default_rng(1).integers(0, 255, (3, 3, 16, 16), dtype=np.uint8)
    p = predict_proba(m, imgs, device="cpu")
    assert p.shape == (3, 16, 16) and p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(predict_proba(m, imgs, tta=True, device="cpu"), p, atol=1e-6)
    assert predict_proba(m, imgs, out_size=32, device="cpu").shape == (3, 32, 32)


def test_fit_runs_and_logs_history():
    rng = np.random.default_rng(0)
    tr, va = synth_nuclei_arrays(8, rng, 32), synth_nuclei_arrays(4, rng, 32)
    torch.manual_seed(0)
    res = fit_seed_protocol(MultiResUNet(base_filters=4), tr, va, epochs=2, lr=1e-3, augment=True, device="cpu")
    assert list(res.history["epoch"]) == [1, 2]
    assert {"loss", "val_loss", "dice", "val_dice", "lr"} <= set(res.history.columns)
    with pytest.raises(ValueError, match="empty"):
        fit_seed_protocol(MultiResUNet(base_filters=4), tr.subset([]), va, epochs=1)
    tab = per_image_table(va.ids, va.modality, va.masks, va.masks)
    assert (tab["f1"] == 1).all() and list(tab.columns) == ["id", "modality", "f1", "jaccard"]
