"""Likelihood and template-matching classifiers for count spectra: the limits a CNN is measured against.

If a test spectrum ``n`` (``k`` counts) is a multinomial draw from one of the class
distributions ``p_c`` (the paper's protocol: training and test samples are RSM draws from
the same full measurements), the Bayes-optimal decision is

    argmax_c  log pi_c + sum_i n_i log p_ci,

a single matrix product. Binomial thinning (RSM-2) gives independent Poisson channels and
the same decision (the extra term depends on ``k`` only), and RSM-1 equals RSM-3 when
``k`` is much smaller than the full measurement. When the class distribution is only
known through several measurements (NIST), :func:`mixture_log_likelihood` treats the
class as an equal mixture of its measured spectra.

Also here: normalised cross-correlation and chi-square template matching (the paper's
"classical approaches") and the Chernoff information that predicts how fast the
pairwise error falls with ``k``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "template_log_probs",
    "multinomial_log_likelihood",
    "MultinomialClassifier",
    "mixture_log_likelihood",
    "ncc_scores",
    "chi2_scores",
    "chernoff_information",
]


def _t(x, dtype=torch.float64, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype=dtype, device=device if device is not None else x.device)
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def template_log_probs(templates, *, pseudo_count: float = 0.5) -> torch.Tensor:
    """Log class distributions from template counts.

    Parameters
    ----------
    templates : array_like, shape (n_classes, n_channels)
        Counts (or probabilities) of the full measurement of each class.
    pseudo_count : float
        Added to every channel's count before normalising (avoids log 0 where a
        channel saw no counts; 0.5 is the Jeffreys prior). For probability templates
        the pseudo count is interpreted relative to ``1 / n_channels``-scaled
        counts of a 10^9-count measurement.

    Returns
    -------
    torch.Tensor, shape (n_classes, n_channels), float64
    """
    t = _t(templates)
    if t.ndim != 2:
        raise ValueError(f"templates must be (n_classes, n_channels), got {tuple(t.shape)}")
    if torch.any(t < 0) or not torch.all(torch.isfinite(t)):
        raise ValueError("templates must be finite and non-negative")
    s = t.sum(dim=1, keepdim=True)
    if torch.any(s <= 0):
        raise ValueError("every template needs a positive total")
    if torch.all(s <= 1.0 + 1e-6):  # probabilities: treat as a 1e9-count measurement
        t = t * 1e9
    t = t + pseudo_count
    return torch.log(t) - torch.log(t.sum(dim=1, keepdim=True))


def multinomial_log_likelihood(counts, log_probs, log_prior=None) -> torch.Tensor:
    """Class scores ``counts @ log_probs.T (+ log_prior)``.

    Parameters
    ----------
    counts : array_like, shape (batch, n_channels)
    log_probs : torch.Tensor, shape (n_classes, n_channels)
    log_prior : array_like, shape (n_classes,), optional

    Returns
    -------
    torch.Tensor, shape (batch, n_classes), float64
        Multinomial log-likelihood up to a term that does not depend on the class.
    """
    lp = _t(log_probs)
    n = _t(counts, device=lp.device)
    if n.ndim == 1:
        n = n[None]
    if n.shape[-1] != lp.shape[-1]:
        raise ValueError(f"counts have {n.shape[-1]} channels but templates {lp.shape[-1]}")
    s = n @ lp.T
    if log_prior is not None:
        s = s + _t(log_prior, device=lp.device)[None]
    return s


class MultinomialClassifier:
    """Maximum-likelihood (Bayes-optimal with ``log_prior``) classifier for count spectra.

    Parameters
    ----------
    templates : array_like, shape (n_classes, n_channels)
        Full measurements (counts) or class probabilities.
    pseudo_count : float
        See :func:`template_log_probs`.
    prior : array_like, shape (n_classes,), optional
        Class prior (default uniform, i.e. maximum likelihood).
    device : str or torch.device, optional
    """

    def __init__(self, templates, *, pseudo_count: float = 0.5, prior=None, device=None) -> None:
        self.log_probs = template_log_probs(templates, pseudo_count=pseudo_count)
        if device is not None:
            self.log_probs = self.log_probs.to(device)
        self.log_prior = None if prior is None else torch.log(_t(prior, device=self.log_probs.device))

    @property
    def n_classes(self) -> int:
        return int(self.log_probs.shape[0])

    def scores(self, counts) -> torch.Tensor:
        """Log-likelihood (+ log prior) per class, shape (batch, n_classes)."""
        return multinomial_log_likelihood(counts, self.log_probs, self.log_prior)

    def predict_proba(self, counts) -> torch.Tensor:
        """Posterior class probabilities, shape (batch, n_classes)."""
        return torch.softmax(self.scores(counts), dim=1)

    def predict(self, counts) -> torch.Tensor:
        """Most likely class index per spectrum, shape (batch,)."""
        return self.scores(counts).argmax(dim=1)


def mixture_log_likelihood(counts, templates, template_class, n_classes: int | None = None, *,
                           pseudo_count: float = 0.5, exclude=None) -> torch.Tensor:
    """Class scores when each class is an equal mixture of several measured spectra.

    ``score_c = log mean_{j in c} exp(n @ log p_j)``. Use ``exclude`` to leave out, for
    each test spectrum, the template it was drawn from (leave-one-spectrum-out).

    Parameters
    ----------
    counts : array_like, shape (batch, n_channels)
    templates : array_like, shape (n_templates, n_channels)
    template_class : array_like of int, shape (n_templates,)
    n_classes : int, optional
    pseudo_count : float
    exclude : array_like of int, shape (batch,), optional
        Template index to leave out per test spectrum (-1 for none).

    Returns
    -------
    torch.Tensor, shape (batch, n_classes); ``-inf`` for a class with no usable template.
    """
    lp = template_log_probs(templates, pseudo_count=pseudo_count)
    ll = multinomial_log_likelihood(counts, lp)  # (B, T)
    tc = torch.as_tensor(np.asarray(template_class), device=ll.device, dtype=torch.long)
    c = int(n_classes if n_classes is not None else int(tc.max()) + 1)
    if exclude is not None:
        ex = torch.as_tensor(np.asarray(exclude), device=ll.device, dtype=torch.long)
        mask = torch.arange(ll.shape[1], device=ll.device)[None] == ex[:, None]
        ll = ll.masked_fill(mask, -math.inf)
    out = torch.full((ll.shape[0], c), -math.inf, dtype=ll.dtype, device=ll.device)
    for j in range(c):
        sel = tc == j
        if sel.any():
            sub = ll[:, sel]
            cnt = torch.isfinite(sub).sum(dim=1).clamp_min(1)
            out[:, j] = torch.logsumexp(sub, dim=1) - torch.log(cnt.to(ll.dtype))
    return out


def ncc_scores(counts, templates) -> torch.Tensor:
    """Normalised cross-correlation (Pearson r) between each spectrum and each template, (batch, n_classes)."""
    n = _t(counts)
    t = _t(templates, device=n.device)
    if n.ndim == 1:
        n = n[None]
    n = n - n.mean(dim=1, keepdim=True)
    t = t - t.mean(dim=1, keepdim=True)
    n = n / n.norm(dim=1, keepdim=True).clamp_min(1e-300)
    t = t / t.norm(dim=1, keepdim=True).clamp_min(1e-300)
    return n @ t.T


def chi2_scores(counts, templates, *, floor: float = 1e-12) -> torch.Tensor:
    """Negative Pearson chi-square ``-sum_i (n_i - k p_ci)^2 / (k p_ci)`` (higher is better), (batch, n_classes).

    Expanded as ``sum n^2/(k p) - 2 sum n + k sum p`` so it is one matrix product.
    """
    n = _t(counts)
    if n.ndim == 1:
        n = n[None]
    p = _t(templates, device=n.device)
    p = p / p.sum(dim=1, keepdim=True)
    p = p.clamp_min(floor)
    k = n.sum(dim=1, keepdim=True).clamp_min(1.0)
    chi = (n**2) @ (1.0 / p).T / k - 2 * k + k * p.sum(dim=1)[None]
    return -chi


def chernoff_information(p: np.ndarray, q: np.ndarray, *, n_grid: int = 201) -> float:
    """Chernoff information ``C = -min_{0<l<1} log sum_i p_i^l q_i^(1-l)`` (nats per count).

    The error of the best test between two multinomials falls like ``exp(-k C)``.
    """
    p = np.asarray(p, dtype=float)
    q = np.asarray(q, dtype=float)
    p, q = p / p.sum(), q / q.sum()
    lam = np.linspace(0.0, 1.0, n_grid)[1:-1, None]
    with np.errstate(divide="ignore"):
        lp, lq = np.log(p)[None], np.log(q)[None]
    terms = np.exp(np.where((p > 0) & (q > 0), lam * lp + (1 - lam) * lq, -np.inf))
    return float(-np.log(terms.sum(axis=1)).min())
