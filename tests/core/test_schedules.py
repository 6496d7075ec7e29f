"""The learning-rate schedules: torch's own schedulers step by step, and the studies' old formulas frozen."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from lib.core import train
from lib.core.schedules import SCHEDULES, LRSchedule, lr_factor


def _lrs(make, total: int, peak: float = 1.0) -> np.ndarray:
    """Learning rates of the first ``total`` steps of a scheduler built by ``make(optimizer)``."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    sched = make(opt)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return np.array(out)


@pytest.mark.parametrize("total", [1, 7, 40, 1000])
def test_cosine_matches_cosine_annealing(total):
    ours = _lrs(lambda o: LRSchedule(o, "cosine", total=total), total, peak=3e-3)
    ref = _lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=total), total, peak=3e-3)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


def test_cosine_with_final_matches_eta_min():
    ours = _lrs(lambda o: LRSchedule(o, "cosine", total=50, final=0.1), 50)
    ref = _lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.1), 50)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("total,pct", [(10, 0.25), (400, 0.25), (333, 0.3)])
def test_onecycle_matches_torch(total, pct):
    """Our phases end at steps pct * total and total; torch's at pct' * T - 1 and T - 1: T = total + 1."""
    ours = _lrs(lambda o: LRSchedule(o, "onecycle", total=total, pct_start=pct), total + 1)
    ref = _lrs(lambda o: torch.optim.lr_scheduler.OneCycleLR(
        o, max_lr=1.0, total_steps=total + 1, pct_start=(pct * total + 1) / (total + 1), cycle_momentum=False),
        total + 1)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12)
    assert ours[0] == pytest.approx(1 / 25) and ours[-1] == pytest.approx(1 / 25 / 1e4)


def test_warmup_matches_lambda_lr():
    """The warm-up part of both warm-up schedules is torch's LambdaLR with (s + 1) / (w + 1)."""
    w, total = 4, 30
    ref = _lrs(lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda s: (s + 1) / (w + 1) if s < w else 1.0), total)
    for name in ("cosine", "warmup_cosine"):
        ours = _lrs(lambda o, name=name: LRSchedule(o, name, total=total, warmup=w), total)
        np.testing.assert_allclose(ours[:w], ref[:w], rtol=0, atol=1e-12)
    ours = _lrs(lambda o: LRSchedule(o, "warmup_cosine", total=total, warmup=w), total)
    assert ours[w] == 1.0 and ours[-1] == pytest.approx(0.0, abs=1e-15)


def test_constant_and_groups_keep_their_own_peaks():
    opt = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 1.0},
                           {"params": [torch.nn.Parameter(torch.zeros(1))], "lr": 0.1}])
    sched = LRSchedule(opt, "cosine", total=4)
    opt.step()
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.5 * (1 + math.cos(math.pi / 4)),
                                                                0.05 * (1 + math.cos(math.pi / 4))])
    assert lr_factor("constant", 9, 10) == 1.0


# ---------------------------------------------------------------- the studies' formulas before lib.core.schedules
def _old_radiative(schedule, step, total, warmup=0.25):
    t = min(step, total) / total
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1 + math.cos(math.pi * t))
    lo, end = 1 / 25, 1 / 25 / 1e4

    def cos_ramp(a, b, u):
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * u))

    return cos_ramp(lo, 1.0, t / warmup) if t < warmup else cos_ramp(1.0, end, (t - warmup) / (1 - warmup))


def _old_nuclei(e, epochs, warmup=1):
    if e < warmup:
        return (e + 1) / (warmup + 1)
    span = max(epochs - warmup + 1, 1)
    return 0.5 * (1 + math.cos(math.pi * min(e - warmup + 1, span - 1) / span))


def _old_pgnaa(epoch, epochs, warmup=1, final=0.02):
    if epoch < warmup:
        return (epoch + 1) / (warmup + 1)
    t = (epoch - warmup) / max(1, epochs - 1 - warmup)
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, t)))


@pytest.mark.parametrize("total", [1, 2, 5, 97, 1250])
def test_radiative_schedules_are_the_old_ones(total):
    """constant and onecycle (the lab profile's) to the last bit; cosine (no profile uses it) within 2e-16."""
    for name in ("constant", "onecycle"):
        assert [lr_factor(name, s, total) for s in range(total + 1)] == \
               [_old_radiative(name, s, total) for s in range(total + 1)], name
    np.testing.assert_allclose([lr_factor("cosine", s, total) for s in range(total + 1)],
                               [_old_radiative("cosine", s, total) for s in range(total + 1)], rtol=0, atol=2.3e-16)


@pytest.mark.parametrize("epochs", [1, 2, 4, 6, 10, 20, 40, 100])
def test_nuclei_recipe_schedule_is_bitwise_the_old_one(epochs):
    """Warm-up epoch + cosine (nuclei's recipe), at every epoch of training."""
    assert [lr_factor("cosine", e, epochs, warmup=1) for e in range(epochs)] == \
           [_old_nuclei(e, epochs) for e in range(epochs)]


@pytest.mark.parametrize("epochs", [1, 2, 3, 8, 30, 60])
def test_pgnaa_schedule_is_bitwise_the_old_one(epochs):
    assert [lr_factor("warmup_cosine", e, epochs, warmup=1, final=0.02) for e in range(epochs + 1)] == \
           [_old_pgnaa(e, epochs) for e in range(epochs + 1)]


def test_per_step_fit_steps_the_schedule_after_every_batch():
    """``train.fit(..., scheduler_interval='step')``: the logged lr after epoch e is the factor at step e * batches."""
    torch.manual_seed(0)
    x, y = torch.randn(12, 3), torch.randn(12, 1)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = train.array_loader(x, y, batch_size=4)
    sched = LRSchedule(opt, "cosine", total=3 * len(loader))
    res = train.fit(model, loader, loss_fn=torch.nn.functional.mse_loss, epochs=3, optimizer=opt,
                    scheduler=sched, scheduler_interval="step", device="cpu", progress=False)
    expected = [0.1 * lr_factor("cosine", e * 3, 9) for e in (1, 2, 3)]
    np.testing.assert_allclose(res.history["lr"], expected, rtol=1e-15)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="must be one of"):
        lr_factor("step", 0, 10)
    with pytest.raises(ValueError, match="total >= 1"):
        lr_factor("cosine", 0, 0)
    with pytest.raises(ValueError, match="pct_start"):
        lr_factor("onecycle", 0, 10, pct_start=1.5)
    with pytest.raises(ValueError, match="scheduler_interval"):
        train.fit(torch.nn.Linear(1, 1), [], loss_fn=torch.nn.functional.mse_loss, epochs=1, scheduler_interval="x")
    assert set(SCHEDULES) == {"constant", "cosine", "warmup_cosine", "onecycle"}
