"""Random Sampling Methods (RSM-1..4): short measurements drawn from a long one.

A long ("full") measurement with channel counts ``c`` (total ``T``) is treated either as
a finite event list (RSM-1, RSM-2) or as a probability distribution ``p = c / T`` (RSM-3).
All functions are batched over the leading axis, run on the device of their input and
take an explicit :class:`torch.Generator` on that device.

- **RSM-1** :func:`rsm1_events` — draw ``k`` events from the event list *without*
  replacement (multivariate hypergeometric); :func:`rsm1` returns their histogram.
- **RSM-2** :func:`rsm2` — binomial thinning of every channel with probability ``k / T``
  (the total is ``k`` only on average).
- **RSM-3** :func:`rsm3` — a multinomial draw of exactly ``k`` counts from ``p`` (NumPy's
  sampler on the CPU; on a GPU :func:`rsm3_tree`, recursive binomial splitting over a
  binary tree of channels, ``O(batch * channels)`` and independent of ``k``).
- **RSM-4** :func:`rsm4` — the RSM-1 histogram rendered as a 2D scatter/histogram image.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "rsm1_events", "rsm1", "rsm2", "rsm3", "rsm3_tree", "rsm3_categorical", "rsm4", "histogram", "normalise_counts",
    "RSMBatch",
]


def _as_batch(counts: torch.Tensor) -> tuple[torch.Tensor, bool]:
    if not isinstance(counts, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor of counts, got {type(counts).__name__}")
    if counts.ndim == 1:
        return counts[None], True
    if counts.ndim != 2:
        raise ValueError(f"counts must have shape (n_channels,) or (batch, n_channels), got {tuple(counts.shape)}")
    return counts, False


def _check_k(k: int) -> int:
    if isinstance(k, bool) or int(k) != k or k < 0:
        raise ValueError(f"k (number of counts to draw) must be a non-negative integer, got {k!r}")
    return int(k)


def histogram(events: torch.Tensor, n_channels: int) -> torch.Tensor:
    """Histogram of channel indices per row: (batch, k) int64 -> (batch, n_channels) float32."""
    b = events.shape[0]
    offs = (torch.arange(b, device=events.device) * n_channels)[:, None]
    flat = torch.bincount((events + offs).reshape(-1), minlength=b * n_channels)
    return flat.reshape(b, n_channels).to(torch.float32)


def rsm1_events(counts: torch.Tensor, k: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSM-1: draw ``k`` events without replacement from each row's event list.

    The event list of a spectrum is the multiset in which channel ``i`` occurs ``c_i``
    times (total ``T``); it is never materialised. ``k`` distinct event positions in
    ``[0, T)`` are drawn (duplicates are redrawn), then mapped to channels.

    Parameters
    ----------
    counts : torch.Tensor, shape (n_channels,) or (batch, n_channels)
        Integer counts of the full measurement(s).
    k : int
        Events per sample; must not exceed any row's total.
    generator : torch.Generator, optional
        On ``counts.device``.

    Returns
    -------
    torch.Tensor, shape (batch, k) or (k,), int64
        Channel index of every drawn event, in increasing event-position order.
    """
    k = _check_k(k)
    c, single = _as_batch(counts)
    c = c.to(torch.float64)
    if torch.any(c != torch.round(c)) or torch.any(c < 0):
        raise ValueError("RSM-1 needs integer, non-negative counts (an event list); use rsm3 for a distribution")
    totals = c.sum(dim=1)
    if torch.any(totals < k):
        raise ValueError(
            f"k={k} exceeds the total counts of a spectrum (min total {int(totals.min())}); sampling without "
            "replacement cannot draw more events than were measured"
        )
    b = c.shape[0]
    dev = c.device
    cum = torch.cumsum(c, dim=1)
    if 2 * k > float(totals.min()):
        # dense case: rejection would stall; take the first k of a random permutation per row
        pos = torch.stack([torch.randperm(int(t), generator=generator, device=dev)[:k] for t in totals.tolist()])
        ev = torch.searchsorted(cum.contiguous(), torch.sort(pos, dim=1)[0].to(torch.float64).contiguous(), right=True)
        return ev[0] if single else ev
    tot = totals.to(torch.int64)[:, None]
    pos = (torch.rand((b, k), generator=generator, device=dev, dtype=torch.float64) * tot).long().clamp_max(tot - 1)
    for _ in range(1000):
        pos, _ = torch.sort(pos, dim=1)
        dup = torch.zeros_like(pos, dtype=torch.bool)
        dup[:, 1:] = pos[:, 1:] == pos[:, :-1]
        n_dup = int(dup.sum())
        if n_dup == 0:
            break
        rows = dup.nonzero()[:, 0]
        new = (torch.rand(n_dup, generator=generator, device=dev, dtype=torch.float64) * tot[rows, 0]).long()
        pos[dup] = torch.minimum(new, tot[rows, 0] - 1)
    else:  # pragma: no cover - only for k ~ T with a pathological generator
        raise RuntimeError("RSM-1 did not converge to distinct events")
    ev = torch.searchsorted(cum.contiguous(), pos.to(torch.float64).contiguous(), right=True)
    return ev[0] if single else ev


