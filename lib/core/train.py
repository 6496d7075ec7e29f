"""The one fit/evaluate loop every study uses.

Studies pass a model, a loss, metric functions and data loaders; the loop handles
device placement, optional mixed precision on CUDA, a progress bar that stays quiet
outside interactive sessions, best-model checkpointing, early stopping, learning-rate
schedules and a per-epoch history returned as a :class:`pandas.DataFrame`.

Data order is deterministic when the loaders are built with a seeded
``torch.Generator`` (see :func:`seeded_loader`).
"""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from lib.core.repro import resolve_device

__all__ = ["FitResult", "fit", "evaluate", "predict", "seeded_loader", "array_loader", "count_parameters"]

Metric = Callable[[torch.Tensor, torch.Tensor], float]
BatchTransform = Callable[[Any, Any], tuple[Any, Any]]


@dataclass
class FitResult:
    """Outcome of :func:`fit`.

    Attributes
    ----------
    model : torch.nn.Module
        The model, with the weights of the best epoch (by ``monitor``) loaded.
    history : pandas.DataFrame
        One row per epoch: ``epoch, loss, <metric>, val_loss, val_<metric>, lr, time_s``.
    best_epoch : int
        1-based epoch whose weights were kept.
    best_score : float
        Value of the monitored quantity at ``best_epoch``.
    stopped_early : bool
        Whether early stopping ended training before ``epochs``.
    """

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    best_score: float
    stopped_early: bool


def seeded_loader(
    dataset: torch.utils.data.Dataset, *, batch_size: int, shuffle: bool, seed: int, **kwargs: Any
) -> torch.utils.data.DataLoader:
    """A DataLoader whose shuffling order is fixed by ``seed`` (independent of global RNG state)."""
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=gen, **kwargs)


