"""A careful practitioner's training recipe for binary nuclei segmentation (beside the seed's).

What differs from the seed's protocol (:func:`lib.nuclei.experiment.fit_seed_protocol`), each
change switchable for an ablation:

* **Per-image percentile normalisation** (:func:`normalize_image`): each channel is mapped so
  that its ``low``/``high`` percentiles become 0 and 1, instead of dividing by 255; dim
  fluorescence images then look like bright ones, and a tinted (stained) background becomes
  uniformly bright in all channels.
* **Brightfield inversion**: where the background is bright (the median of the normalised
  image lies in the upper half: brightfield and stained images) the image is inverted, so
  nuclei are bright on dark in every modality.
* **Crops at native resolution** (:class:`CropDataset`): random ``crop x crop`` windows of the
  unresized image instead of squashing every image (256x256 to 1040x1388 in DSB) to one size,
  so nuclei keep their size in pixels; prediction runs on the whole native image
  (:func:`predict_native`, fully convolutional) and is resized only for scoring.
* **Flips and 90-degree rotations** of every crop (the 8 symmetries of the square).
* **Dice + BCE** loss (:func:`dice_bce_loss`) on the binary union mask.
* **A schedule**: AdamW, one warm-up epoch, then cosine decay to zero (:class:`lib.core.schedules.LRSchedule`
  ``"cosine"`` with ``warmup=1``, stepped per epoch).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.core import repro, schedules, train

__all__ = [
    "normalize_image",
    "CropDataset",
    "dice_bce_loss",
    "fit_recipe",
    "predict_native",
    "resize_probability",
]


def normalize_image(
    image: np.ndarray, *, percentiles: tuple[float, float] | None = (1.0, 99.8), invert: bool | str = "auto"
) -> np.ndarray:
    """Per-image percentile normalisation with optional inversion of bright-background images.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    percentiles : (float, float) or None
        Lower/upper percentiles of each channel mapped to 0 and 1, then clipped to [0, 1]
        (per channel, so that a tinted background is bright in every channel).
        ``None``: divide by 255 (the seed's scaling).
    invert : bool or "auto"
        ``"auto"``: invert when the median of the normalised channel-mean image is above 0.5,
        i.e. most pixels (the background) are bright: brightfield and stained images;
        ``True``/``False``: always/never.

    Returns
    -------
    numpy.ndarray
        ``(3, H, W)`` uint8, the normalised image x255 (stored compactly; divide by 255).
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    if invert not in (True, False, "auto"):
        raise ValueError(f"invert must be True, False or 'auto', got {invert!r}")
    x = image.astype(np.float32)
    if percentiles is None:
        lo, hi = np.zeros(3, np.float32), np.full(3, 255.0, np.float32)
    else:
        lo, hi = np.percentile(x.reshape(-1, 3), percentiles, axis=0).astype(np.float32)
        hi = np.where(hi > lo, hi, lo + 1.0)
    y = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    flip = invert is True or (invert == "auto" and float(np.median(y.mean(2))) > 0.5)
    if flip:
        y = 1.0 - y
    return np.ascontiguousarray(np.rint(y * 255).astype(np.uint8).transpose(2, 0, 1))


class CropDataset(torch.utils.data.Dataset):
    """Random native-resolution crops with the 8 square symmetries.

    Item ``i`` is a fresh random ``crop x crop`` window of image ``i // crops_per_image``;
    images smaller than the crop are reflect-padded. Positions and symmetries come from one
    seeded NumPy generator (reproducible with a single-process loader).

    Parameters
    ----------
    images : sequence of numpy.ndarray
        ``(3, H, W)`` uint8 normalised images (sizes may differ).
    masks : sequence of numpy.ndarray
        ``(H, W)`` bool foreground masks.
    crop : int
        Side of the crops, px.
    crops_per_image : int
        Crops drawn per image and epoch.
    augment : bool
        Random flips and 90-degree rotations.
    seed : int
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        masks: Sequence[np.ndarray],
        *,
        crop: int = 128,
        crops_per_image: int = 1,
        augment: bool = True,
        seed: int = 0,
    ):
        if len(images) != len(masks) or not images:
            raise ValueError(f"need equally many (>0) images and masks, got {len(images)} and {len(masks)}")
        for im, m in zip(images, masks):
            if im.ndim != 3 or im.shape[1:] != m.shape:
                raise ValueError(f"image {im.shape} and mask {m.shape} do not match; expected (3, H, W) and (H, W)")
        if crop < 8 or crops_per_image < 1:
            raise ValueError(f"crop must be >= 8 and crops_per_image >= 1, got {crop}, {crops_per_image}")
        self.images, self.masks = list(images), list(masks)
        self.crop, self.k, self.augment = int(crop), int(crops_per_image), augment
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.images) * self.k

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        im, m = self.images[i // self.k], self.masks[i // self.k]
        c = self.crop
        h, w = m.shape
        ph, pw = max(c - h, 0), max(c - w, 0)
        if ph or pw:
            im = np.pad(im, ((0, 0), (0, ph), (0, pw)), mode="reflect")
            m = np.pad(m, ((0, ph), (0, pw)), mode="reflect")
            h, w = m.shape
        r, q = int(self.rng.integers(0, h - c + 1)), int(self.rng.integers(0, w - c + 1))
        x, y = im[:, r : r + c, q : q + c], m[None, r : r + c, q : q + c]
        if self.augment:
            k, fl = int(self.rng.integers(0, 4)), bool(self.rng.integers(0, 2))
            x, y = np.rot90(x, k, axes=(1, 2)), np.rot90(y, k, axes=(1, 2))
            if fl:
                x, y = x[:, :, ::-1], y[:, :, ::-1]
        xt = torch.from_numpy(np.ascontiguousarray(x)).float() / 255.0
        return xt, torch.from_numpy(np.ascontiguousarray(y)).float()


def dice_bce_loss(logits: Tensor, target: Tensor, *, dice_weight: float = 1.0, smooth: float = 1.0) -> Tensor:
    """Binary cross-entropy plus ``dice_weight`` x (1 - soft Dice over the batch).

    Parameters
    ----------
    logits, target : torch.Tensor
        ``(N, 1, H, W)``; target in [0, 1].
    dice_weight : float
        0 gives plain BCE.
    smooth : float
        Additive smoothing of the Dice ratio (pixels).
    """
    bce = F.binary_cross_entropy_with_logits(logits, target)
    if dice_weight == 0:
        return bce
    p = torch.sigmoid(logits)
    dice = (2 * (p * target).sum() + smooth) / (p.sum() + target.sum() + smooth)
    return bce + dice_weight * (1 - dice)


def fit_recipe(
    model: nn.Module,
    train_images: Sequence[np.ndarray],
    train_masks: Sequence[np.ndarray],
    valid_images: Sequence[np.ndarray],
    valid_masks: Sequence[np.ndarray],
    *,
    epochs: int = 10,
    crop: int = 128,
    crops_per_image: int = 1,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 8,
    augment: bool = True,
    dice_weight: float = 1.0,
    schedule: bool = True,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> train.FitResult:
    """Train on random native-resolution crops (see the module docstring).

    The validation set is one fixed crop per validation image (drawn once with ``seed``);
    the weights of the epoch with the lowest validation loss are kept.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(N, 1, c, c)`` for crops ``(N, 3, c, c)``.
    train_images, valid_images : sequence of numpy.ndarray
        ``(3, H, W)`` uint8 normalised images (:func:`normalize_image`).
    train_masks, valid_masks : sequence of numpy.ndarray
        ``(H, W)`` bool masks.
    epochs, crop, crops_per_image, lr, weight_decay, batch_size : int, int, int, float, float, int
    augment : bool
        Flips and 90-degree rotations.
    dice_weight : float
        Weight of the Dice term (0: BCE only).
    schedule : bool
        Warm-up + cosine decay; ``False`` keeps ``lr`` constant.
    seed : int
    device : str or torch.device

    Returns
    -------
    lib.core.train.FitResult
    """
    tr = CropDataset(train_images, train_masks, crop=crop, crops_per_image=crops_per_image, augment=augment, seed=seed)
    va_ds = CropDataset(valid_images, valid_masks, crop=crop, augment=False,
                        seed=repro.derive_seed(seed, "valid_crops"))
    va = [va_ds[i] for i in range(len(va_ds))]
    xv, yv = torch.stack([a for a, _ in va]), torch.stack([b for _, b in va])
    tl = train.seeded_loader(tr, batch_size=batch_size, shuffle=True, seed=seed, drop_last=len(tr) > batch_size)
    vl = train.array_loader(xv, yv, batch_size=2 * batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = schedules.LRSchedule(opt, "cosine", total=epochs, warmup=1) if schedule else None

    def loss(out: Tensor, y: Tensor) -> Tensor:
        return dice_bce_loss(out, y, dice_weight=dice_weight)

    def hard_dice(out: Tensor, y: Tensor) -> float:
        p = (out > 0).float()
        return float((2 * (p * y).sum() + 1e-6) / (p.sum() + y.sum() + 1e-6))

    return train.fit(model, tl, loss_fn=loss, epochs=epochs, optimizer=opt, val_loader=vl,
                     metrics={"dice": hard_dice}, scheduler=sched, device=device, progress=False)


@torch.no_grad()
def predict_native(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    tta: bool = False,
    multiple: int = 16,
    device: str | torch.device = "auto",
) -> list[np.ndarray]:
    """Foreground probabilities of whole native-resolution images, one image at a time.

    Each image is reflect-padded to a multiple of ``multiple`` pixels (the network's total
    down-sampling), predicted in one pass and cropped back.

    Parameters
    ----------
    model : torch.nn.Module
    images : sequence of numpy.ndarray
        ``(3, H, W)`` uint8 normalised images.
    tta : bool
        Average over the four flips.
    multiple : int
    device : str or torch.device

    Returns
    -------
    list of numpy.ndarray
        ``(H, W)`` float32 probabilities.
    """
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    model.to(dev).eval()
    flips: list[list[int]] = [[], [-1], [-2], [-1, -2]] if tta else [[]]
    out = []
    for im in images:
        h, w = im.shape[1:]
        ph, pw = (-h) % multiple, (-w) % multiple
        x = torch.from_numpy(np.ascontiguousarray(im))[None].float().to(dev) / 255.0
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), mode="reflect")
        p = sum(torch.sigmoid(model(x.flip(f))).flip(f) if f else torch.sigmoid(model(x)) for f in flips) / len(flips)
        out.append(p[0, 0, :h, :w].cpu().numpy().astype(np.float32))
    return out


def resize_probability(prob: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Resize a probability map ``(H, W)`` bilinearly (anti-aliased when shrinking) to ``size``."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    t = torch.from_numpy(np.ascontiguousarray(prob, dtype=np.float32))[None, None]
    if tuple(t.shape[-2:]) == hw:
        return t[0, 0].numpy()
    return F.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=True)[0, 0].numpy()
