"""Learning-rate schedules: one closed-form factor per step, and the scheduler that applies it.

A schedule is a multiplier of each parameter group's base (peak) learning rate at step ``step`` of
``total`` (0-based), given by :func:`lr_factor`; :class:`LRSchedule` applies it to an optimiser. A
*step* is whatever unit the caller steps the scheduler in: one optimiser step (``lib.core.train.fit``
with ``scheduler_interval="step"``, ``total`` = epochs x batches) or one epoch (the default
``scheduler_interval="epoch"``, ``total`` = epochs). The factors agree with PyTorch's own schedulers
(``CosineAnnealingLR``, ``OneCycleLR``, a ``LambdaLR`` warm-up) to 1e-12 at every step
(``tests/core/test_schedules.py``).

The schedules
-------------
``constant``
    1 at every step.
``cosine``
    ``final + (1 - final) (1 + cos(pi s / total)) / 2``: from 1 at step 0 towards ``final`` at step
    ``total`` (``CosineAnnealingLR(T_max=total, eta_min=final * lr)``). With ``warmup = w > 0`` the
    first ``w`` steps are replaced by a linear warm-up ``(s + 1) / (w + 1)``; the cosine itself is
    not shifted.
``warmup_cosine``
    Linear warm-up ``(s + 1) / (w + 1)`` over the first ``w = warmup`` steps, then a cosine from 1 at
    step ``w`` to ``final`` at the last step ``total - 1``.
``onecycle``
    PyTorch's ``OneCycleLR`` with its default factors (``div_factor=25``, ``final_div_factor=1e4``,
    cosine annealing): a cosine warm-up from 1/25 at step 0 to 1 at step ``pct_start * total``, then a
    cosine decay to 1/250 000 at step ``total``. Torch ends its phases one step earlier (at
    ``pct_start * T - 1`` and ``T - 1``), so this is ``OneCycleLR(total_steps=total + 1,
    pct_start=(pct_start * total + 1) / (total + 1))``.
"""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["SCHEDULES", "lr_factor", "LRSchedule"]

SCHEDULES: tuple[str, ...] = ("constant", "cosine", "warmup_cosine", "onecycle")
"""The names :func:`lr_factor` and :class:`LRSchedule` accept."""

_ONECYCLE_DIV, _ONECYCLE_FINAL_DIV = 25.0, 1e4


def _cos_ramp(start: float, end: float, t: float) -> float:
    """From ``start`` at ``t = 0`` to ``end`` at ``t = 1`` along half a cosine."""
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * t))


def _check(schedule: str, step: int, total: int, warmup: int, final: float, pct_start: float) -> None:
    if schedule not in SCHEDULES:
        raise ValueError(f"learning-rate schedule must be one of {SCHEDULES}, got {schedule!r}.")
    for name, value in (("step", step), ("total", total), ("warmup", warmup)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"learning-rate schedule: {name} must be an int, got {type(value).__name__}.")
    if total < 1 or step < 0 or warmup < 0:
        raise ValueError(f"learning-rate schedule needs total >= 1, step >= 0 and warmup >= 0; got total={total}, "
                         f"step={step}, warmup={warmup}.")
    if not 0 <= final <= 1:
        raise ValueError(f"learning-rate schedule: final must lie in [0, 1] (a fraction of the peak), got {final}.")
    if schedule == "onecycle" and not 0 < pct_start < 1:
        raise ValueError(f"learning-rate schedule 'onecycle': pct_start must lie in (0, 1), got {pct_start}.")


def lr_factor(schedule: str, step: int, total: int, *, warmup: int = 0, final: float = 0.0,
              pct_start: float = 0.25) -> float:
    """Multiplier of the peak learning rate at step ``step`` of ``total`` (0-based).

    Parameters
    ----------
    schedule : {"constant", "cosine", "warmup_cosine", "onecycle"}
        See the module docstring.
    step : int
        Current step (>= 0); steps beyond ``total`` keep the value at ``total``
        (``warmup_cosine``: at ``total - 1``).
    total : int
        Number of steps of the schedule (>= 1).
    warmup : int, default 0
        Linear warm-up steps of ``cosine`` and ``warmup_cosine``.
    final : float, default 0.0
        Factor the cosine decays to, in [0, 1] (``cosine`` and ``warmup_cosine``).
    pct_start : float, default 0.25
        Fraction of the steps that ``onecycle`` warms up over, in (0, 1).

    Returns
    -------
    float
        The factor (1 at the peak).
    """
    _check(schedule, step, total, warmup, final, pct_start)
    if schedule == "constant":
        return 1.0
    if schedule in ("cosine", "warmup_cosine") and step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "cosine":
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
    if schedule == "warmup_cosine":
        t = (step - warmup) / max(1, total - 1 - warmup)
        return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))
    t = min(step, total) / total
    lo = 1 / _ONECYCLE_DIV
    if t < pct_start:
        return _cos_ramp(lo, 1.0, t / pct_start)
    return _cos_ramp(1.0, lo / _ONECYCLE_FINAL_DIV, (t - pct_start) / (1 - pct_start))


class LRSchedule(torch.optim.lr_scheduler.LRScheduler):
    """Sets every parameter group's learning rate to its base rate times :func:`lr_factor`.

    Step it once per unit of ``total``: after every optimiser step for a per-step schedule
    (``lib.core.train.fit(..., scheduler_interval="step")``), or once per epoch with ``total`` in
    epochs. At construction the rates are those of step 0.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Its groups' ``lr`` at construction are the peaks (``initial_lr``).
    schedule : {"constant", "cosine", "warmup_cosine", "onecycle"}
    total : int
        Steps of the schedule (>= 1).
    warmup, final, pct_start
        As in :func:`lr_factor`.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: str, *, total: int, warmup: int = 0,
                 final: float = 0.0, pct_start: float = 0.25) -> None:
        _check(schedule, 0, total, warmup, final, pct_start)
        self.schedule, self.total, self.warmup, self.final, self.pct_start = schedule, total, warmup, final, pct_start
        super().__init__(optimizer)

    def factor(self, step: int) -> float:
        """The factor at ``step`` (:func:`lr_factor` with this schedule's settings)."""
        return lr_factor(self.schedule, step, self.total, warmup=self.warmup, final=self.final,
                         pct_start=self.pct_start)

    def get_lr(self) -> list[Any]:  # called by LRScheduler.step with last_epoch already advanced
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]
