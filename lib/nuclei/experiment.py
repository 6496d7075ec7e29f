"""The internship report's training and evaluation protocol for binary nuclei segmentation.

Training (:func:`fit_seed_protocol`): Adam (seed: lr 1e-4, Keras' epsilon 1e-7), batch 8, binary cross-entropy on the
soft resized masks, keep the weights of the best validation loss (the seed's ``ModelCheckpoint``),
``ReduceLROnPlateau`` x0.1 after 5 epochs without improvement (min 1e-7), early stopping after 20,
a per-epoch log. Optional random flips (horizontal, vertical) as augmentation.

Evaluation (:func:`predict_proba`, :func:`evaluate_masks`): sigmoid probabilities, optionally
averaged over the four flips (test-time augmentation), bilinearly resized to the evaluation size,
thresholded at 0.5, and scored with the pixel metrics of :mod:`lib.core.metrics` both pooled over the
test set and as per-image means (the seed's aggregation).

Beside the seed's protocol, :func:`train_recipe` trains with the recipe of :mod:`lib.nuclei.recipe`
(native-resolution crops, normalisation, Dice + BCE, symmetries, schedule), each change switchable
for the ablation; the remaining helpers build the chapter's tables and verdict sentences.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.core import repro, train, verdict
from lib.core.metrics import segmentation_report
from lib.core.splits import check_disjoint
from lib.nuclei.dsb import NucleiArrays, NucleiRecord, preprocess_mask, resize_bilinear
from lib.nuclei.instances import object_report, watershed_instances
from lib.nuclei.recipe import fit_recipe, normalize_image, predict_native, resize_probability

__all__ = [
    "UInt8Batch",
    "fit_seed_protocol",
    "recalibrate_batchnorm",
    "predict_proba",
    "evaluate_masks",
    "per_image_table",
    "recipe_inputs",
    "build_network",
    "train_recipe",
    "instance_maps",
    "modality_table",
    "pick_cases",
    "seed_spread",
    "method_key",
    "read_sweep_metrics",
    "seed_table",
    "seeds_text",
    "ablation_table",
    "ablation_text",
    "REPORT_TEST_SCORES",
    "REPORT_LOG",
    "per_image_scores",
    "report_comparison",
    "log_comparison",
    "protocol_differences",
]


class UInt8Batch:
    """Batch transform: uint8 images/masks -> float in [0, 1], plus random flips while training.

    Parameters
    ----------
    model : torch.nn.Module
        Flips are applied only when ``model.training`` is true (never to validation batches).
    augment : bool
        Random horizontal and vertical flips, the same for image and mask.
    generator : torch.Generator, optional
        CPU generator for the flip decisions (reproducible).
    """

    def __init__(self, model: nn.Module, augment: bool = False, generator: torch.Generator | None = None):
        self.model, self.augment, self.generator = model, augment, generator

    def __call__(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Map uint8 ``(N, 3, S, S)`` / ``(N, 1, S, S)`` to float32 in [0, 1]."""
        x = x.float() / 255.0
        y = y.float() / 255.0
        if self.augment and self.model.training:
            flips = torch.rand(2, generator=self.generator) < 0.5
            dims = [d for d, f in zip((-1, -2), flips.tolist()) if f]
            if dims:
                x, y = x.flip(dims), y.flip(dims)
        return x, y


