"""A network that takes raw counts: a trunk on binned, variance-stabilised counts plus a linear path.

Why a linear path: for a spectrum ``n`` (``k`` counts) drawn from class ``c``'s
distribution ``p_c``, the log-posterior is ``log pi_c + sum_i n_i log p_ci`` up to a
class-independent term, i.e. *linear in the counts*. A linear layer on the
full-resolution counts can therefore represent the Bayes classifier; a convolutional
trunk on binned, square-rooted counts cannot represent it exactly (binning loses
resolution, the square root loses linearity). :class:`CountsClassifier` adds the two:

    logits = trunk(sqrt(bin(n) * L_b / k)) + W (n / sqrt(k)) + b

The linear path sees ``n / sqrt(k)``: its decision ``argmax_c W_c . n`` is the Bayes
decision for ``W_c = log p_c`` at every ``k`` (the positive factor ``1/sqrt(k)`` does not
change the argmax), and the scaling keeps the logits and gradients of low- and high-count
samples within a factor ``sqrt(k_max / k_min)`` of each other. Its weights start at zero,
so training begins as the trunk alone. During training the linear path's own logits
are kept (``last_linear_logits``) for an auxiliary loss, as Inception networks use
auxiliary classifiers: without it the trunk learns the easy high-count cases first and
leaves the linear path little gradient.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["CountsClassifier", "bin_sum"]


def bin_sum(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Sum ``factor`` adjacent channels along the last axis (the remainder is dropped)."""
    if factor < 1:
        raise ValueError(f"factor must be >= 1, got {factor}")
    n = x.shape[-1] // factor * factor
    y = x[..., :n]
    return y.reshape(*y.shape[:-1], n // factor, factor).sum(-1)


class CountsClassifier(nn.Module):
    """``trunk`` on binned, square-rooted counts plus an optional linear path on the raw channels.

    Parameters
    ----------
    trunk : torch.nn.Module
        Any classifier taking ``(batch, 1, length // bin_factor)`` and returning logits
        ``(batch, num_classes)`` (e.g. :class:`lib.pgnaa.inception_resnet1d.InceptionResNetV2_1D`).
    num_classes : int
    length : int
        Number of input channels (full resolution).
    bin_factor : int
        Channels summed per trunk input bin.
    linear_path : bool
        Add the linear layer on ``n / sqrt(k)`` (zero-initialised).

    Notes
    -----
    Input: raw counts ``(batch, length)`` or ``(batch, 1, length)`` (non-negative; the
    total ``k`` of each row is the sum). Output: logits ``(batch, num_classes)``.
    """

    takes_counts = True

    def __init__(self, trunk: nn.Module, num_classes: int, length: int, *, bin_factor: int = 8,
                 linear_path: bool = True) -> None:
        super().__init__()
        if length // bin_factor < 1:
            raise ValueError(f"length {length} is shorter than one bin of {bin_factor} channels")
        self.trunk, self.length, self.bin_factor = trunk, int(length), int(bin_factor)
        self.linear = nn.Linear(length, num_classes) if linear_path else None
        if self.linear is not None:
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)

    def _counts(self, counts: torch.Tensor) -> torch.Tensor:
        n = counts if counts.ndim == 2 else counts.reshape(counts.shape[0], -1)
        if n.ndim != 2 or n.shape[-1] != self.length:
            raise ValueError(f"expected counts (batch, {self.length}) or (batch, 1, {self.length}), "
                             f"got {tuple(counts.shape)}")
        return n.to(torch.float32)

    def trunk_input(self, counts: torch.Tensor) -> torch.Tensor:
        """The trunk's input ``sqrt(bin(n) * L_b / k)``, shape (batch, 1, length // bin_factor)."""
        n = self._counts(counts)
        k = n.sum(-1, keepdim=True).clamp_min(1.0)
        b = bin_sum(n, self.bin_factor)
        return torch.sqrt(b * (b.shape[-1] / k))[:, None]

    def linear_logits(self, counts: torch.Tensor) -> torch.Tensor:
        """Logits of the linear path alone, ``W n / sqrt(k) + b`` (zeros without one)."""
        n = self._counts(counts)
        if self.linear is None:
            return torch.zeros(n.shape[0], self.trunk_classes, device=n.device)
        k = n.sum(-1, keepdim=True).clamp_min(1.0)
        return self.linear(n / torch.sqrt(k))

    @property
    def trunk_classes(self) -> int:
        return int(self.trunk.classifier.out_features) if hasattr(self.trunk, "classifier") else -1

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        out = self.trunk(self.trunk_input(counts))
        self.last_linear_logits = None
        if self.linear is not None:
            lin = self.linear_logits(counts)
            self.last_linear_logits = lin if self.training else None
            out = out + lin
        return out
