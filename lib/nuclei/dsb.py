"""Readers, preprocessing and the seed's split for the 2018 Data Science Bowl nuclei images.

Three on-disk layouts are supported (:func:`detect_layout` tells them apart):

``"kaggle"``
    The Kaggle ``stage1_train/<id>/images/<id>.png`` + ``stage1_train/<id>/masks/*.png`` tree, one
    binary PNG per nucleus. Masks are numbered 1..N in sorted file-name order; a later mask wins
    where two overlap.
``"labels"``
    An ``images/<id>.png`` folder and an instance-label folder (``labels/<id>.png`` or, in the
    offline mirror, ``labels_original/`` and ``labels_fixed/``) of integer label maps
    (0 = background, 1..N = nuclei).
``"processed"``
    The seed's processed set: ``images/*.jpg`` + ``masks/*.jpg`` binary masks (0/255, JPEG-noisy).
    It carries no instance identities; :func:`read_dataset` labels its connected components.

The seed's preprocessing (:func:`preprocess_image`, :func:`preprocess_mask`) is: read RGB,
bilinear resize to ``size x size`` without anti-aliasing (OpenCV ``INTER_LINEAR``), divide by
255; masks are resized the same way, kept soft (in [0, 1]) as training targets and thresholded
at 0.5 for evaluation. Its split (:func:`seed_split`) is two scikit-learn ``train_test_split``
calls with ``random_state=42`` on the **sorted** file list, which gives 402/134/134 for 670 images.

One deliberate difference: OpenCV's ``imread`` hands the seed's network **BGR** channels; we keep
RGB by default (``bgr=True`` reproduces the seed's order). For the 562 grey images it makes no
difference, and the network is trained from scratch either way.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

__all__ = [
    "MODALITIES",
    "NucleiRecord",
    "NucleiArrays",
    "detect_layout",
    "list_samples",
    "read_image",
    "read_label_map",
    "read_kaggle_masks",
    "read_record",
    "read_dataset",
    "read_dsb_index",
    "resize_bilinear",
    "resize_labels",
    "preprocess_image",
    "preprocess_mask",
    "seed_split",
    "dsb_split_ids",
    "load_arrays",
    "mirror_root",
]

Layout = Literal["kaggle", "labels", "processed"]
MODALITIES: tuple[str, ...] = ("fluorescence", "color_stained", "brightfield")
_IMG_EXT = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


# --------------------------------------------------------------------------------------- reading
def _bomb(what: str, path: Path, exc: Exception) -> ValueError:
    """The error for an image whose declared size exceeds Pillow's decompression-bomb limit."""
    return ValueError(
        f"refusing to decode {what} {path}: its header declares more pixels than Pillow's decompression-bomb "
        f"limit ({str(exc).rstrip('.')}). A DSB 2018 image is about 1,000 x 1,400 pixels, so the file is "
        "damaged or crafted to exhaust memory: replace it with the original file. If it is a genuine image that "
        "large, raise "
        "PIL.Image.MAX_IMAGE_PIXELS before reading it."
    )


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as RGB.

    Parameters
    ----------
    path : path-like
        PNG/JPEG/TIFF file (grey, RGB or RGBA; alpha is dropped, grey is repeated).

    Returns
    -------
    numpy.ndarray
        ``(H, W, 3)`` uint8.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded or its header declares more pixels than Pillow's
        decompression-bomb limit; the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            if im.mode in ("I;16", "I;16B", "I", "F"):
                a = np.asarray(im, dtype=np.float64)
                a = np.round(255 * (a - a.min()) / max(np.ptp(a), 1e-12))
                return np.repeat(a.astype(np.uint8)[..., None], 3, axis=2)
            return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
    except Image.DecompressionBombError as exc:
        raise _bomb("image", path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode image {path}: {exc}. Is it a valid PNG/JPEG file?") from exc


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """Read an instance-label image (0 = background, k = nucleus k).

    A grey or palette image with an alpha channel (mode ``LA``/``La``/``PA``, as some editors save
    label PNGs) has its alpha dropped: the labels are the grey or palette values. That is refused
    when a fully transparent pixel carries a non-zero label, since it is then unclear whether the
    pixel is background.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded, exceeds Pillow's decompression-bomb limit, is a colour or other
        multi-band image, or labels transparent pixels; the message names the file and the fix.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label file not found: {path}")
    try:
        with Image.open(path) as im:
            mode = im.mode
            if mode in ("RGB", "RGBA"):
                raise ValueError(
                    f"label map {path} is a colour image (mode {mode}); expected a single-channel "
                    "integer label image (e.g. uint16 PNG with 0 = background, 1..N = nuclei)"
                )
            a = np.asarray(im)
    except Image.DecompressionBombError as exc:
        raise _bomb("label map", path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode label map {path}: {exc}") from exc
    if mode in ("LA", "La", "PA") and a.ndim == 3 and a.shape[2] == 2:
        labels, alpha = a[..., 0], a[..., 1]
        hidden = (alpha == 0) & (labels != 0)
        if hidden.any():
            r, c = (int(v) for v in np.argwhere(hidden)[0])
            raise ValueError(
                f"label map {path} (mode {mode}, grey + alpha) has {int(hidden.sum())} fully transparent pixel(s) "
                f"with a non-zero label (first at row {r}, column {c}: label {int(labels[r, c])}), so it is unclear "
                "whether they are nuclei or background; save the labels without an alpha channel (a single-band "
                "grey or uint16 PNG with 0 = background, 1..N = nuclei)"
            )
        a = labels
    if a.ndim != 2:
        raise ValueError(
            f"label map {path} has {a.shape[2] if a.ndim == 3 else a.ndim} bands (mode {mode}); expected a "
            "single-channel integer label image (e.g. uint16 PNG with 0 = background, 1..N = nuclei)"
        )
    return a.astype(np.int32)


def _read_binary(path: Path) -> np.ndarray:
    """Read a (possibly JPEG-noisy) binary mask as bool ``(H, W)``: grey value > 127."""
    if not path.is_file():
        raise FileNotFoundError(f"mask file not found: {path}")
    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L"))  # grey + alpha (LA) and RGBA drop their alpha here
    except Image.DecompressionBombError as exc:
        raise _bomb("mask", path, exc) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise ValueError(f"cannot decode mask {path}: {exc}") from exc
    return a > 127


def read_kaggle_masks(mask_paths: Sequence[str | os.PathLike], shape: tuple[int, int] | None = None) -> np.ndarray:
    """Combine Kaggle per-nucleus binary masks into one instance-label map.

    Masks are numbered ``1..N`` in the given order (sort them first); a later mask overwrites
    an earlier one where they overlap, as in the offline mirror.

    Parameters
    ----------
    mask_paths : sequence of path-like
        One binary PNG per nucleus.
    shape : (H, W), optional
        Expected size; a mask of another size raises ``ValueError``.

    Returns
    -------
    numpy.ndarray
        ``(H, W)`` int32 label map.
    """
    if not mask_paths and shape is None:
        raise ValueError("no mask files given and no shape to build an empty label map")
    labels = None if shape is None else np.zeros(shape, np.int32)
    for k, p in enumerate(mask_paths, start=1):
        m = _read_binary(Path(p))
        if labels is None:
            labels = np.zeros(m.shape, np.int32)
        if m.shape != labels.shape:
            raise ValueError(f"mask {p} has size {m.shape}, expected {labels.shape} (the image size)")
        labels[m] = k
    assert labels is not None
    return labels


# --------------------------------------------------------------------------------------- layouts
def detect_layout(root: str | os.PathLike) -> Layout:
    """Guess the layout of a nuclei data folder (see the module docstring).

    Raises
    ------
    FileNotFoundError
        If ``root`` does not exist or matches none of the three layouts.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    images = root / "images"
    if images.is_dir():
        if (root / "masks").is_dir():
            return "processed"
        if any((root / d).is_dir() for d in ("labels", "labels_original", "labels_fixed")):
            return "labels"
    subs = [d for d in sorted(root.iterdir()) if d.is_dir()]
    if subs and all((d / "images").is_dir() for d in subs[:5]):
        return "kaggle"
    raise FileNotFoundError(
        f"{root} matches no known nuclei layout: expected <id>/images/<id>.png + <id>/masks/*.png "
        "(Kaggle stage1_train), images/ + labels/ (instance labels), or images/*.jpg + masks/*.jpg "
        "(the seed's processed set)"
    )


def _files(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in _IMG_EXT and p.is_file()}


@dataclass(frozen=True)
class _Sample:
    id: str
    image: Path
    target: Path | tuple[Path, ...]


def list_samples(
    root: str | os.PathLike,
    layout: Layout | Literal["auto"] = "auto",
    labels: str = "labels",
    ids: Sequence[str] | None = None,
) -> list[_Sample]:
    """List ``(id, image path, target path(s))`` for every sample (or only ``ids``), sorted by id.

    Parameters
    ----------
    root : path-like
        Data folder.
    layout : {"auto", "kaggle", "labels", "processed"}
    labels : str
        Label sub-folder for the ``"labels"`` layout (``"labels"``, ``"labels_original"``,
        ``"labels_fixed"``). For ``"labels"`` the mirror's ``labels_original`` is used when no
        plain ``labels/`` folder exists.
    ids : sequence of str, optional
        Restrict to these ids (pairing is then only checked for them).

    Raises
    ------
    ValueError
        If an image has no mask/label (or the reverse), naming the offending ids.
    """
    root = Path(root)
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "kaggle":
        out = []
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            imgs = sorted((d / "images").glob("*.png")) if (d / "images").is_dir() else []
            if len(imgs) != 1:
                raise ValueError(f"Kaggle sample {d} must hold exactly one images/*.png, found {len(imgs)}")
            if not (d / "masks").is_dir():
                raise ValueError(f"Kaggle sample {d} has no masks/ folder (image without mask)")
            out.append(_Sample(d.name, imgs[0], tuple(sorted((d / "masks").glob("*.png")))))
        return out
    if layout == "processed":
        img_dir, tgt_dir = root / "images", root / "masks"
    elif layout == "labels":
        if labels == "labels" and not (root / "labels").is_dir() and (root / "labels_original").is_dir():
            labels = "labels_original"
        img_dir, tgt_dir = root / "images", root / labels
    else:
        raise ValueError(f"unknown layout {layout!r}; use 'auto', 'kaggle', 'labels' or 'processed'")
    for d in (img_dir, tgt_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"missing folder {d} for the {layout!r} layout")
    imgs, tgts = _files(img_dir), _files(tgt_dir)
    if ids is not None:
        wanted = set(ids)
        imgs = {k: v for k, v in imgs.items() if k in wanted}
        tgts = {k: v for k, v in tgts.items() if k in wanted}
        absent = sorted(wanted - set(imgs) - set(tgts))
        if absent:
            raise ValueError(f"{len(absent)} requested id(s) not in {root}: {absent[:3]}")
    missing_t, missing_i = sorted(set(imgs) - set(tgts)), sorted(set(tgts) - set(imgs))
    if missing_t or missing_i:
        raise ValueError(
            f"images and masks do not pair up in {root}: {len(missing_t)} image(s) without a mask "
            f"{missing_t[:3]}, {len(missing_i)} mask(s) without an image {missing_i[:3]}. Every "
            f"{img_dir.name}/<id>.* needs a {tgt_dir.name}/<id>.* with the same stem."
        )
    return [_Sample(k, imgs[k], tgts[k]) for k in sorted(imgs)]


@dataclass
class NucleiRecord:
    """One image at native resolution with its instance labels.

    Attributes
    ----------
    id : str
        Sample id (file stem / Kaggle folder name).
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    labels : numpy.ndarray
        ``(H, W)`` int32 instance map (0 = background).
    """

    id: str
    image: np.ndarray
    labels: np.ndarray


def read_record(sample: _Sample, layout: Layout) -> NucleiRecord:
    """Read one listed sample; image and labels must have the same size."""
    img = read_image(sample.image)
    if layout == "kaggle":
        assert isinstance(sample.target, tuple)
        lab = read_kaggle_masks(sample.target, img.shape[:2])
    elif layout == "processed":
        from scipy import ndimage

        lab = ndimage.label(_read_binary(Path(sample.target)))[0].astype(np.int32)
    else:
        lab = read_label_map(sample.target)  # type: ignore[arg-type]
    if lab.shape != img.shape[:2]:
        raise ValueError(
            f"sample {sample.id}: image {sample.image} is {img.shape[:2]} but its mask/labels are "
            f"{lab.shape}; images and masks must have the same height and width"
        )
    return NucleiRecord(sample.id, img, lab)


def read_dataset(
    root: str | os.PathLike,
    layout: Layout | Literal["auto"] = "auto",
    labels: str = "labels",
    ids: Sequence[str] | None = None,
) -> list[NucleiRecord]:
    """Read every sample (or the listed ``ids``) of a folder at native resolution, sorted by id."""
    if layout == "auto":
        layout = detect_layout(root)
    samples = list_samples(root, layout, labels, ids=ids if layout != "kaggle" else None)
    if ids is not None:
        by_id = {s.id: s for s in samples}
        unknown = [i for i in ids if i not in by_id]
        if unknown:
            raise ValueError(f"{len(unknown)} requested id(s) not in {root}: {unknown[:3]}")
        samples = [by_id[i] for i in ids]
    return [read_record(s, layout) for s in samples]


def read_dsb_index(root: str | os.PathLike) -> list[dict[str, str]]:
    """The mirror's per-image index ``manifest.csv``: one dict per image, sorted by ``image_id``.

    Columns include ``image_id, height, width, modality_guess, n_nuclei_original, in_fixed_set``
    (see the mirror's README). Not to be confused with the registry's checksum manifests
    (:func:`lib.core.registry.read_manifest`).
    """
    path = Path(root) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; the DSB 2018 mirror folder must contain manifest.csv")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return sorted(rows, key=lambda r: r["image_id"])


def mirror_root() -> Path:
    """The DSB 2018 mirror folder, from ``lib.core.registry.fetch("dsb2018")`` (checksums verified).

    Raises
    ------
    FileNotFoundError
        If the data are absent (not in the cache, no mirror): callers may fall back to synthetic data.
    lib.core.registry.ChecksumError
        If the files exist but differ from the registry (corrupt or another version). This is
        never turned into "data absent": a corrupt mirror must stop the run, not silently
        switch it to synthetic images.
    """
    from lib.core import registry

    try:
        return Path(registry.fetch("dsb2018"))
    except registry.ChecksumError:
        raise
    except registry.DataUnavailableError as exc:
        raise FileNotFoundError(f"dsb2018 unavailable: {exc}") from exc


# --------------------------------------------------------------------------------- preprocessing
def resize_bilinear(x: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize with half-pixel centres and no anti-aliasing (OpenCV ``INTER_LINEAR``).

    Parameters
    ----------
    x : numpy.ndarray
        ``(H, W)`` or ``(H, W, C)`` array (any real dtype).
    size : int or (h, w)
        Output size in pixels.

    Returns
    -------
    numpy.ndarray
        float32 ``(h, w)`` or ``(h, w, C)``.
    """
    hw = (size, size) if isinstance(size, int) else tuple(size)
    t = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
    t = t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]
    out = F.interpolate(t, size=hw, mode="bilinear", align_corners=False, antialias=False)[0]
    out = out[0] if x.ndim == 2 else out.permute(1, 2, 0)
    return out.numpy()


def resize_labels(labels: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an instance map ``(H, W)`` (ids preserved; tiny nuclei may vanish)."""
    hw = (size, size) if isinstance(size, int) else tuple(size)
    h, w = labels.shape
    rows = np.minimum(((np.arange(hw[0]) + 0.5) * h / hw[0]).astype(int), h - 1)
    cols = np.minimum(((np.arange(hw[1]) + 0.5) * w / hw[1]).astype(int), w - 1)
    return labels[np.ix_(rows, cols)]


def preprocess_image(image: np.ndarray, size: int = 256, bgr: bool = False) -> np.ndarray:
    """The seed's image preprocessing: resize to ``size x size`` (uint8 rounding, as OpenCV), /255.

    Parameters
    ----------
    image : numpy.ndarray
        ``(H, W, 3)`` uint8 RGB.
    size : int
        Output side in pixels (seed: 256).
    bgr : bool
        Reverse the channel order (the seed's OpenCV BGR input).

    Returns
    -------
    numpy.ndarray
        ``(3, size, size)`` float32 in [0, 1].
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
    r = np.clip(np.rint(resize_bilinear(image, size)), 0, 255) / 255.0
    if bgr:
        r = r[..., ::-1]
    return np.ascontiguousarray(r.transpose(2, 0, 1), dtype=np.float32)


def preprocess_mask(labels: np.ndarray, size: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """The seed's mask preprocessing: union of nuclei, bilinear resize, /255.

    Returns
    -------
    soft : numpy.ndarray
        ``(size, size)`` float32 in [0, 1] (the training target, as the seed's ``read_mask``).
    binary : numpy.ndarray
        ``(size, size)`` bool, ``soft > 0.5`` (the evaluation target).
    """
    u8 = np.where(labels > 0, 255.0, 0.0)
    soft = np.clip(np.rint(resize_bilinear(u8, size)), 0, 255).astype(np.float32) / 255.0
    return soft, soft > 0.5


# ------------------------------------------------------------------------------------------ split
def seed_split(items: Sequence, split: float = 0.2, random_state: int = 42) -> tuple[list, list, list]:
    """The seed's train/validation/test split of a **sorted** list.

    ``size = int(len(items) * split)``; ``train, valid = train_test_split(items, test_size=size,
    random_state=42)``; ``train, test = train_test_split(train, test_size=size, random_state=42)``.
    670 items give 402/134/134. Made by :func:`lib.core.splits.split_ids` (``stream="sklearn"``
    draws exactly what those two calls draw), which refuses duplicate ids and overlapping parts.

    Returns
    -------
    (train, valid, test) : tuple of lists
    """
    from lib.core.splits import split_ids

    items = list(items)
    if items != sorted(items):
        raise ValueError("seed_split expects the sorted list of paths/ids (the seed sorts its glob)")
    size = int(len(items) * split)
    if size < 1 or len(items) - 2 * size < 1:
        raise ValueError(f"{len(items)} items are too few for two splits of {split:.0%}")
    s = split_ids(items, sizes=(size, size), names=("train", "valid", "test"), seed=random_state, stream="sklearn")
    return s["train"], s["valid"], s["test"]


def dsb_split_ids(root: str | os.PathLike) -> dict[str, list[str]]:
    """The seed's 402/134/134 split of the 670 DSB ids (sorted ids == sorted ``<id>.jpg`` paths)."""
    ids = [r["image_id"] for r in read_dsb_index(root)]
    train, valid, test = seed_split(ids)
    return {"train": train, "valid": valid, "test": test}


# ----------------------------------------------------------------------------------------- arrays
@dataclass
class NucleiArrays:
    """A preprocessed, fixed-size set ready for training and evaluation.

    Attributes
    ----------
    ids : list of str
    images : numpy.ndarray
        ``(N, 3, S, S)`` uint8 resized images (divide by 255 for the network input).
    soft : numpy.ndarray
        ``(N, 1, S, S)`` uint8 soft masks x255 (training target / 255).
    masks : numpy.ndarray
        ``(N, S, S)`` bool evaluation masks (``soft > 0.5``).
    labels : numpy.ndarray
        ``(N, S, S)`` int32 instance maps (nearest-resized).
    modality : list of str
        ``fluorescence``, ``color_stained``, ``brightfield`` or ``synthetic``.
    """

    ids: list[str]
    images: np.ndarray
    soft: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    modality: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, index: Sequence[int] | np.ndarray) -> NucleiArrays:
        """Rows ``index`` (ints or a boolean mask) as a new set."""
        idx = np.arange(len(self))[np.asarray(index)] if len(index) else np.zeros(0, int)
        return NucleiArrays(
            [self.ids[i] for i in idx], self.images[idx], self.soft[idx], self.masks[idx],
            self.labels[idx], [self.modality[i] for i in idx] if self.modality else [],
        )

    def by_modality(self, modality: str) -> NucleiArrays:
        """The per-modality view (``fluorescence``, ``color_stained`` or ``brightfield``)."""
        if modality not in set(self.modality) | set(MODALITIES):
            raise ValueError(f"unknown modality {modality!r}; choose from {MODALITIES}")
        return self.subset(np.array([m == modality for m in self.modality], bool))

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)`` float tensors: images/255 ``(N, 3, S, S)`` and soft masks ``(N, 1, S, S)``."""
        return (torch.from_numpy(self.images).float() / 255.0, torch.from_numpy(self.soft).float() / 255.0)

    @staticmethod
    def from_records(
        records: Sequence[NucleiRecord], size: int, modality: Sequence[str] | None = None, bgr: bool = False
    ) -> NucleiArrays:
        """Preprocess native-resolution records to ``size x size`` (see :func:`preprocess_image`)."""
        n = len(records)
        images = np.empty((n, 3, size, size), np.uint8)
        soft = np.empty((n, 1, size, size), np.uint8)
        masks = np.empty((n, size, size), bool)
        labels = np.empty((n, size, size), np.int32)
        for i, r in enumerate(records):
            images[i] = np.rint(preprocess_image(r.image, size, bgr) * 255).astype(np.uint8)
            s, b = preprocess_mask(r.labels, size)
            soft[i, 0] = np.rint(s * 255).astype(np.uint8)
            masks[i] = b
            labels[i] = resize_labels(r.labels, size)
        mods = list(modality) if modality is not None else ["unknown"] * n
        return NucleiArrays([r.id for r in records], images, soft, masks, labels, mods)


def load_arrays(
    root: str | os.PathLike,
    ids: Sequence[str],
    size: int = 256,
    label_set: Literal["original", "fixed"] = "original",
    bgr: bool = False,
) -> NucleiArrays:
    """Load and preprocess DSB mirror images ``ids`` with original or community-fixed labels.

    For ``label_set="fixed"`` the 6 ids removed by the fixes are dropped (the split is still the
    one of the 670 original ids, so the fixed-label test set has at most 134 images).

    Parameters
    ----------
    root : path-like
        Mirror folder (``manifest.csv``, ``images/``, ``labels_original/``, ``labels_fixed/``).
    ids : sequence of str
    size : int
        Side of the resized images (seed: 256).
    label_set : {"original", "fixed"}
    bgr : bool
        Seed's OpenCV channel order.
    """
    if label_set not in ("original", "fixed"):
        raise ValueError(f"label_set must be 'original' or 'fixed', got {label_set!r}")
    man = {r["image_id"]: r for r in read_dsb_index(root)}
    unknown = [i for i in ids if i not in man]
    if unknown:
        raise ValueError(f"{len(unknown)} id(s) not in the manifest of {root}: {unknown[:3]}")
    if label_set == "fixed":
        ids = [i for i in ids if man[i]["in_fixed_set"] == "1"]
    recs = read_dataset(root, "labels", labels=f"labels_{label_set}", ids=list(ids))
    return NucleiArrays.from_records(recs, size, [man[i]["modality_guess"] for i in ids], bgr)