def array_loader(
    *arrays: np.ndarray | torch.Tensor, batch_size: int, shuffle: bool = False, seed: int = 0, **kwargs: Any
) -> torch.utils.data.DataLoader:
    """A DataLoader over in-memory arrays (each of shape ``(n, ...)``), shuffled reproducibly by ``seed``.

    Parameters
    ----------
    *arrays : ndarray or Tensor
        Inputs, targets, ...: one tensor each, all with the same first dimension ``n``.
        NumPy arrays are wrapped without a copy (:func:`torch.from_numpy`).
    batch_size : int
        Samples per batch.
    shuffle : bool, default False
        Reshuffle every epoch, in an order fixed by ``seed`` (training); ``False`` keeps the order (evaluation).
    seed : int
        Seed of the shuffling generator (ignored without ``shuffle``).
    **kwargs
        Passed to :class:`torch.utils.data.DataLoader` (``drop_last``, ``num_workers``, ...).

    Raises
    ------
    ValueError
        No arrays, or arrays of different lengths.
    """
    if not arrays:
        raise ValueError("array_loader needs at least one array")
    tensors = [a if isinstance(a, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]
    lengths = {len(a) for a in tensors}
    if len(lengths) != 1:
        raise ValueError(f"array_loader: arrays of different lengths {sorted(lengths)}; give one sample per row in each")
    dataset = torch.utils.data.TensorDataset(*tensors)
    if shuffle:
        return seeded_loader(dataset, batch_size=batch_size, shuffle=True, seed=seed, **kwargs)
    return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, **kwargs)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` unless ``trainable_only=False``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(o, device) for o in obj)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    return obj


def _split_batch(batch: Any) -> tuple[Any, Any]:
    if isinstance(batch, (list, tuple)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(
        "each batch must be a pair (inputs, targets); wrap your dataset so that it returns (x, y)"
    )


def _show_progress(progress: bool | None) -> bool:
    if progress is not None:
        return progress
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def _run_epoch(
    model: nn.Module,
    loader: Iterable,
    *,
    loss_fn: Callable | None,
    metrics: Mapping[str, Metric],
    device: torch.device,
    optimizer: torch.optim.Optimizer | None,
    batch_transform: BatchTransform | None,
    amp: bool,
    scaler: Any,
    desc: str,
    progress: bool,
    step_scheduler: Any = None,
) -> dict[str, float]:
    train = optimizer is not None
    model.train(train)
    totals: dict[str, float] = {}
    n_seen = 0
    iterator = loader
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(loader, desc=desc, leave=False)
    use_amp = amp and device.type == "cuda"
    for batch in iterator:
        x, y = _split_batch(batch)
        x, y = _to_device(x, device), _to_device(y, device)
        if batch_transform is not None:
            x, y = batch_transform(x, y)
        n = len(y) if hasattr(y, "__len__") else 1
        with torch.set_grad_enabled(train), torch.autocast(device.type, enabled=use_amp):
            out = model(x)
            loss = loss_fn(out, y) if loss_fn is not None else None
        if train:
            if loss is None:
                raise ValueError("training needs a loss_fn")
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"{desc}: the loss became {loss.item()}; lower the learning rate or check the inputs for NaN"
                )
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if step_scheduler is not None:
                step_scheduler.step()
        if loss is not None:
            totals["loss"] = totals.get("loss", 0.0) + float(loss.detach()) * n
        with torch.no_grad():
            for name, fn in metrics.items():
                totals[name] = totals.get(name, 0.0) + float(fn(out.detach(), y)) * n
        n_seen += n
    if n_seen == 0:
        raise ValueError(f"{desc}: the data loader yielded no batches")
    return {k: v / n_seen for k, v in totals.items()}


def fit(
    model: nn.Module,
    train_loader: Iterable,
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    epochs: int,
    optimizer: torch.optim.Optimizer | None = None,
    val_loader: Iterable | None = None,
    metrics: Mapping[str, Metric] | None = None,
    batch_transform: BatchTransform | None = None,
    scheduler: Any = None,
    scheduler_monitor: bool = False,
    scheduler_interval: str = "epoch",
    early_stopping: int | None = None,
    monitor: str = "val_loss",
    mode: str = "min",
    checkpoint: str | Path | None = None,
    device: Any = "auto",
    amp: bool = False,
    progress: bool | None = None,
) -> FitResult:
    """Train ``model`` and keep the weights of its best epoch.

    Parameters
    ----------
    model : torch.nn.Module
        Moved to ``device`` in place.
    train_loader, val_loader : iterable of (inputs, targets)
        Usually DataLoaders; build them with :func:`seeded_loader` for a reproducible order.
    loss_fn : callable
        ``loss_fn(output, target) -> scalar tensor``.
    epochs : int
        Maximum number of epochs (>= 1).
    optimizer : torch.optim.Optimizer, optional
        Default ``Adam(model.parameters(), lr=1e-3)``.
    metrics : dict of name -> callable, optional
        ``fn(output, target) -> float`` averaged over samples; reported for training and
        (prefixed ``val_``) validation data.
    batch_transform : callable, optional
        ``(x, y) -> (x, y)`` applied on the device to every batch before the forward pass
        (e.g. fresh random sub-sampling of spectra at each step).
    scheduler : optional
        A learning-rate scheduler stepped once per epoch; with ``scheduler_monitor=True`` it
        is called as ``scheduler.step(value_of_monitor)`` (``ReduceLROnPlateau``).
    scheduler_interval : {"epoch", "step"}, default "epoch"
        ``"step"`` steps ``scheduler`` after every optimiser step instead (the per-step
        schedules of :class:`lib.core.schedules.LRSchedule`); it cannot be combined with
        ``scheduler_monitor``.
    early_stopping : int, optional
        Stop after this many epochs without improvement of ``monitor``.
    monitor : str, default "val_loss"
        History column that selects the best epoch (``"loss"`` when there is no validation data).
    mode : {"min", "max"}
        Whether smaller or larger ``monitor`` is better.
    checkpoint : path, optional
        Where to save ``{"model": state_dict, "epoch": ..., "score": ...}`` at each improvement.
    device : str or torch.device, default "auto"
        CUDA when available, else CPU.
    amp : bool, default False
        Mixed precision (CUDA only; ignored on CPU).
    progress : bool, optional
        Show tqdm bars; default only when stderr is a terminal.

    Returns
    -------
    FitResult
    """
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if early_stopping is not None and early_stopping < 1:
        raise ValueError(f"early_stopping must be a positive int or None, got {early_stopping!r}")
    if scheduler_interval not in ("epoch", "step"):
        raise ValueError(f"scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
    if scheduler_interval == "step" and scheduler_monitor:
        raise ValueError("scheduler_monitor needs scheduler_interval='epoch': a monitored scheduler "
                         "(ReduceLROnPlateau) reads the epoch's score, which a per-step call does not have")
    per_step = scheduler if scheduler_interval == "step" else None
    metrics = dict(metrics or {})
    if val_loader is None and monitor.startswith("val_"):
        monitor = monitor[len("val_") :]
    dev = resolve_device(device)
    model.to(dev)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if (amp and dev.type == "cuda") else None
    show = _show_progress(progress)
    sign = 1.0 if mode == "min" else -1.0
    best_score, best_epoch, best_state = math.inf, 0, None
    rows: list[dict[str, float]] = []
    waited = 0
    stopped = False
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        row: dict[str, float] = {"epoch": epoch}
        common = dict(loss_fn=loss_fn, metrics=metrics, device=dev, batch_transform=batch_transform, amp=amp)
        row.update(
            _run_epoch(model, train_loader, optimizer=optimizer, scaler=scaler,
                       desc=f"epoch {epoch}/{epochs}", progress=show, step_scheduler=per_step, **common)
        )
        if val_loader is not None:
            val = _run_epoch(model, val_loader, optimizer=None, scaler=None, desc="validation", progress=show, **common)
            row.update({f"val_{k}": v for k, v in val.items()})
        row["lr"] = float(optimizer.param_groups[0]["lr"])
        row["time_s"] = time.perf_counter() - t0
        rows.append(row)
        if monitor not in row:
            raise KeyError(f"monitor {monitor!r} is not in the history columns {sorted(row)}")
        score = row[monitor]
        if not math.isfinite(best_score) or sign * score < sign * best_score:
            best_score, best_epoch, waited = score, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
            if checkpoint is not None:
                Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
                torch.save({"model": best_state, "epoch": epoch, "score": score}, checkpoint)
        else:
            waited += 1
        if scheduler is not None and per_step is None:
            scheduler.step(score) if scheduler_monitor else scheduler.step()
        if early_stopping is not None and waited >= early_stopping:
            stopped = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    history = pd.DataFrame(rows)
    history["epoch"] = history["epoch"].astype(int)
    return FitResult(model, history, best_epoch, float(best_score), stopped)


def evaluate(
    model: nn.Module,
    loader: Iterable,
    *,
    loss_fn: Callable | None = None,
    metrics: Mapping[str, Metric] | None = None,
    device: Any = "auto",
    batch_transform: BatchTransform | None = None,
) -> dict[str, float]:
    """Sample-weighted mean loss and metrics of ``model`` over ``loader`` (no gradients)."""
    dev = resolve_device(device)
    model.to(dev)
    return _run_epoch(
        model, loader, loss_fn=loss_fn, metrics=dict(metrics or {}), device=dev, optimizer=None,
        batch_transform=batch_transform, amp=False, scaler=None, desc="evaluate", progress=False,
    )


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, *, device: Any = "auto") -> torch.Tensor:
    """Model outputs for every batch of ``loader``, concatenated on the CPU.

    Batches may be ``(x, y)`` pairs (targets ignored) or bare inputs.
    """
    dev = resolve_device(device)
    model.to(dev).eval()
    outs = []
    for batch in loader:
        x = batch[0] if isinstance(batch, (list, tuple)) else batch
        outs.append(model(_to_device(x, dev)).detach().cpu())
    if not outs:
        raise ValueError("predict: the data loader yielded no batches")
    return torch.cat(outs)