def rsm1(counts: torch.Tensor, k: int, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSM-1 histogram: counts of :func:`rsm1_events` per channel, shape like ``counts`` (float32)."""
    c, single = _as_batch(counts)
    h = histogram(rsm1_events(c, k, generator=generator), c.shape[1])
    return h[0] if single else h


def rsm2(counts: torch.Tensor, k: float, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSM-2: binomial thinning, ``n_i ~ Binomial(c_i, k / T)`` independently per channel.

    Parameters
    ----------
    counts : torch.Tensor, shape (n_channels,) or (batch, n_channels)
        Integer counts of the full measurement(s).
    k : float
        Expected counts per sample (``0 <= k <= T``).
    generator : torch.Generator, optional

    Returns
    -------
    torch.Tensor, float32 (float64 above 2**24 counts), same shape as ``counts``
        Channel counts; the total is random with mean ``k`` and variance ``k (1 - k/T)``.
    """
    c, single = _as_batch(counts)
    c = c.to(torch.float64)
    totals = c.sum(dim=1, keepdim=True)
    if k < 0 or torch.any(totals < k):
        raise ValueError(f"k={k} must be between 0 and the total counts of every spectrum (min {int(totals.min())})")
    p = (k / totals).expand_as(c).contiguous()
    out = torch.binomial(c, p, generator=generator).to(_out_dtype(float(totals.max())))
    return out[0] if single else out


def _out_dtype(k: float) -> torch.dtype:
    """float32 keeps integer counts exact up to 2**24; beyond that use float64."""
    return torch.float32 if k <= 2**24 else torch.float64


def _normalise(probs: torch.Tensor) -> torch.Tensor:
    p = probs.to(torch.float64)
    if torch.any(p < 0) or not torch.all(torch.isfinite(p)):
        raise ValueError("probabilities/counts must be finite and non-negative")
    s = p.sum(dim=1, keepdim=True)
    if torch.any(s <= 0):
        raise ValueError("every row needs a positive total")
    return p / s


def _numpy_rng(generator: torch.Generator | None) -> np.random.Generator:
    """A NumPy generator seeded from ``generator`` (so torch seeding keeps the draws reproducible)."""
    seed = torch.randint(0, 2**62, (1,), generator=generator, device=generator.device if generator else "cpu")
    return np.random.default_rng(int(seed))


def _check_k_rows(k, b: int) -> torch.Tensor:
    """``k`` as a per-row float64 tensor of non-negative integers, shape (b,)."""
    if isinstance(k, torch.Tensor) or isinstance(k, (list, tuple, np.ndarray)):
        kk = torch.as_tensor(np.asarray(k.cpu() if isinstance(k, torch.Tensor) else k), dtype=torch.float64)
        if kk.ndim == 0:
            kk = kk.expand(b)
        if kk.shape != (b,):
            raise ValueError(f"per-row k must have shape ({b},), got {tuple(kk.shape)}")
        if torch.any(kk < 0) or torch.any(kk != torch.round(kk)):
            raise ValueError("k (number of counts to draw) must be non-negative integers")
        return kk
    return torch.full((b,), float(_check_k(k)), dtype=torch.float64)


def rsm3(probs: torch.Tensor, k, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSM-3: multinomial draw of exactly ``k`` counts from each row's distribution.

    On the CPU this is NumPy's multinomial sampler (a sequence of conditional binomials,
    vectorised over rows), seeded from ``generator``; on other devices it is
    :func:`rsm3_tree`, a recursive binomial split that stays on the device. Both are exact
    multinomial samplers; on one CPU core NumPy's is 2-3x faster than the torch tree
    (``benchmarks/pgnaa_sampling.py``).

    Parameters
    ----------
    probs : torch.Tensor, shape (n_channels,) or (batch, n_channels)
        Probabilities or counts (normalised per row).
    k : int or sequence of int, shape (batch,)
        Counts per sample (one value, or one per row).
    generator : torch.Generator, optional
        On ``probs.device``.

    Returns
    -------
    torch.Tensor, float32 (float64 when k > 2**24), same shape as ``probs``
        Integer-valued counts, each row summing to exactly its ``k``.
    """
    p, single = _as_batch(probs)
    kk = _check_k_rows(k, p.shape[0])
    if p.device.type != "cpu":
        out = rsm3_tree(p, kk, generator=generator)
        return out[0] if single else out
    p = _normalise(p)
    rng = _numpy_rng(generator)
    x = rng.multinomial(kk.numpy().astype(np.int64), p.numpy())
    out = torch.from_numpy(x).to(_out_dtype(float(kk.max()) if kk.numel() else 0.0))
    return out[0] if single else out


def rsm3_tree(probs: torch.Tensor, k, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """RSM-3 on the device of ``probs`` by recursive binomial splitting.

    The ``k`` counts of a node are split between its two children with
    ``Binomial(n, p_left / (p_left + p_right))`` down a binary tree over the
    (zero-padded) channels; an exact multinomial sampler whose cost does not grow with
    ``k``. Used by :func:`rsm3` on GPUs (no host round trip); on a CPU core NumPy's
    sampler is faster.

    Parameters and returns as :func:`rsm3`.
    """
    p, single = _as_batch(probs)
    kk = _check_k_rows(k, p.shape[0]).to(p.device)
    p = _normalise(p)
    b, n = p.shape
    depth = max(1, math.ceil(math.log2(n)))
    size = 2**depth
    leaves = torch.zeros((b, size), dtype=torch.float64, device=p.device)
    leaves[:, :n] = p
    # tree[l] holds the probability mass of the 2**l nodes at level l
    levels = [leaves]
    for _ in range(depth):
        levels.append(levels[-1].reshape(b, -1, 2).sum(dim=2))
    levels = levels[::-1]  # levels[0]: root (b, 1)
    # float64 keeps counts exact up to 2**53
    n_node = kk[:, None].clone()
    for lev in range(1, depth + 1):
        child = levels[lev].reshape(b, -1, 2)
        parent = child.sum(dim=2)
        q = torch.where(parent > 0, child[..., 0] / parent.clamp_min(1e-300), torch.zeros_like(parent))
        left = torch.binomial(n_node, q.clamp(0.0, 1.0).contiguous(), generator=generator)
        n_node = torch.stack([left, n_node - left], dim=2).reshape(b, -1)
    out = n_node[:, :n].to(_out_dtype(float(kk.max()) if kk.numel() else 0.0))
    return out[0] if single else out


def rsm3_categorical(probs: torch.Tensor, k: int, *, generator: torch.Generator | None = None,
                     chunk: int = 2**24) -> torch.Tensor:
    """RSM-3 the direct way: ``k`` categorical draws (inverse CDF) per row, then a histogram.

    Same distribution as :func:`rsm3`; memory and time grow with ``batch * k``
    (processed in chunks of about ``chunk`` draws). Kept as the reference implementation
    for tests and benchmarks.
    """
    k = _check_k(k)
    p, single = _as_batch(probs)
    p = _normalise(p)
    b, n = p.shape
    cdf = torch.cumsum(p, dim=1)
    cdf[:, -1] = 1.0
    rows = max(1, chunk // max(k, 1))
    outs = []
    for s in range(0, b, rows):
        u = torch.rand((min(rows, b - s), k), generator=generator, device=p.device, dtype=torch.float64)
        idx = torch.searchsorted(cdf[s : s + rows].contiguous(), u, right=True).clamp_max(n - 1)
        outs.append(histogram(idx, n))
    out = torch.cat(outs)
    return out[0] if single else out


def rsm4(counts: torch.Tensor, k: int, *, height: int = 64, width: int = 256, mode: str = "histogram",
         generator: torch.Generator | None = None) -> torch.Tensor:
    """RSM-4: the RSM-1 sample drawn as an image (a) scatter plot or (b) histogram plot.

    The RSM-1 histogram is summed into ``width`` columns of equal channel count, the
    column heights are ``log1p`` scaled to ``[0, height]`` per sample, and the image
    marks the top pixel of each column (``mode="scatter"``) or fills it (``"histogram"``).

    Returns
    -------
    torch.Tensor, float32, shape (batch, 1, height, width)
        Row 0 is the bottom of the plot.
    """
    if mode not in ("scatter", "histogram"):
        raise ValueError(f"mode must be 'scatter' or 'histogram', got {mode!r}")
    c, _ = _as_batch(counts)
    n = c.shape[1]
    if width > n:
        raise ValueError(f"width ({width}) cannot exceed the number of channels ({n})")
    h = rsm1(c, k, generator=generator)
    per = n // width
    cols = h[:, : per * width].reshape(h.shape[0], width, per).sum(dim=2)
    lv = torch.log1p(cols)
    lv = lv / lv.amax(dim=1, keepdim=True).clamp_min(1e-12)
    top = torch.ceil(lv * height).long()  # 0..height pixels
    rows = torch.arange(1, height + 1, device=c.device)[None, :, None]
    img = (rows <= top[:, None, :]) if mode == "histogram" else (rows == top[:, None, :])
    return img.to(torch.float32)[:, None]


def normalise_counts(counts: torch.Tensor) -> torch.Tensor:
    """Network input from counts: ``sqrt(n_i * n_channels / k)`` per row (variance-stabilised, scale-free).

    Parameters
    ----------
    counts : torch.Tensor, shape (batch, n_channels) or (batch, 1, n_channels)

    Returns
    -------
    torch.Tensor, float32, shape (batch, 1, n_channels)
    """
    c = counts if counts.ndim == 3 else counts[:, None]
    k = c.sum(dim=-1, keepdim=True).clamp_min(1.0)
    return torch.sqrt(c.to(torch.float32) * (c.shape[-1] / k)).to(torch.float32)


class RSMBatch:
    """Batch transform for :func:`lib.core.train.fit`: class indices -> fresh RSM samples on the device.

    Each training step draws new short measurements: ``x`` holds the index of the full
    measurement (row of ``sources``) of every sample; the transform replaces it with an
    RSM draw of ``k`` counts, returned as raw counts (``output="counts"``, for networks
    that scale their own input such as :class:`lib.pgnaa.linear_path.CountsClassifier`),
    normalised with :func:`normalise_counts` (``"normalised"``), or for RSM-4 rendered as
    an image. ``k`` is fixed, or drawn log-uniformly from the ``k`` range: per sample for
    RSM-3, per batch for the other methods.

    Parameters
    ----------
    sources : torch.Tensor, shape (n_sources, n_channels)
        Full measurements (integer counts; probabilities suffice for RSM-3).
    k : int or tuple of (int, int)
        Counts per sample, or the (min, max) range.
    method : {"rsm1", "rsm2", "rsm3", "rsm4"}
    output : {"normalised", "counts"}
        Network input of the 1D methods (ignored by RSM-4).
    seed : int
        Seeds the transform's own generator (created on the batch's device).
    image_size : tuple of int
        (height, width) for RSM-4.
    """

    def __init__(self, sources: torch.Tensor, k: int | tuple[int, int], *, method: str = "rsm3",
                 output: str = "normalised", seed: int = 0, image_size: tuple[int, int] = (64, 256)) -> None:
        if method not in ("rsm1", "rsm2", "rsm3", "rsm4"):
            raise ValueError(f"method must be one of rsm1..rsm4, got {method!r}")
        if output not in ("normalised", "counts"):
            raise ValueError(f"output must be 'normalised' or 'counts', got {output!r}")
        self.k_range = (int(k), int(k)) if isinstance(k, (int, float)) else (int(k[0]), int(k[1]))
        if not 0 < self.k_range[0] <= self.k_range[1]:
            raise ValueError(f"need 0 < k_min <= k_max, got {self.k_range}")
        self.sources = sources
        self.method, self.output, self.seed, self.image_size = method, output, seed, image_size
        self._cache: dict[str, tuple[torch.Tensor, torch.Generator]] = {}

    def _state(self, device: torch.device) -> tuple[torch.Tensor, torch.Generator]:
        key = str(device)
        if key not in self._cache:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            dtype = torch.float64
            self._cache[key] = (self.sources.to(device=device, dtype=dtype), gen)
        return self._cache[key]

    def draw_k(self, gen: torch.Generator, n: int | None = None) -> int | torch.Tensor:
        """One log-uniform ``k`` (``n`` None) or ``n`` of them (float64 tensor of integers)."""
        lo, hi = self.k_range
        if lo == hi:
            return lo if n is None else torch.full((n,), float(lo), dtype=torch.float64)
        u = torch.rand(() if n is None else (n,), generator=gen, device=gen.device, dtype=torch.float64).cpu()
        k = torch.round(torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))))
        return int(k) if n is None else k

    def sample(self, idx: torch.Tensor, k: int | None = None) -> torch.Tensor:
        """Raw RSM counts (batch, n_channels) (RSM-4: images) for source rows ``idx``."""
        src, gen = self._state(idx.device)
        rows = src[idx.long()]
        if self.method == "rsm3":
            return rsm3(rows, self.draw_k(gen, len(idx)) if k is None else k, generator=gen)
        k = self.draw_k(gen) if k is None else k
        if self.method == "rsm1":
            return rsm1(rows, k, generator=gen)
        if self.method == "rsm2":
            return rsm2(rows, k, generator=gen)
        return rsm4(rows, k, height=self.image_size[0], width=self.image_size[1], generator=gen)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.sample(x, k)
        if self.method == "rsm4":
            return s, y
        return (s.to(torch.float32)[:, None] if self.output == "counts" else normalise_counts(s)), y
