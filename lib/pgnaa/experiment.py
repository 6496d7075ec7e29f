"""Glue for the PGNAA chapter: models by name, RSM training, accuracy-versus-counts curves, verdicts.

The protocol of Cheng et al.: every class has one (or, for NIST, several) full
measurements ("sources"); training and test samples are fresh RSM draws of ``k`` counts
from them. :func:`accuracy_vs_k` evaluates any set of classifiers on the same test
draws, with Wilson 95 % intervals, so the CNN can be put next to the likelihood limit;
:func:`compare_on_counts` and :func:`table2_rows` are the chapter's experiment loops,
:func:`plot_accuracy_curves` its accuracy-versus-counts plot, and :func:`ordering_text` (with
:func:`lib.core.verdict.tolerance` and :func:`lib.core.verdict.ratio`) turn the numbers into the prose's verdicts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

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