def fit_seed_protocol(
    model: nn.Module,
    train_set: NucleiArrays,
    valid_set: NucleiArrays,
    *,
    epochs: int = 10,
    lr: float = 1e-4,
    batch_size: int = 8,
    augment: bool = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    reduce_patience: int = 5,
    early_stopping: int = 20,
) -> train.FitResult:
    """Train with the seed's protocol (see the module docstring).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits ``(N, 1, S, S)`` for images ``(N, 3, S, S)``.
    train_set, valid_set : NucleiArrays
        Preprocessed sets (same size ``S``).
    epochs, lr, batch_size : int, float, int
        Seed: 10, 1e-4, 8.
    augment : bool
        Random flips of the training batches.
    seed : int
        Seeds the shuffling order and the flips.
    device : str or torch.device
    reduce_patience, early_stopping : int
        Epochs without validation-loss improvement before lr x0.1 / stopping (seed: 5 / 20).

    Returns
    -------
    lib.core.train.FitResult
        ``history`` has ``loss, val_loss, dice, val_dice, iou, val_iou, lr, time_s`` per epoch (Dice and IoU
        soft, per batch, as the seed's ``dice_coef`` and ``iou``).
    """
    if len(train_set) == 0 or len(valid_set) == 0:
        raise ValueError("training and validation sets must not be empty")
    tr = train.array_loader(train_set.images, train_set.soft, batch_size=batch_size, shuffle=True, seed=seed)
    va = train.array_loader(valid_set.images, valid_set.soft, batch_size=batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr, eps=1e-7)  # Keras' Adam epsilon (PyTorch's default: 1e-8)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.1, patience=reduce_patience, min_lr=1e-7)
    gen = torch.Generator().manual_seed(repro.derive_seed(seed, "flip"))

    def soft_dice(out: Tensor, y: Tensor) -> float:  # the seed's dice_coef, per batch
        p = torch.sigmoid(out)
        return float((2 * (p * y).sum() + 1e-15) / (p.sum() + y.sum() + 1e-15))

    def soft_iou(out: Tensor, y: Tensor) -> float:  # the seed's iou, per batch
        p = torch.sigmoid(out)
        inter = (p * y).sum()
        return float((inter + 1e-15) / (p.sum() + y.sum() - inter + 1e-15))

    return train.fit(
        model, tr, loss_fn=nn.BCEWithLogitsLoss(), epochs=epochs, optimizer=opt, val_loader=va,
        metrics={"dice": soft_dice, "iou": soft_iou}, batch_transform=UInt8Batch(model, augment, gen), scheduler=sched,
        scheduler_monitor=True, early_stopping=early_stopping, device=device, progress=False,
    )


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module, images: np.ndarray, *, batch_size: int = 8, device: str | torch.device = "auto"
) -> nn.Module:
    """Re-estimate batch-norm running statistics as exact averages over ``images``.

    With the Keras momentum (0.99, PyTorch 0.01) the running mean and variance forget their
    initial values (0 and 1) only after several hundred steps; after a short CPU run they are
    still far from the data's statistics and the network in evaluation mode predicts almost
    nothing. This pass (``momentum=None``: cumulative average over the batches, weights
    unchanged) fixes the statistics; with long training it changes little.

    Parameters
    ----------
    model : torch.nn.Module
    images : numpy.ndarray
        ``(N, 3, S, S)`` uint8 training images.
    batch_size : int
    device : str or torch.device

    Returns
    -------
    torch.nn.Module
        ``model`` (modified in place), in evaluation mode.
    """
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return model.eval()
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.to(dev).train()
    for i in range(0, len(images), batch_size):
        model(torch.from_numpy(images[i : i + batch_size]).to(dev).float() / 255.0)
    for m, mom in zip(bns, saved):
        m.momentum = mom
    return model.eval()


@torch.no_grad()
def predict_proba(
    model: nn.Module,
    images: np.ndarray,
    *,
    out_size: int | None = None,
    tta: bool = False,
    batch_size: int = 8,
    device: str | torch.device = "auto",
) -> np.ndarray:
    """Foreground probabilities for uint8 images.

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits.
    images : numpy.ndarray
        ``(N, 3, S, S)`` uint8.
    out_size : int, optional
        Resize the probabilities (bilinear, half-pixel) to ``out_size x out_size``.
    tta : bool
        Average the probabilities over identity, horizontal, vertical and both flips.
    batch_size : int
    device : str or torch.device

    Returns
    -------
    numpy.ndarray
        ``(N, out_size, out_size)`` float32 in [0, 1].
    """
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    model.to(dev).eval()
    flips: list[list[int]] = [[], [-1], [-2], [-1, -2]] if tta else [[]]
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.from_numpy(images[i : i + batch_size]).to(dev).float() / 255.0
        p = sum(torch.sigmoid(model(x.flip(f) if f else x)).flip(f) if f else torch.sigmoid(model(x)) for f in flips) / len(flips)
        if out_size is not None and out_size != p.shape[-1]:
            p = F.interpolate(p, size=(out_size, out_size), mode="bilinear", align_corners=False)
        out.append(p[:, 0].cpu().numpy())
    return np.concatenate(out).astype(np.float32)


