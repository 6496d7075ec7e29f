"""Glue for the PGNAA chapter: models by name, RSM training, accuracy-versus-counts curves, verdicts.

The protocol of Cheng et al.: every class has one (or, for NIST, several) full
measurements ("sources"); training and test samples are fresh RSM draws of ``k`` counts
from them. :func:`accuracy_vs_k` evaluates any set of classifiers on the same test
draws, with Wilson 95 % intervals, so the CNN can be put next to the likelihood limit;
:func:`compare_on_counts` and :func:`table2_rows` are the chapter's experiment loops,
:func:`plot_accuracy_curves` its accuracy-versus-counts plot, and :func:`ordering_text` (with
:func:`lib.core.verdict.tolerance` and :func:`lib.core.verdict.ratio`) turn the numbers into the prose's verdicts.
The chapter's smaller pieces live here too (chapters define no functions): :func:`crop_bin`,
:func:`irv2_counts_model` and :func:`rsm_train_kwargs`, the classifier sets :func:`baseline_classifiers`,
:func:`linear_path_classifier` and :func:`mixture_classifiers`, :func:`class_cams`, :func:`live_time_axis`,
:func:`time_rsm_methods`, and Table II's :func:`plain_model_factory`, :func:`table2_with_paper` and
:data:`PAPER_TABLE2`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.core import repro, schedules, train
from lib.core.splits import Split, split_ids
from lib.pgnaa.inception_resnet1d import InceptionResNetV2_1D
from lib.pgnaa.linear_path import CountsClassifier
from lib.pgnaa.sampling import RSMBatch, normalise_counts, rsm1, rsm2, rsm3
from lib.pgnaa.small1d import GRUClassifier, ImageCNN2d, ResNet1d, SmallCNN1d, TransformerClassifier

if TYPE_CHECKING:
    from lib.pgnaa.bayes import MultinomialClassifier

__all__ = [
    "make_model",
    "n_parameters",
    "train_rsm",
    "predict_labels",
    "draw_test_set",
    "split_sources",
    "wilson_interval",
    "accuracy_vs_k",
    "counts_for_accuracy",
    "bin_channels",
    "cnn_classifier",
    "plot_accuracy_curves",
    "compare_on_counts",
    "table2_rows",
    "ordering_text",
    "crop_bin",
    "irv2_counts_model",
    "rsm_train_kwargs",
    "likelihood_classifier",
    "on_bins",
    "baseline_classifiers",
    "linear_path_classifier",
    "mixture_classifiers",
    "live_time_axis",
    "class_cams",
    "time_rsm_methods",
    "plain_model_factory",
    "PAPER_TABLE2",
    "table2_with_paper",
    "parse_paper_accuracy",
]


def n_parameters(model: nn.Module) -> int:
    """Number of trainable parameters (:func:`lib.core.train.count_parameters`)."""
    return train.count_parameters(model)


def make_model(name: str, n_classes: int, length: int, *, width: float = 0.125,
               repeats: tuple[int, int, int] = (1, 1, 1), channels: tuple[int, ...] = (16, 32, 64, 64),
               bin_factor: int | None = None, linear_path: bool = False) -> nn.Module:
    """Build a classifier by name.

    ``"irv2"`` (1D Inception-ResNet-V2, ``width``/``repeats``), ``"small_cnn"`` (``channels``),
    ``"resnet1d"`` (basic blocks (1,1,1,1), base width ``channels[0]``), ``"resnet101_1d"``
    (bottleneck (3,4,23,3), base width ``channels[0]``), ``"gru"``, ``"transformer"`` and
    ``"image2d"`` (for RSM-4 images).

    Parameters
    ----------
    length : int
        Input length the network sees: channels after binning when ``bin_factor`` is None,
        otherwise the full-resolution channel count.
    bin_factor : int, optional
        Wrap a 1D network in :class:`lib.pgnaa.linear_path.CountsClassifier`: it takes raw
        counts of ``length`` channels, its trunk sees them summed in bins of ``bin_factor``
        (square-rooted and scaled), and ``linear_path`` adds a linear layer on the raw counts.
    linear_path : bool
        See ``bin_factor`` (ignored without it).
    """
    if bin_factor is not None and name != "image2d":
        trunk = make_model(name, n_classes, length // bin_factor, width=width, repeats=repeats, channels=channels)
        return CountsClassifier(trunk, n_classes, length, bin_factor=bin_factor, linear_path=linear_path)
    if name == "irv2":
        return InceptionResNetV2_1D(n_classes, width=width, repeats=tuple(repeats))
    if name == "small_cnn":
        return SmallCNN1d(n_classes, channels=tuple(channels))
    if name == "resnet1d":
        return ResNet1d(n_classes, layers=(1, 1, 1, 1), base_width=channels[0])
    if name == "resnet101_1d":
        return ResNet1d(n_classes, layers=(3, 4, 23, 3), base_width=channels[0], bottleneck=True)
    if name == "gru":
        return GRUClassifier(n_classes, hidden=channels[-1], stride=8)
    if name == "transformer":
        patch = 16
        return TransformerClassifier(n_classes, length=length - length % patch, patch=patch, d_model=channels[-1],
                                     n_heads=4, n_layers=2, dim_feedforward=2 * channels[-1])
    if name == "image2d":
        return ImageCNN2d(n_classes, channels=tuple(channels[:3]))
    raise ValueError(f"unknown model {name!r}")


def _crop_for(model: nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    if isinstance(model, TransformerClassifier):
        return lambda x: x[..., : model.length]
    if isinstance(model, CountsClassifier) and isinstance(model.trunk, TransformerClassifier):
        keep = model.trunk.length * model.bin_factor
        return lambda x: torch.cat([x[..., :keep], torch.zeros_like(x[..., keep:])], -1)
    return lambda x: x


def train_rsm(model: nn.Module, sources: torch.Tensor, source_labels: torch.Tensor, *, k: int | tuple[int, int],
              method: str = "rsm3", epochs: int = 5, steps_per_epoch: int = 20, batch_size: int = 64,
              lr: float = 1e-3, lr_linear: float | None = None, aux_linear: float = 1.0, schedule: bool = True,
              seed: int = 0, device="auto", image_size: tuple[int, int] = (64, 256)) -> tuple[train.FitResult, float]:
    """Train ``model`` on fresh RSM draws from ``sources`` (a new sample every step).

    Each epoch is ``steps_per_epoch`` batches; sources are visited in a seeded shuffled
    order, and every visit draws a new RSM sample of ``k`` counts (fixed, or log-uniform in
    the ``k`` range: per sample for RSM-3). Networks with ``takes_counts`` (such as
    :class:`~lib.pgnaa.linear_path.CountsClassifier`) get raw counts, others
    :func:`~lib.pgnaa.sampling.normalise_counts`. Adam; with ``schedule`` the learning
    rate follows a linear warm-up epoch and a cosine decay to 2 % at the last epoch
    (:class:`lib.core.schedules.LRSchedule` ``"warmup_cosine"``, stepped per epoch), and a linear path gets its own rate
    ``lr_linear`` (default ``lr``) and, with weight ``aux_linear``, an auxiliary
    cross-entropy on its own logits. The best epoch by training loss (on fresh draws, hence
    an unbiased estimate) is kept.

    Returns
    -------
    (FitResult, seconds)
    """
    if sources.shape[0] != source_labels.shape[0]:
        raise ValueError(f"{sources.shape[0]} sources but {source_labels.shape[0]} labels")
    src_idx = torch.arange(steps_per_epoch * batch_size) % sources.shape[0]
    loader = train.array_loader(src_idx, source_labels[src_idx].long(), batch_size=batch_size, shuffle=True,
                                seed=seed)
    takes_counts = bool(getattr(model, "takes_counts", False))
    tf = RSMBatch(sources, k, method=method, seed=repro.derive_seed(seed, "rsm_draws"), image_size=image_size,
                  output="counts" if takes_counts else "normalised")
    crop = _crop_for(model)

    def transform(x, y):
        xx, yy = tf(x, y)
        return crop(xx), yy

    def acc(out, y):
        return float((out.argmax(1) == y).float().mean())

    lin = getattr(model, "linear", None)
    if lin is not None:
        lin_ids = {id(p) for p in lin.parameters()}
        groups = [{"params": [p for p in model.parameters() if id(p) not in lin_ids], "lr": lr},
                  {"params": list(lin.parameters()), "lr": lr if lr_linear is None else lr_linear}]
    else:
        groups = [{"params": list(model.parameters()), "lr": lr}]
    opt = torch.optim.Adam(groups)
    sched = schedules.LRSchedule(opt, "warmup_cosine", total=epochs, warmup=1, final=0.02) if schedule else None
    t0 = time.perf_counter()
    def loss_fn(out, y):
        loss = nn.functional.cross_entropy(out, y)
        aux = getattr(model, "last_linear_logits", None)
        if aux is not None and aux_linear > 0:
            loss = loss + aux_linear * nn.functional.cross_entropy(aux, y)
        return loss

    res = train.fit(model, loader, loss_fn=loss_fn, epochs=epochs, optimizer=opt,
                    scheduler=sched, metrics={"acc": acc}, batch_transform=transform, monitor="loss", device=device,
                    progress=False)
    return res, time.perf_counter() - t0


@torch.no_grad()
def predict_labels(model: nn.Module, x: torch.Tensor, *, batch_size: int = 256, device="auto") -> np.ndarray:
    """Predicted class per row of network inputs ``x`` (batch, 1, L) (or images)."""
    from lib.core.repro import resolve_device

    dev = resolve_device(device)
    model.to(dev).eval()
    crop = _crop_for(model)
    out = [model(crop(x[s : s + batch_size].to(dev))).argmax(1).cpu() for s in range(0, x.shape[0], batch_size)]
    return torch.cat(out).numpy()


def draw_test_set(sources: torch.Tensor, source_labels: torch.Tensor, k: int, n_per_source: int, *,
                  generator: torch.Generator, method: str = "rsm3") -> tuple[torch.Tensor, np.ndarray]:
    """``n_per_source`` RSM draws of ``k`` counts from every source: (counts (B, N), labels (B,))."""
    idx = torch.arange(sources.shape[0]).repeat_interleave(n_per_source)
    rows = sources[idx].to(torch.float64)
    fn = {"rsm1": rsm1, "rsm2": rsm2, "rsm3": rsm3}[method]
    return fn(rows, k, generator=generator), source_labels[idx].numpy()


def split_sources(counts, labels, *, seed: int,
                  test_fraction: float = 0.3) -> tuple[Split, dict[str, tuple[torch.Tensor, torch.Tensor]]]:
    """Split full measurements by spectrum into training and held-out test sources.

    For every class about ``test_fraction`` of its spectra (at least one, while the class has two or
    more; never its last) are held out, drawn with ``numpy.random.default_rng(seed)`` by
    :func:`lib.core.splits.split_ids` (stratified by class, parts in spectrum order). Test samples
    must be drawn from the ``"test"`` sources only; the two parts share no spectrum.

    Parameters
    ----------
    counts : array_like, shape (n_spectra, n_channels)
        Full measurements (counts).
    labels : array_like of int, shape (n_spectra,)
        Class of each spectrum.
    seed : int
    test_fraction : float

    Returns
    -------
    split : lib.core.splits.Split
        Parts ``"train"`` and ``"test"`` of spectrum indices (``split.index``).
    parts : dict
        ``{"train": (sources, labels), "test": (sources, labels)}``: float64 sources ``(n, n_channels)``
        and int64 labels ``(n,)`` tensors.
    """
    c = np.asarray(counts)
    y = np.asarray(labels)
    if c.ndim != 2 or y.shape != (c.shape[0],):
        raise ValueError(f"need counts (n_spectra, n_channels) and one label per spectrum, got {c.shape} and {y.shape}")
    split = split_ids(np.arange(len(y)), fractions=(test_fraction,), names=("train", "test"), seed=seed,
                      stratify=y, sort=True)
    parts = {name: (torch.as_tensor(c[idx], dtype=torch.float64), torch.as_tensor(y[idx], dtype=torch.int64))
             for name, idx in split.index.items()}
    return split, parts


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion."""
    if n <= 0:
        return (float("nan"), float("nan"))
    p = successes / n
    d = 1 + z**2 / n
    c = (p + z**2 / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def accuracy_vs_k(k_grid, sources: torch.Tensor, source_labels: torch.Tensor, n_per_source: int,
                  classifiers: dict[str, Callable[[torch.Tensor], np.ndarray]], *, seed: int = 0) -> pd.DataFrame:
    """Accuracy of every classifier on the same RSM-3 test draws at each ``k``.

    Parameters
    ----------
    k_grid : iterable of int
    sources, source_labels : torch.Tensor
        Test sources (full measurements) and their classes.
    n_per_source : int
    classifiers : dict name -> fn(counts (B, N) float tensor) -> predicted labels (B,)
    seed : int

    Returns
    -------
    pandas.DataFrame
        Columns ``k, method, accuracy, low, high, n, seconds`` (Wilson 95 % interval,
        prediction time for all ``n`` samples).
    """
    g = torch.Generator().manual_seed(seed)
    rows = []
    for k in k_grid:
        x, y = draw_test_set(sources, source_labels, int(k), n_per_source, generator=g)
        for name, fn in classifiers.items():
            t0 = time.perf_counter()
            pred = np.asarray(fn(x))
            dt = time.perf_counter() - t0
            s = int((pred == y).sum())
            lo, hi = wilson_interval(s, len(y))
            rows.append({"k": int(k), "method": name, "accuracy": s / len(y), "low": lo, "high": hi, "n": len(y),
                         "seconds": dt})
    return pd.DataFrame(rows)


def counts_for_accuracy(df: pd.DataFrame, target: float = 0.95) -> pd.Series:
    """Smallest ``k`` (log-linear interpolation) at which each method's accuracy reaches ``target``.

    NaN if never reached on the grid; the first grid point if already reached there.
    """
    out = {}
    for name, d in df.sort_values("k").groupby("method"):
        k, a = d.k.to_numpy(float), d.accuracy.to_numpy(float)
        hit = np.flatnonzero(a >= target)
        if hit.size == 0:
            out[name] = float("nan")
        elif hit[0] == 0:
            out[name] = k[0]
        else:
            i = hit[0]
            t = (target - a[i - 1]) / (a[i] - a[i - 1])
            out[name] = float(np.exp(np.log(k[i - 1]) + t * (np.log(k[i]) - np.log(k[i - 1]))))
    return pd.Series(out, name=f"k_for_{target:.2f}")


def bin_channels(x: np.ndarray | torch.Tensor, factor: int):
    """Sum ``factor`` adjacent channels along the last axis (the remainder is dropped)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    n = x.shape[-1] // factor * factor
    y = x[..., :n]
    return y.reshape(*y.shape[:-1], n // factor, factor).sum(-1)


def cnn_classifier(model: nn.Module, *, device="auto", batch_size: int = 256) -> Callable[[torch.Tensor], np.ndarray]:
    """Wrap a trained network as ``fn(counts (B, N)) -> labels`` (normalising the counts like training)."""
    if getattr(model, "takes_counts", False):
        return lambda c: predict_labels(model, c.to(torch.float32), batch_size=batch_size, device=device)
    return lambda c: predict_labels(model, normalise_counts(c.to(torch.float32)), batch_size=batch_size,
                                    device=device)



def plot_accuracy_curves(ax, curve: pd.DataFrame, styles: dict[str, tuple[str, str]], *,
                         k95: pd.Series | None = None, target: float = 0.95) -> None:
    """Accuracy against counts per method with Wilson bands; optionally mark each method's counts for ``target``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
    curve : pandas.DataFrame
        Output of :func:`accuracy_vs_k` (``k, method, accuracy, low, high``).
    styles : dict method -> (colour, matplotlib format string)
        Methods without a style are drawn in grey.
    k95 : pandas.Series, optional
        Counts for ``target`` per method (:func:`counts_for_accuracy`); drawn as a vertical
        dashed line in the method's colour where finite.
    """
    for name, d in curve.groupby("method", sort=False):
        c, st = styles.get(name, ("0.6", ".-"))
        d = d.sort_values("k")
        ax.plot(d.k, d.accuracy, st, color=c, label=name, ms=4)
        ax.fill_between(d.k, d.low, d.high, color=c, alpha=0.15, lw=0)
        if k95 is not None and name in k95 and np.isfinite(k95[name]):
            ax.axvline(k95[name], color=c, ls="--", lw=0.8)
            ax.plot([k95[name]], [target], "x", color=c, ms=7)
    from matplotlib.ticker import NullFormatter

    ax.axhline(target, color="0.7", ls=":")
    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("counts per spectrum k")
    ax.set_ylim(0, 1.02)


def compare_on_counts(sources: torch.Tensor, source_labels: torch.Tensor, k_grid, n_per_source: int, *,
                      model: nn.Module | None, train_kwargs: dict, bin_factor: int, seed: int = 0,
                      device="auto", name: str = "CNN (IRv2-1D)") -> tuple[pd.DataFrame, dict, float]:
    """Train ``model`` on RSM draws of ``sources`` (if given) and compare it with the limit and templates.

    The classifiers: the multinomial likelihood on the full-resolution channels (the
    limit), NCC and chi-square template matching on bins of ``bin_factor`` channels, and
    the trained network (taking raw counts, see :func:`make_model` with ``bin_factor``).
    All are evaluated by :func:`accuracy_vs_k` on the same fresh RSM-3 test draws.

    Parameters
    ----------
    sources : torch.Tensor, shape (n_sources, n_channels)
        Full measurements (counts) at full resolution.
    source_labels : torch.Tensor, shape (n_sources,)
    k_grid : iterable of int
    n_per_source : int
        Test draws per source and count level.
    model : torch.nn.Module or None
        Untrained network (None: baselines only).
    train_kwargs : dict
        Passed to :func:`train_rsm` (``k``, ``epochs``, ``steps_per_epoch``, ...).
    bin_factor : int
        Template-matching bins.

    Returns
    -------
    (curve, classifiers, training seconds)
        ``classifiers`` maps names to ``fn(counts) -> labels``; seconds is 0 without a model.
    """
    from lib.pgnaa.bayes import MultinomialClassifier, chi2_scores, ncc_scores

    binned = bin_channels(sources, bin_factor)
    lik = MultinomialClassifier(sources)
    clfs: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
        "likelihood (0.7 keV channels)": lambda c: lik.predict(c).numpy(),
        "NCC": lambda c: ncc_scores(bin_channels(c, bin_factor), binned).argmax(1).numpy(),
        "chi-square": lambda c: chi2_scores(bin_channels(c, bin_factor), binned).argmax(1).numpy(),
    }
    seconds = 0.0
    if model is not None:
        torch.manual_seed(seed)
        res, seconds = train_rsm(model, sources, source_labels, seed=seed, device=device, **train_kwargs)
        clfs[name] = cnn_classifier(res.model, device=device)
    curve = accuracy_vs_k(sorted(set(int(k) for k in k_grid)), sources, source_labels, n_per_source, clfs,
                          seed=repro.derive_seed(seed, "test_draws"))
    return curve, clfs, seconds


def table2_rows(combos: list[str], sources: torch.Tensor, source_labels: torch.Tensor, k: int, n_per_source: int,
                *, make: Callable[[str], nn.Module], train_kwargs: dict, bin_factor: int, seed: int = 0,
                device="auto", image_size: tuple[int, int] = (64, 256)) -> pd.DataFrame:
    """Train every ``"model+rsmN"`` combination at ``k`` counts and test it on the same RSM-3 draws.

    Parameters
    ----------
    combos : list of str
        E.g. ``["small_cnn+rsm3", "image2d+rsm4"]``.
    sources, source_labels : torch.Tensor
        Full-resolution full measurements and classes.
    make : callable name -> untrained model
        Networks taking binned, normalised input (or RSM-4 images for ``image2d``).
    train_kwargs : dict
        Passed to :func:`train_rsm` (``epochs``, ``steps_per_epoch``, ``batch_size``, ``lr``).
    bin_factor : int
        Channels summed per network input bin.

    Returns
    -------
    pandas.DataFrame
        One row per combination: ``combination, accuracy, low, high, n, train_s, params``;
        plus one row ``likelihood limit`` (0.7 keV channels, no training).
    """
    from lib.pgnaa.bayes import MultinomialClassifier
    from lib.pgnaa.sampling import rsm4

    g = torch.Generator().manual_seed(repro.derive_seed(seed, "discard_test_draws"))
    x, y = draw_test_set(sources, source_labels, k, n_per_source, generator=g)
    xb = bin_channels(x, bin_factor)
    binned = bin_channels(sources, bin_factor)
    rows = []
    pred = MultinomialClassifier(sources).predict(x).numpy()
    s = int((pred == y).sum())
    rows.append({"combination": "likelihood limit", "accuracy": s / len(y),
                 **dict(zip(("low", "high"), wilson_interval(s, len(y)))), "n": len(y), "train_s": 0.0, "params": 0})
    for combo in combos:
        if combo.count("+") != 1:
            raise ValueError(f"Table II entries look like 'model+rsmN', got {combo!r}")
        arch, meth = combo.split("+")
        m = make(arch)
        torch.manual_seed(seed)
        r, ts = train_rsm(m, binned, source_labels, k=k, method=meth, seed=seed, device=device,
                          image_size=image_size, **train_kwargs)
        if meth == "rsm4":  # the same test counts rendered as images (RSM-1 of the exact k-count sample)
            xin = rsm4(xb, k, height=image_size[0], width=image_size[1], generator=g)
        else:
            xin = normalise_counts(xb.to(torch.float32))
        s = int((predict_labels(r.model, xin, device=device) == y).sum())
        rows.append({"combination": combo, "accuracy": s / len(y),
                     **dict(zip(("low", "high"), wilson_interval(s, len(y)))), "n": len(y), "train_s": ts,
                     "params": n_parameters(r.model)})
    return pd.DataFrame(rows)


def ordering_text(ours: pd.Series, paper: pd.Series) -> str:
    """Compare the ranking of combinations by our accuracy with the paper's (both indexed by combination).

    Ties within our Wilson intervals are not resolved here; the sentence names the
    order of the point estimates and the pairs whose order is reversed.
    """
    common = [c for c in ours.index if c in paper.index and np.isfinite(paper[c])]
    if len(common) < 2:
        return "fewer than two combinations have a paper accuracy to compare the ordering with"
    o = sorted(common, key=lambda c: -ours[c])
    flips = [(a, b) for i, a in enumerate(common) for b in common[i + 1:]
             if (ours[a] - ours[b]) * (paper[a] - paper[b]) < 0]
    order = " > ".join(o)
    if not flips:
        return f"our order ({order}) agrees with the paper's"
    pairs = "; ".join(f"{a} {'above' if ours[a] > ours[b] else 'below'} {b} ({ours[a]:.3f} vs {ours[b]:.3f}, "
                      f"paper {paper[a]:.2f} vs {paper[b]:.2f})" for a, b in flips)
    return f"our order ({order}) differs from the paper's in {len(flips)} pair(s): {pairs}"


# --- the chapter's helpers: cropping, model and training options, classifier sets, CAMs, Table II -------------


def crop_bin(x: np.ndarray | torch.Tensor, *, lo: int, hi: int, factor: int) -> np.ndarray | torch.Tensor:
    """Keep channels ``lo:hi`` along the last axis and sum them in bins of ``factor`` channels.

    ``bin_channels(x[..., lo:hi], factor)``: the network's input range (the paper keeps channels
    104-7999) in the trunk's bins; a remainder of fewer than ``factor`` channels is dropped.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor, shape (..., n_channels)
        Counts (or per-channel values such as energies in keV) per channel.
    lo, hi : int
        First kept channel and one past the last (Python slice bounds).
    factor : int
        Channels summed per bin (>= 1).

    Returns
    -------
    numpy.ndarray or torch.Tensor, shape (..., (hi - lo) // factor)
        Same type as ``x``; sums per bin (for energies divide by ``factor`` for bin centres).
    """
    return bin_channels(x[..., lo:hi], factor)


def irv2_counts_model(n_classes: int, length: int, *, bin_factor: int, width: float, repeats: tuple[int, int, int],
                      linear_path: bool) -> nn.Module:
    """The chapter's network: a 1D Inception-ResNet-V2 that takes raw counts of ``length`` channels.

    :func:`make_model` ``("irv2", ..., bin_factor=bin_factor)``: a
    :class:`~lib.pgnaa.linear_path.CountsClassifier` whose trunk sees the counts summed in bins of
    ``bin_factor`` channels (square-rooted and scaled), plus a linear path on the full-resolution
    counts when ``linear_path``.

    Parameters
    ----------
    n_classes : int
    length : int
        Full-resolution channels of the input counts, shape (batch, length).
    bin_factor : int
        Channels per trunk input bin.
    width : float
        Channel multiplier of the Inception-ResNet-V2 (1.0: the paper's).
    repeats : sequence of 3 int
        Block35/Block17/Block8 repeats (the paper's: 10, 20, 9).
    linear_path : bool
        Add the linear layer on ``n / sqrt(k)``.

    Returns
    -------
    torch.nn.Module
        Untrained; logits of shape (batch, n_classes).
    """
    return make_model("irv2", n_classes, length, width=width, repeats=tuple(repeats), bin_factor=bin_factor,
                      linear_path=linear_path)


def rsm_train_kwargs(epochs: int, k: int | tuple[int, int], *, steps_per_epoch: int, batch_size: int, lr: float,
                     lr_linear: float | None) -> dict:
    """Keyword arguments of :func:`train_rsm` for ``epochs`` epochs on draws of ``k`` counts.

    Parameters
    ----------
    epochs : int
    k : int or (int, int)
        Counts per training sample, fixed or a log-uniform range.
    steps_per_epoch, batch_size : int
    lr, lr_linear : float
        Adam learning rates of the network and of its linear path (None: ``lr``).

    Returns
    -------
    dict
        ``k, epochs, steps_per_epoch, batch_size, lr, lr_linear``.
    """
    return dict(k=k, epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
                lr_linear=lr_linear)


def likelihood_classifier(classifier: MultinomialClassifier) -> Callable[[torch.Tensor], np.ndarray]:
    """Wrap a fitted :class:`~lib.pgnaa.bayes.MultinomialClassifier` as ``fn(counts (B, N)) -> labels (B,)``."""
    return lambda c: classifier.predict(c).numpy()


def on_bins(fn: Callable[[torch.Tensor], np.ndarray], *, bin_factor: int) -> Callable[[torch.Tensor], np.ndarray]:
    """``fn`` applied to counts summed in bins of ``bin_factor`` channels: ``c (B, N) -> fn(c (B, N // f))``."""
    return lambda c: fn(bin_channels(c, bin_factor))


def baseline_classifiers(likelihood_full: MultinomialClassifier, likelihood_binned: MultinomialClassifier,
                         binned_templates: torch.Tensor, *,
                         bin_factor: int) -> dict[str, Callable[[torch.Tensor], np.ndarray]]:
    """Experiment I's classifiers besides the network, each ``fn(counts (B, N)) -> labels (B,)``.

    Parameters
    ----------
    likelihood_full : lib.pgnaa.bayes.MultinomialClassifier
        Fitted on the full-resolution sources (N channels of 0.705 keV): the limit.
    likelihood_binned : lib.pgnaa.bayes.MultinomialClassifier
        Fitted on the sources in bins of ``bin_factor`` channels (the trunk's input).
    binned_templates : torch.Tensor, shape (n_classes, N // bin_factor)
        Binned full measurements, the NCC and chi-square templates.
    bin_factor : int
        The counts (B, N) are summed in bins of this many channels before all but the first classifier.

    Returns
    -------
    dict
        In this order: ``"likelihood (0.7 keV channels)"``, ``"likelihood (network bins)"``, ``"NCC"``,
        ``"chi-square"``.
    """
    from lib.pgnaa.bayes import chi2_scores, ncc_scores

    return {
        "likelihood (0.7 keV channels)": likelihood_classifier(likelihood_full),
        "likelihood (network bins)": on_bins(likelihood_classifier(likelihood_binned), bin_factor=bin_factor),
        "NCC": on_bins(lambda c: ncc_scores(c, binned_templates).argmax(1).numpy(), bin_factor=bin_factor),
        "chi-square": on_bins(lambda c: chi2_scores(c, binned_templates).argmax(1).numpy(), bin_factor=bin_factor),
    }


def linear_path_classifier(model: nn.Module, *, device) -> Callable[[torch.Tensor], np.ndarray]:
    """The linear path of a :class:`~lib.pgnaa.linear_path.CountsClassifier` on its own, as a classifier.

    Returns ``fn(counts (B, N)) -> labels (B,)``: argmax of ``model.linear_logits`` (the model is put in
    eval mode on every call; no gradients).
    """

    @torch.no_grad()
    def predict(c: torch.Tensor) -> np.ndarray:
        return model.eval().linear_logits(c.float().to(device)).argmax(1).cpu().numpy()

    return predict


def mixture_classifiers(train_sources: torch.Tensor, train_labels: torch.Tensor, mean_templates: np.ndarray, *,
                        n_classes: int) -> dict[str, Callable[[torch.Tensor], np.ndarray]]:
    """The NIST section's classifiers besides the network, each ``fn(counts (B, N)) -> labels (B,)``.

    Parameters
    ----------
    train_sources : torch.Tensor, shape (n_train, N)
        Training spectra (counts on the common energy grid).
    train_labels : torch.Tensor of int, shape (n_train,)
    mean_templates : numpy.ndarray, shape (n_classes, N)
        Summed training spectra per class.
    n_classes : int

    Returns
    -------
    dict
        In this order: ``"likelihood (mixture of training spectra)"`` (each class an equal mixture of its
        training spectra), ``"likelihood (class-mean template)"`` (the multinomial classifier is fitted on
        every call, so its time is in the curve's ``seconds``), ``"NCC"``, ``"chi-square"``.
    """
    from lib.pgnaa.bayes import MultinomialClassifier, chi2_scores, mixture_log_likelihood, ncc_scores

    return {
        "likelihood (mixture of training spectra)":
            lambda c: mixture_log_likelihood(c, train_sources, train_labels, n_classes).argmax(1).numpy(),
        "likelihood (class-mean template)": lambda c: MultinomialClassifier(mean_templates).predict(c).numpy(),
        "NCC": lambda c: ncc_scores(c, mean_templates).argmax(1).numpy(),
        "chi-square": lambda c: chi2_scores(c, mean_templates).argmax(1).numpy(),
    }


def live_time_axis(ax, rate_cps: float, *, location: str = "top"):
    """A secondary x axis in live time (s) for an axis in counts: ``t = k / rate_cps``.

    Parameters
    ----------
    ax : matplotlib.axes.Axes
        Its x axis is counts per spectrum ``k``.
    rate_cps : float
        Count rate (counts per second).
    location : str
        ``"top"`` or ``"bottom"``.

    Returns
    -------
    matplotlib secondary axis (unlabelled)
    """
    return ax.secondary_xaxis(location, functions=(lambda k: k / rate_cps, lambda t: t * rate_cps))


def class_cams(model: nn.Module, x_counts: torch.Tensor, y, *, device) -> np.ndarray:
    """Mean class activation map of a counts network's trunk per class, over correctly classified spectra.

    Parameters
    ----------
    model : lib.pgnaa.linear_path.CountsClassifier
        Trained; its trunk ends in global average pooling and a linear layer.
    x_counts : torch.Tensor, shape (B, N)
        Raw counts.
    y : array_like of int, shape (B,)
        True classes.
    device : str or torch.device

    Returns
    -------
    numpy.ndarray, shape (max(y) + 1, N // bin_factor)
        Per class the mean CAM of the true class (logit contribution per trunk input bin) over the spectra
        the model classifies correctly; NaN rows for classes with none.
    """
    from lib.pgnaa.cam import class_mean_cam, model_cam

    model.eval()
    with torch.no_grad():
        xc = x_counts.to(torch.float32)
        pred = torch.as_tensor(predict_labels(model, xc, device=device))
        xin = model.to(device).trunk_input(xc.to(device))
        cams = model_cam(model.trunk, xin, classes=torch.as_tensor(y).to(device)).cpu()
    ok = pred == torch.as_tensor(y)
    return class_mean_cam(cams, torch.as_tensor(y), int(max(y)) + 1, mask=ok).numpy()


def time_rsm_methods(sources: torch.Tensor, k: int, *, generator: torch.Generator, n_spectra: int = 128,
                     image_size: tuple[int, int] = (64, 256)) -> dict[str, float]:
    """Wall time of RSM-1 to RSM-4 on the same batch of ``n_spectra`` rows cycled from ``sources``.

    The methods run in the order rsm1, rsm2, rsm3, rsm4, all drawing from ``generator`` (which advances).

    Parameters
    ----------
    sources : torch.Tensor, shape (n_sources, N)
        Full measurements (counts).
    k : int
        Counts per draw.
    generator : torch.Generator
    n_spectra : int
        Batch size (rows ``arange(n_spectra) % n_sources``).
    image_size : (int, int)
        Height and width of the RSM-4 images.

    Returns
    -------
    dict
        ``{"rsm1": s, "rsm2": s, "rsm3": s, "rsm4": s}``, seconds for the batch (including the row selection).
    """
    from lib.pgnaa.sampling import rsm4

    idx = torch.arange(n_spectra) % sources.shape[0]
    h, w = image_size
    methods = [("rsm1", lambda s: rsm1(s, k, generator=generator)), ("rsm2", lambda s: rsm2(s, k, generator=generator)),
               ("rsm3", lambda s: rsm3(s, k, generator=generator)),
               ("rsm4", lambda s: rsm4(s, k, height=h, width=w, generator=generator))]
    seconds = {}
    for meth, fn in methods:
        t0 = time.perf_counter()
        fn(sources[idx])
        seconds[meth] = time.perf_counter() - t0
    return seconds


def plain_model_factory(n_classes: int, length: int, *, width: float,
                        repeats: tuple[int, int, int]) -> Callable[[str], nn.Module]:
    """``make(arch) -> untrained model`` for :func:`table2_rows`: the paper's networks as they are.

    Binned, normalised input of ``length`` bins, no linear path: ``make_model(arch, n_classes, length,
    width=width, repeats=repeats)``.
    """
    return lambda arch: make_model(arch, n_classes, length, width=width, repeats=tuple(repeats))


PAPER_TABLE2: dict[str, tuple[str, str, float]] = {
    "resnet1d+rsm1": ("ResNet-101 + RSM-1", "≈ 65%", 0.012),
    "small_cnn+rsm3": ("custom 1D + RSM-3", "≈ 65%", 0.073),
    "resnet1d+rsm2": ("ResNet-101 1D + RSM-2", "-", 1.488),
    "resnet1d+rsm3": ("ResNet-101 1D + RSM-3", "≈ 80%", 0.073),
    "irv2+rsm2": ("Inception-ResNet-V2 + RSM-2", "-", 1.488),
    "irv2+rsm3": ("Inception-ResNet-V2 + RSM-3", "≈ 90%", 0.073),
    "image2d+rsm4": ("NASNet/PNASNet + RSM-4a", "< 80%", 0.696),
    "gru+rsm3": ("RNN custom + RSM-3", "< 40%", 0.073),
    "transformer+rsm3": ("Transformer custom + RSM-3", "≈ 90%", 0.073),
}
"""Cheng et al.'s Table II per ``"model+rsmN"`` combination: (the paper's row, its accuracy as printed,
its sampling time in s)."""


def table2_with_paper(t2: pd.DataFrame, sampling_seconds: dict[str, float], *,
                      paper: dict[str, tuple[str, str, float]] | None = None) -> pd.DataFrame:
    """Table II with the paper's columns beside ours.

    Parameters
    ----------
    t2 : pandas.DataFrame
        Output of :func:`table2_rows` (column ``combination``).
    sampling_seconds : dict
        Seconds per RSM method (:func:`time_rsm_methods`), matched on the part after ``+``.
    paper : dict, optional
        Default :data:`PAPER_TABLE2`.

    Returns
    -------
    pandas.DataFrame
        A copy of ``t2`` with the columns ``paper row`` (``"-"`` where the paper has none), ``paper accuracy``
        (text as printed, ``"-"`` where none), ``paper sampling s`` and ``sampling s (128 spectra)``
        (NaN where none).
    """
    paper = PAPER_TABLE2 if paper is None else paper
    out = t2.copy()
    out["paper row"] = out.combination.map(lambda c: paper.get(c, ("-",))[0])
    out["paper accuracy"] = out.combination.map(lambda c: paper.get(c, ("", "-"))[1])
    out["paper sampling s"] = out.combination.map(lambda c: paper.get(c, ("", "", np.nan))[2])
    out["sampling s (128 spectra)"] = out.combination.map(lambda c: sampling_seconds.get(c.split("+")[-1], np.nan))
    return out


def parse_paper_accuracy(text: str) -> float:
    """The paper's printed accuracy as a fraction: ``"≈ 65%"`` -> 0.65, ``"< 80%"`` -> 0.8, ``"-"`` -> NaN."""
    return float(text.strip("≈<% ")) / 100 if any(ch.isdigit() for ch in text) else np.nan
