import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from lib.core.train import evaluate, fit, predict, seeded_loader


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.3
    return TensorDataset(x, y)


def _fit(seed=0, **kw):
    torch.manual_seed(seed)
    model = nn.Linear(3, 1)
    train = seeded_loader(_data(), batch_size=16, shuffle=True, seed=seed)
    val = seeded_loader(_data(64, seed=1), batch_size=32, shuffle=False, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    return fit(model, train, loss_fn=nn.functional.mse_loss, optimizer=opt, val_loader=val, device="cpu",
               progress=False, **kw)


def test_fit_learns_a_linear_map_and_reports_history():
    mae = {"mae": lambda out, y: (out - y).abs().mean().item()}
    res = _fit(epochs=30, metrics=mae)
    assert isinstance(res.history, pd.DataFrame)
    assert list(res.history.columns) == ["epoch", "loss", "mae", "val_loss", "val_mae", "lr", "time_s"]
    assert res.history["val_loss"].iloc[-1] < 1e-2 < res.history["val_loss"].iloc[0]
    assert res.best_epoch == int(res.history["val_loss"].idxmin()) + 1
    w = res.model.weight.detach().squeeze()
    assert torch.allclose(w, torch.tensor([1.0, -2.0, 0.5]), atol=0.05)


def test_fit_is_deterministic_under_a_seed():
    a, b = _fit(seed=3, epochs=3), _fit(seed=3, epochs=3)
    pd.testing.assert_frame_equal(a.history.drop(columns="time_s"), b.history.drop(columns="time_s"))


def test_best_weights_are_restored_and_checkpointed(tmp_path):
    ckpt = tmp_path / "best.pt"
    res = _fit(epochs=5, checkpoint=ckpt)
    saved = torch.load(ckpt)
    assert saved["epoch"] == res.best_epoch
    for k, v in res.model.state_dict().items():
        assert torch.equal(v, saved["model"][k])


def test_early_stopping_and_scheduler():
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)  # no learning: no improvement after epoch 1
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train = seeded_loader(_data(), batch_size=32, shuffle=False, seed=0)  # same order: identical losses
    res = fit(model, train, loss_fn=nn.functional.mse_loss, optimizer=opt, epochs=50, early_stopping=2,
              scheduler=sched, device="cpu", progress=False)
    assert res.stopped_early and len(res.history) == 3 and res.best_epoch == 1
    assert res.history.columns.tolist()[:2] == ["epoch", "loss"]  # no validation: monitors the training loss


def test_batch_transform_runs_on_every_batch():
    seen = []

    def transform(x, y):
        seen.append(x.shape[0])
        return x * 0, y

    res = _fit(epochs=1, batch_transform=transform)
    assert sum(seen) == 128 + 64
    assert res.history["loss"].iloc[0] > 0


def test_evaluate_and_predict():
    res = _fit(epochs=20)
    loader = seeded_loader(_data(64, seed=1), batch_size=10, shuffle=False, seed=0)
    out = evaluate(res.model, loader, loss_fn=nn.functional.mse_loss, device="cpu")
    assert out["loss"] == pytest.approx(res.history["val_loss"].iloc[res.best_epoch - 1], rel=1e-5)
    pred = predict(res.model, loader, device="cpu")
    assert pred.shape == (64, 1) and pred.device.type == "cpu"


@pytest.mark.parametrize(("kw", "exc"), [({"epochs": 0}, ValueError), ({"epochs": 2, "mode": "best"}, ValueError),
                                         ({"epochs": 2, "monitor": "val_acc"}, KeyError)])
def test_fit_argument_errors(kw, exc):
    with pytest.raises(exc):
        _fit(**kw)


def test_diverging_loss_is_reported():
    model = nn.Linear(3, 1)
    train = seeded_loader(_data(), batch_size=16, shuffle=True, seed=0)
    with pytest.raises(FloatingPointError, match="lower the learning rate"):
        fit(model, train, loss_fn=lambda o, y: (o - y).pow(2).mean() * float("nan"), epochs=1, device="cpu",
            progress=False)


def test_array_loader_keeps_order_shuffles_by_seed_and_rejects_ragged_arrays():
    import numpy as np
    import pytest

    from lib.core.train import array_loader

    x = np.arange(10, dtype=np.float32)[:, None]
    y = np.arange(10)
    plain = torch.cat([b[1] for b in array_loader(x, y, batch_size=3)])
    assert plain.tolist() == list(range(10))  # evaluation order kept
    first = torch.cat([b[1] for b in array_loader(x, y, batch_size=3, shuffle=True, seed=4)])
    again = torch.cat([b[1] for b in array_loader(x, y, batch_size=3, shuffle=True, seed=4)])
    other = torch.cat([b[1] for b in array_loader(x, y, batch_size=3, shuffle=True, seed=5)])
    assert first.tolist() == again.tolist() != list(range(10))
    assert sorted(first.tolist()) == list(range(10)) and other.tolist() != first.tolist()
    for xb, yb in array_loader(x, y, batch_size=4, shuffle=True, seed=1):
        assert torch.equal(xb[:, 0].long(), yb)  # rows stay paired
    with pytest.raises(ValueError, match="different lengths"):
        array_loader(x, y[:5], batch_size=2)
