"""Our training recipe: normalisation, crops and symmetries, loss, schedule, native prediction."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from lib.nuclei import recipe as R
from lib.nuclei.synthetic import synth_nuclei_records
from lib.nuclei.unet2d import UNet2D


def _blobs(background, nucleus, size=40):
    img = np.full((size, size, 3), background, np.uint8)
    img[10:20, 10:20] = nucleus
    img[25:32, 5:12] = nucleus
    return img


def test_normalisation_is_gain_invariant_and_inverts_bright_backgrounds():
    rng = np.random.default_rng(0)
    dim = np.clip(_blobs(5, 30) + rng.integers(0, 3, (40, 40, 3)), 0, 255).astype(np.uint8)
    bright = (dim.astype(int) * 3).astype(np.uint8)
    a, b = R.normalize_image(dim), R.normalize_image(bright)
    assert a.shape == (3, 40, 40) and a.dtype == np.uint8
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 3  # same picture after a 3x gain, up to rounding
    # brightfield-like: dark nuclei on a bright background become bright on dark
    bf = R.normalize_image(_blobs(220, 90))
    assert bf[:, 12, 12].mean() > 200 and bf[:, 2, 2].mean() < 50
    # stained-like: dark purple nuclei on a light purple background; every channel ends dark outside nuclei
    st = np.full((40, 40, 3), (180, 160, 220), np.uint8)
    st[10:20, 10:20] = (100, 60, 160)
    st = R.normalize_image(st + np.random.default_rng(1).integers(0, 4, st.shape).astype(np.uint8))
    assert st[:, 12, 12].min() > 200 and st[:, 2, 2].max() < 60
    fl = R.normalize_image(_blobs(10, 150))
    assert fl[:, 12, 12].mean() > 200 and fl[:, 2, 2].mean() < 50
    assert R.normalize_image(_blobs(220, 90), invert=False)[:, 12, 12].mean() < 50
    raw = R.normalize_image(_blobs(220, 90), percentiles=None, invert=False)
    np.testing.assert_array_equal(raw, _blobs(220, 90).transpose(2, 0, 1))  # the seed's /255 scaling
    with pytest.raises(ValueError, match="RGB"):
        R.normalize_image(np.zeros((4, 4), np.uint8))


def test_crops_keep_image_and_mask_aligned_under_all_symmetries():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (3, 24, 30), dtype=np.uint8)
    mask = img[0] > 127
    ds = R.CropDataset([img], [mask], crop=24, crops_per_image=200, augment=True, seed=3)
    seen = set()
    for i in range(len(ds)):
        x, y = ds[i]
        assert x.shape == (3, 24, 24) and y.shape == (1, 24, 24)
        torch.testing.assert_close((x[0] * 255 > 127.5).float(), y[0])
        seen.add(x[0].numpy().tobytes())
    assert len(seen) >= 8 * 3  # 8 symmetries x several positions
    small = R.CropDataset([img[:, :10, :12]], [mask[:10, :12]], crop=16, augment=False)
    assert small[0][0].shape == (3, 16, 16)  # reflect-padded
    with pytest.raises(ValueError, match="do not match"):
        R.CropDataset([img], [mask[:5]])


def test_dice_bce_closed_form():
    n = 64
    logits, target = torch.zeros(1, 1, 8, 8), torch.ones(1, 1, 8, 8)
    dice = (2 * 0.5 * n + 1) / (0.5 * n + n + 1)
    assert float(R.dice_bce_loss(logits, target)) == pytest.approx(math.log(2) + 1 - dice, rel=1e-6)
    assert float(R.dice_bce_loss(logits, target, dice_weight=0)) == pytest.approx(math.log(2), rel=1e-6)
    perfect = torch.where(target > 0, 30.0, -30.0)
    assert float(R.dice_bce_loss(perfect, target)) < 1e-6


def test_recipe_schedule_warms_up_then_decays():
    """fit_recipe's schedule, epoch by epoch: half the peak in the warm-up epoch, then cosine (E = 4)."""
    rng = np.random.default_rng(0)
    imgs = [rng.integers(0, 256, (3, 32, 32), dtype=np.uint8) for _ in range(4)]
    masks = [rng.random((32, 32)) > 0.5 for _ in range(4)]
    res = R.fit_recipe(nn.Conv2d(3, 1, 3, padding=1), imgs, masks, imgs[:2], masks[:2], epochs=4, crop=16,
                       batch_size=4, lr=1.0, augment=False, device="cpu")
    expected = [0.5] + [0.5 * (1 + math.cos(math.pi * e / 4)) for e in (1, 2, 3)]
    assert res.history["lr"].tolist() == pytest.approx(expected, abs=1e-15)


def test_predict_native_crops_padding_back():
    torch.manual_seed(0)
    m = nn.Conv2d(3, 1, 1)  # pointwise: the reference is the same map applied pixel by pixel
    img = np.random.default_rng(2).integers(0, 256, (3, 37, 50), dtype=np.uint8)
    (p,) = R.predict_native(m, [img], device="cpu")
    with torch.no_grad():
        ref = torch.sigmoid(m(torch.from_numpy(img)[None].float() / 255))[0, 0].numpy()
    assert p.shape == (37, 50)
    np.testing.assert_allclose(p, ref, atol=1e-6)
    (pt,) = R.predict_native(m, [img], tta=True, device="cpu")
    np.testing.assert_allclose(pt, ref, atol=1e-6)
    (pu,) = R.predict_native(UNet2D(3, 1, base_filters=2), [img], device="cpu")  # needs the padding to /16
    assert pu.shape == (37, 50)


def test_resize_probability():
    assert R.resize_probability(np.full((30, 50), 0.25, np.float32), 16).shape == (16, 16)
    np.testing.assert_allclose(R.resize_probability(np.full((30, 50), 0.25, np.float32), 16), 0.25, atol=1e-6)


def test_fit_recipe_learns_on_synthetic_nuclei():
    rng = np.random.default_rng(0)
    recs = synth_nuclei_records(12, rng, 64)
    xs = [R.normalize_image(r.image) for r in recs]
    ms = [r.labels > 0 for r in recs]
    torch.manual_seed(0)
    res = R.fit_recipe(UNet2D(3, 1, base_filters=4), xs[:9], ms[:9], xs[9:], ms[9:], epochs=8, crop=48,
                       crops_per_image=8, lr=1e-2, seed=0, device="cpu")
    h = res.history
    assert list(h["epoch"]) == list(range(1, 9))
    assert h["val_loss"].min() < 0.5 * h["val_loss"].iloc[0]
    assert h["val_dice"].max() > 0.6  # an empty prediction scores ~0, an all-foreground one ~0.2