def evaluate_masks(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Pixel metrics, pooled and per-image mean (``lib.core.metrics.segmentation_report``)."""
    return segmentation_report(np.asarray(y_true, bool), np.asarray(y_pred, bool))


def per_image_table(ids: list[str], modality: list[str], y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """Per-image F1 and Jaccard with ids and modality (for best/worst cases and breakdowns)."""
    from lib.core.metrics import f1_score, jaccard

    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    return pd.DataFrame({
        "id": ids,
        "modality": modality,
        "f1": f1_score(t, p, reduction="none"),
        "jaccard": jaccard(t, p, reduction="none"),
    })


# ------------------------------------------------------------------------ chapter glue (recipe, tables)
def recipe_inputs(
    records: Sequence[NucleiRecord],
    *,
    normalize: bool = True,
    invert: bool = True,
    squash: int | None = None,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Network inputs and masks of the recipe for native-resolution records.

    Parameters
    ----------
    records : sequence of NucleiRecord
    normalize : bool
        Per-image percentile normalisation (else /255, the seed's scaling).
    invert : bool
        Invert bright-background (brightfield, stained) images.
    squash : int, optional
        Ablation of native-resolution crops: resize every image and mask to ``squash x squash``
        first (the seed's handling), then crop from that.

    Returns
    -------
    images : list of numpy.ndarray
        ``(3, H, W)`` uint8 normalised images.
    masks : list of numpy.ndarray
        ``(H, W)`` bool union masks.
    """
    imgs, masks = [], []
    for r in records:
        image, lab = r.image, r.labels
        if squash is not None:
            image = np.clip(np.rint(resize_bilinear(image, squash)), 0, 255).astype(np.uint8)
            masks.append(preprocess_mask(lab, squash)[1])
        else:
            masks.append(lab > 0)
        pct = (1.0, 99.8) if normalize else None
        imgs.append(normalize_image(image, percentiles=pct, invert="auto" if invert else False))
    return imgs, masks


def build_network(
    kind: str, *, width: int, variant: str = "seed", bn_momentum: float = 0.1, seed: int = 0
) -> nn.Module:
    """A freshly initialised ``"MultiResUNet"`` (top width ``width``) or ``"U-Net"`` (``width``-``16 width``)."""
    from lib.nuclei.multiresunet import MultiResUNet, set_bn_momentum
    from lib.nuclei.unet2d import UNet2D

    torch.manual_seed(seed)
    if kind == "MultiResUNet":
        return set_bn_momentum(MultiResUNet(3, 1, base_filters=width, variant=variant), bn_momentum)  # type: ignore[arg-type]
    if kind == "U-Net":
        return UNet2D(3, 1, base_filters=width)
    raise ValueError(f"unknown network {kind!r}; use 'MultiResUNet' or 'U-Net'")


def train_recipe(
    kind: str,
    train_records: Sequence[NucleiRecord],
    valid_records: Sequence[NucleiRecord],
    test_records: Sequence[NucleiRecord],
    *,
    eval_size: int,
    width: int,
    epochs: int,
    crop: int = 128,
    crops_per_image: int = 1,
    lr: float = 3e-3,
    batch_size: int = 8,
    normalize: bool = True,
    invert: bool = True,
    native: bool = True,
    squash_size: int = 256,
    augment: bool = True,
    dice_weight: float = 1.0,
    schedule: bool = True,
    tta: bool = False,
    variant: str = "seed",
    bn_momentum: float = 0.1,
    seed: int = 0,
    device: str | torch.device = "auto",
) -> tuple[train.FitResult, np.ndarray]:
    """Train one network with the recipe and predict the test set, scored at ``eval_size``.

    Every switch (``normalize``, ``invert``, ``native``, ``augment``, ``dice_weight``,
    ``schedule``) turns one change of the recipe off for the ablation; with ``native=False``
    images are squashed to ``squash_size`` first and predictions are made at that size.
    The kept epoch is chosen on ``valid_records`` alone; the test records are only predicted,
    and the three sets must share no id (:func:`lib.core.splits.check_disjoint`).

    Returns
    -------
    fit : lib.core.train.FitResult
    prob : numpy.ndarray
        ``(N_test, eval_size, eval_size)`` float32 test probabilities.
    """
    check_disjoint(train=[r.id for r in train_records], valid=[r.id for r in valid_records],
                   test=[r.id for r in test_records])
    squash = None if native else squash_size
    kw = dict(normalize=normalize, invert=invert, squash=squash)
    tr_x, tr_y = recipe_inputs(train_records, **kw)
    va_x, va_y = recipe_inputs(valid_records, **kw)
    te_x, _ = recipe_inputs(test_records, **kw)
    model = build_network(kind, width=width, variant=variant, bn_momentum=bn_momentum, seed=seed)
    res = fit_recipe(model, tr_x, tr_y, va_x, va_y, epochs=epochs, crop=min(crop, squash or crop),
                     crops_per_image=crops_per_image, lr=lr, batch_size=batch_size, augment=augment,
                     dice_weight=dice_weight, schedule=schedule, seed=seed, device=device)
    probs = predict_native(res.model, te_x, tta=tta, device=device)
    return res, np.stack([resize_probability(p, eval_size) for p in probs])


def instance_maps(
    prob: np.ndarray, *, min_distance: int, min_size: int = 0, threshold: float = 0.5
) -> list[np.ndarray]:
    """Watershed instances of each thresholded probability (or binary) map ``(N, H, W)``.

    Parameters
    ----------
    prob : numpy.ndarray
        ``(N, H, W)`` probabilities (or bool masks).
    min_distance : int
        Marker separation, px (:func:`lib.nuclei.instances.watershed_instances`).
    min_size : int
        Instances with fewer pixels are dropped (specks of a few pixels are false positives).
    threshold : float
    """
    return [watershed_instances(p > threshold, min_distance=min_distance, min_size=min_size)
            for p in np.asarray(prob, np.float32)]


def modality_table(
    truth: np.ndarray,
    true_labels: Sequence[np.ndarray],
    modality: Sequence[str],
    preds: dict[str, np.ndarray],
    instances: dict[str, list[np.ndarray]],
) -> pd.DataFrame:
    """Pooled pixel F1 and watershed AP@0.5 per modality for every method.

    Parameters
    ----------
    truth : numpy.ndarray
        ``(N, H, W)`` bool test masks.
    true_labels : sequence of numpy.ndarray
        ``(H, W)`` true instance maps.
    modality : sequence of str
        Modality of each test image.
    preds : dict of name -> (N, H, W) bool
    instances : dict of name -> list of (H, W) int
        Predicted instance maps (same keys as ``preds``).

    Returns
    -------
    pandas.DataFrame
        Index ``(modality, method)``; columns ``images, pixel F1 (pooled), AP@0.5, DSB mean AP``.
    """
    mod = np.asarray(modality)
    rows = []
    for m in [x for x in ("fluorescence", "color_stained", "brightfield", "synthetic") if (mod == x).any()]:
        sel = np.flatnonzero(mod == m)
        for name, p in preds.items():
            obj = object_report([true_labels[i] for i in sel], [instances[name][i] for i in sel])
            rows.append({"modality": m, "method": name, "images": int(sel.size),
                         "pixel F1 (pooled)": evaluate_masks(truth[sel], p[sel])["f1_pooled"],
                         "AP@0.5": obj["ap50"], "DSB mean AP": obj["dsb"]})
    return pd.DataFrame(rows).set_index(["modality", "method"])


def pick_cases(scores: Sequence[float]) -> dict[str, int]:
    """Indices of the best, median and worst image by a per-image score (ties: first)."""
    s = np.asarray(scores, np.float64)
    if s.size == 0:
        raise ValueError("no scores given")
    order = np.argsort(s, kind="stable")
    return {"best": int(order[-1]), "median": int(order[(s.size - 1) // 2]), "worst": int(order[0])}


def seed_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; 0 for one value) of per-seed scores."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        raise ValueError("no values given")
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


_KEYS = {"Otsu (per image)": "otsu", "MultiResUNet, our recipe": "mru", "U-Net, our recipe": "unet",
         "MultiResUNet, seed protocol": "mru_seedp", "U-Net, seed protocol": "unet_seedp"}


def method_key(name: str) -> str:
    """Short metric prefix of a method's display name (``"MultiResUNet, our recipe"`` -> ``"mru"``)."""
    try:
        return _KEYS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}; known: {sorted(_KEYS)}") from None


def _source_kind(source: str | None) -> str:
    """``"real"`` or ``"synthetic"`` from a recorded data source (a missing record is not real data)."""
    return "real" if source is not None and str(source).split(" ")[0] == "real" else "synthetic"


def read_sweep_metrics(folder: str | Path, *, data: Mapping[str, str] | None = None,
                       match: Mapping[str, object] | None = None) -> pd.DataFrame:
    """One row per run of a sweep: the ``metrics.json`` of every ``<folder>/<point>/`` (empty if none).

    Parameters
    ----------
    folder : path-like
        ``_runs/<study>/<sweep>``, as written by the workflow.
    data : mapping of str to str, optional
        The data sources of the run that reads the sweep, e.g. ``{"dsb2018": "real"}``. A sweep run whose
        recorded ``_data_sources`` differ for any of these datasets (a run on the synthetic fallback read
        by a chapter on real data, or the reverse) is left out, so that a table never mixes them. A run whose
        ``provenance.json`` records a status other than ``"ok"`` (failed, interrupted) is always left out.
    match : mapping, optional
        Parameters the sweep runs must share with the reader (its scale: image size, width, epochs, ...), as
        recorded in each run's ``provenance.json``; a run that differs in any of them, or has no record, is
        left out (a ``ci`` run does not summarise ``lab``-sized sweeps as if they were its own).

    Returns
    -------
    pandas.DataFrame
        Columns: ``point`` and every numeric metric; rows sorted by point id. ``attrs["left_out"]`` maps each
        point left out to the reason.
    """
    import json

    rows, left_out = [], {}
    for f in sorted(Path(folder).glob("*/metrics.json")):
        with open(f) as fh:
            m = json.load(fh)
        recorded = m.get("_data_sources") or {}
        bad = [k for k, v in (data or {}).items() if _source_kind(recorded.get(k)) != _source_kind(v)]
        if bad:
            left_out[f.parent.name] = f"other data ({', '.join(f'{k}: {recorded.get(k)}' for k in bad)})"
            continue
        prov_file = f.parent / "provenance.json"
        prov = json.loads(prov_file.read_text()) if prov_file.is_file() else None
        if prov is not None and prov.get("status", "ok") != "ok":
            left_out[f.parent.name] = f"run not finished (status {prov.get('status')!r})"
            continue
        if match:
            params = prov.get("parameters", {}) if prov is not None else None
            if params is None:
                left_out[f.parent.name] = "no provenance.json"
                continue
            differ = {k: params.get(k) for k, v in match.items() if params.get(k) != v}
            if differ:
                left_out[f.parent.name] = "other parameters (" + ", ".join(f"{k}={v!r}" for k, v in differ.items()) + ")"
                continue
        rows.append({"point": f.parent.name, **{k: v for k, v in m.items() if isinstance(v, (int, float))}})
    table = pd.DataFrame(rows)
    table.attrs["left_out"] = left_out
    return table


def seed_table(runs: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """Mean, sample standard deviation, minimum and maximum over the runs of a seed sweep.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per seed (:func:`read_sweep_metrics`).
    keys : sequence of str
        Metric columns to summarise; those absent from ``runs`` are skipped.

    Returns
    -------
    pandas.DataFrame
        Index: the metrics; columns ``mean``, ``sd``, ``min``, ``max``, ``runs``.
    """
    rows = {}
    for k in keys:
        if k not in runs:
            continue
        v = runs[k].dropna().to_numpy(np.float64)
        if v.size:
            mean, sd = seed_spread(v)
            rows[k] = {"mean": mean, "sd": sd, "min": float(v.min()), "max": float(v.max()), "runs": int(v.size)}
    return pd.DataFrame.from_dict(rows, orient="index", columns=["mean", "sd", "min", "max", "runs"])


def seeds_text(mean: float, sd: float, n: int, *, goal: float, single: float, what: str = "pooled F1") -> str:
    """A sentence on a seed sweep: the mean ± spread, against a goal and against the one run of the chapter.

    Examples
    --------
    >>> print(seeds_text(0.893, 0.004, 3, goal=0.90, single=0.894))  # doctest: +NORMALIZE_WHITESPACE
    over 3 seeds the pooled F1 is 0.893 ± 0.004 (sample SD), short of the goal 0.90 by 0.7 points, about 1.8 SD;
    this run's 0.894 lies within 1 SD of the mean
    """
    c = verdict.compare(mean, goal, scale=100.0)
    if c.side != "worse":
        vs_goal = f"which meets the goal {goal:.2f}"
    else:
        in_sd = f", about {c.gap / sd:.1f} SD" if sd > 0 else ""
        vs_goal = f"short of the goal {goal:.2f} by {100 * c.gap:.1f} points{in_sd}"
    where = verdict.spread(single, mean, sd)
    return (f"over {n} seeds the {what} is {mean:.3f} ± {sd:.3f} (sample SD), {vs_goal}; "
            f"this run's {single:.3f} {where}")


def ablation_table(runs: pd.DataFrame, switches: Sequence[str], *, reference: str = "none",
                   keys: Sequence[str] = ("mru_f1_pooled", "mru_jaccard_pooled", "mru_ws_ap50")) -> pd.DataFrame:
    """The ablation sweep as one row per change switched off, with the change in F1 against the full recipe.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per point of the ablation sweep (:func:`read_sweep_metrics`), with ``recipe_off_index``.
    switches : sequence of str
        The names indexed by ``recipe_off_index`` (the chapter's ``RECIPE_SWITCHES``; ``reference`` = nothing off).
    reference : str
        The row of the full recipe.

    Returns
    -------
    pandas.DataFrame
        Index ``switched off``; columns ``keys`` and, when the reference row exists, ``ΔF1 (points)`` (100 × the
        F1 of the row minus that of the full recipe: negative when the change helps).
    """
    if "recipe_off_index" not in runs:
        raise ValueError("the ablation runs carry no 'recipe_off_index' metric; rerun the sweep with this chapter")
    names = [switches[int(i)] for i in runs["recipe_off_index"]]
    table = runs.assign(**{"switched off": names}).groupby("switched off")[list(keys)].mean()
    table = table.reindex([s for s in switches if s in table.index])
    if reference in table.index:
        table["ΔF1 (points)"] = 100 * (table[keys[0]] - table.loc[reference, keys[0]])
    return table


def ablation_text(table: pd.DataFrame, *, noise_points: float | None = None, reference: str = "none") -> str:
    """A sentence from :func:`ablation_table`: which change helps most, and which are within the seed noise.

    ``noise_points`` is the seed spread of the F1 in points (e.g. 100 × its SD over seeds); changes whose
    effect is no larger are called indistinguishable from the seed noise.
    """
    if "ΔF1 (points)" not in table:
        return f"the ablation has no run of the full recipe ('{reference}'), so no change can be measured"
    d = table["ΔF1 (points)"].drop(reference)
    if d.empty:
        return "the ablation has only the run of the full recipe"
    worst = d.idxmin()
    parts = [f"switching off {worst!r} costs the most, {-d[worst]:.1f} points of pooled F1"
             if d[worst] < 0 else f"no change of the recipe helps: switching off any one of them changes the pooled "
                                  f"F1 by {d.min():+.1f} to {d.max():+.1f} points"]
    if noise_points is not None and noise_points > 0:
        small = [k for k, v in d.items() if abs(v) <= noise_points]
        if small:
            parts.append(f"the effect of {', '.join(repr(k) for k in small)} is within the seed spread "
                         f"({noise_points:.1f} points)")
    helps = [k for k, v in d.items() if v > 0 and (noise_points is None or v > noise_points)]
    if helps:
        parts.append(f"switching off {', '.join(repr(k) for k in helps)} raises it")
    return "; ".join(parts)


# ------------------------------------------------------------------------ the report's numbers, and ours beside them
#: The internship report's two sets of test scores (per-image means over its 134 test images), with the lines of
#: ``../shared/seeds/002_dbb4a5b33c65cd4d.txt`` that print them. The two disagree; the report does not say why.
REPORT_TEST_SCORES: dict[str, dict[str, float]] = {
    "printout (L601-605)": {"accuracy": 0.95239, "f1": 0.81965, "jaccard": 0.71057, "recall": 0.89071,
                            "precision": 0.78358},
    "bold list (L608-612)": {"accuracy": 0.93973, "f1": 0.81270, "jaccard": 0.71249, "recall": 0.84063,
                             "precision": 0.84225},
}

#: The report's training log (Keras, MultiResUNet U=32 at 256 px), epochs 1-3: training BCE, soft Dice and IoU
#: (per-batch means over the epoch) and validation BCE; lines L414-424 of the seed.
REPORT_LOG: dict[int, dict[str, float]] = {
    1: {"loss": 0.6011, "dice": 0.3602, "iou": 0.2229, "val_loss": 0.62193},
    2: {"loss": 0.4056, "dice": 0.4603, "iou": 0.3044, "val_loss": 0.54406},
    3: {"loss": 0.2884, "dice": 0.5338, "iou": 0.3719, "val_loss": 0.49610},
}
_LOG_LINES = {1: "L414-416", 2: "L418-420", 3: "L422-424"}
_SCORES = ("accuracy", "f1", "jaccard", "recall", "precision")


def per_image_scores(y_true: np.ndarray, y_pred: np.ndarray) -> pd.DataFrame:
    """The five pixel metrics of every image (the seed's scikit-learn loop), one row per image.

    Parameters
    ----------
    y_true, y_pred : numpy.ndarray
        ``(N, H, W)`` boolean masks.

    Returns
    -------
    pandas.DataFrame
        Columns ``accuracy, f1, jaccard, recall, precision``; their column means are the ``*_mean`` values of
        :func:`evaluate_masks`.
    """
    from lib.core.metrics import f1_score, jaccard, pixel_accuracy, precision, recall

    t, p = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    fns = (pixel_accuracy, f1_score, jaccard, recall, precision)
    return pd.DataFrame({name: fn(t, p, reduction="none") for name, fn in zip(_SCORES, fns)})


def report_comparison(
    protocol: pd.DataFrame,
    *,
    recipe: Mapping[str, float] | None = None,
    otsu: Mapping[str, float] | None = None,
    k: float = 2.0,
) -> pd.DataFrame:
    """The report's test scores beside its protocol re-run here, our recipe and Otsu, with a computed verdict.

    A score is *reproduced* when the re-run's per-image mean lies within the range spanned by the report's two
    result sets (:data:`REPORT_TEST_SCORES`) widened by ``k`` standard errors of that mean (the SD of the
    per-image values over the square root of their number: the spread from the choice of test images; the
    report gives no spread over trainings).

    Parameters
    ----------
    protocol : pandas.DataFrame
        :func:`per_image_scores` of the re-run of the report's protocol.
    recipe, otsu : mapping, optional
        ``evaluate_masks`` of our recipe and of Otsu (their ``*_mean`` values are shown).
    k : float
        Tolerance in standard errors.

    Returns
    -------
    pandas.DataFrame
        Index: the five metrics (per-image means); columns: one per report result set (named with its seed
        lines), ``protocol here``, ``SE``, ``our recipe``, ``Otsu``, ``verdict``.
    """
    if len(protocol) == 0:
        raise ValueError("no per-image scores of the re-run given")
    rows = {}
    n = len(protocol)
    for metric in _SCORES:
        vals = protocol[metric].to_numpy(np.float64)
        mean = float(vals.mean())
        se = float(vals.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0
        lo = min(r[metric] for r in REPORT_TEST_SCORES.values())
        hi = max(r[metric] for r in REPORT_TEST_SCORES.values())
        if lo - k * se <= mean <= hi + k * se:
            say = f"reproduced (within the report's range ± {k:g} SE)"
        else:
            gap, side = (lo - mean, "below") if mean < lo else (mean - hi, "above")
            say = f"not reproduced: {gap:.3f} {side}" + (f" ({gap / se:.0f} SE)" if se > 0 else "")
        rows[metric] = {**{f"report, {which}": ref[metric] for which, ref in REPORT_TEST_SCORES.items()},
                        "protocol here": mean, "SE": se,
                        "our recipe": (recipe or {}).get(f"{metric}_mean", np.nan),
                        "Otsu": (otsu or {}).get(f"{metric}_mean", np.nan), "verdict": say}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("per-image mean")


def log_comparison(history: pd.DataFrame, *, scaled: str = "") -> pd.DataFrame:
    """The report's training log (:data:`REPORT_LOG`, epochs 1-3) beside the re-run's, epoch by epoch.

    Compared in kind only: a re-run that is ``scaled`` (narrower, smaller input) does not reach the report's
    loss at the same epoch, so the verdict gives the difference, not a pass or fail.

    Parameters
    ----------
    history : pandas.DataFrame
        The re-run's :func:`fit_seed_protocol` history (``epoch, loss, dice, iou, val_loss``).
    scaled : str
        What the re-run scales, e.g. ``"U=8, 96 px"`` (named in the verdict).

    Returns
    -------
    pandas.DataFrame
        Index ``(epoch, quantity)``; columns ``report``, ``seed line``, ``protocol here``, ``verdict``.
    """
    hist = history.set_index("epoch") if "epoch" in history else history
    rows = []
    for epoch, ref in REPORT_LOG.items():
        for q, v in ref.items():
            ours = float(hist.loc[epoch, q]) if epoch in hist.index and q in hist.columns else np.nan
            if np.isnan(ours):
                say = "not compared: this run logged no such epoch"
            else:
                d = ours - v
                say = f"{abs(d):.3f} {'higher' if d > 0 else 'lower'}" + (f" (in kind only: {scaled})" if scaled else "")
            rows.append({"epoch": epoch, "quantity": q, "report": v, "seed line": _LOG_LINES[epoch],
                         "protocol here": ours, "verdict": say})
    return pd.DataFrame(rows).set_index(["epoch", "quantity"])


def protocol_differences(
    *,
    size: int,
    width: int,
    params: int,
    epochs: int,
    epochs_run: int,
    best_epoch: int,
    bn_momentum: float,
    recalibrated: bool,
    f1_mean_without_recalibration: float | None,
    f1_mean: float,
    last_val_loss_drop: float | None,
) -> pd.DataFrame:
    """Every set-up item where the re-run of the report's protocol differs from the report, and why.

    Parameters
    ----------
    size, width, params, epochs : int
        The re-run's input side (px), MultiResUNet top width U, trainable parameters and epoch budget.
    epochs_run, best_epoch : int
        Epochs trained and the epoch whose weights were kept.
    bn_momentum : float
        PyTorch-convention batch-norm momentum of the re-run (Keras 0.99 is 0.01 here).
    recalibrated : bool
        Whether the batch-norm running statistics were re-estimated after training.
    f1_mean_without_recalibration, f1_mean : float
        Per-image mean F1 of the kept weights with the running statistics of training and as evaluated.
    last_val_loss_drop : float, optional
        Validation loss of the second-last minus the last epoch (positive: still falling when training stopped).

    Returns
    -------
    pandas.DataFrame
        Index ``item``; columns ``report``, ``this run``, ``why``, ``measured effect``.
    """
    rows = [
        ("masks", "Kaggle 'processed' copy, JPEG", "PNG `labels_original` of stage1_train (union of nuclei)",
         "the processed copy has no published checksum; the original labels do",
         "not measured (JPEG blurs mask edges; the soft target is resized either way)"),
        ("input side", "256 px", f"{size} px", "CPU budget: a step costs about the square of the side",
         "not measured here; the paper and gpu profiles run 256 px"),
        ("width", "U = 32 (7,244,774 parameters)", f"U = {width} ({params:,} parameters)",
         "CPU budget: a step costs about the square of the width", "not measured here; paper and gpu run U = 32"),
        ("epochs", "10", f"{epochs} (ran {epochs_run}, kept epoch {best_epoch})", "CPU budget",
         "validation loss still falling at the end, by "
         f"{last_val_loss_drop:.3f} in the last epoch" if last_val_loss_drop is not None and last_val_loss_drop > 0
         else "validation loss no longer falling at the end"),
    ]
    if recalibrated:
        eff = ("not measured" if f1_mean_without_recalibration is None else
               f"per-image F1 {f1_mean_without_recalibration:.3f} with the training statistics, {f1_mean:.3f} "
               "re-estimated")
        rows.append(("batch-norm statistics", "Keras momentum 0.99, statistics as left by training",
                     f"momentum {bn_momentum:g} (PyTorch convention), then re-estimated over the training images",
                     "after a short run Keras' slow momentum leaves the initial statistics in place", eff))
    elif bn_momentum != 0.01:
        rows.append(("batch-norm momentum", "0.99 (Keras)", f"{1 - bn_momentum:g} in Keras terms",
                     "a short run needs faster statistics", "not measured"))
    rows += [
        ("framework", "TensorFlow/Keras (GPU, float32)", "PyTorch (CPU, float32)",
         "the project's stack; initialisation (Glorot-uniform kernels, zero biases), batch-norm epsilon 1e-3 and "
         "Adam's epsilon 1e-7 are set to Keras' values", "not measured; summation order differs between libraries"),
    ]
    return pd.DataFrame(rows, columns=["item", "report", "this run", "why", "measured effect"]).set_index("item")
