"""Tests of the radiative-transfer dataset builder."""

from __future__ import annotations

import numpy as np
import pytest

from lib.radiative import dataset as R
from lib.radiative.p1 import simulate


def test_time_indices_authors_rule():
    idx = R.time_indices(383, 64)
    assert len(idx) == 64 and idx[0] == 0 and idx[1] == 5 and idx[2] == 11 and idx[-1] == 377
    np.testing.assert_array_equal(R.time_indices(192, 32), np.arange(0, 192, 6))
    with pytest.raises(ValueError):
        R.time_indices(10, 20)


def test_channel_indices():
    assert list(R.channel_indices(48)) == list(range(48))
    c24 = R.channel_indices(24)
    # source up (0): up edge (0) then down edge (1); source left (2): left (2) then right (3)
    assert list(c24[:6]) == [0, 1, 2, 3, 4, 5]
    assert list(c24[12:18]) == [12 * 2 + 3 * 2 + c for c in range(3)] + [12 * 2 + 3 * 3 + c for c in range(3)]
    c12 = R.channel_indices(12)
    assert list(c12[:3]) == [3, 4, 5] and list(c12[6:9]) == [24 + 9, 24 + 10, 24 + 11]
    with pytest.raises(ValueError, match="n_channels"):
        R.channel_indices(36)


def test_assemble_layout():
    sig = np.arange(2 * 4 * 4 * 3 * 10 * 5, dtype=float).reshape(2, 4, 4, 3, 10, 5)
    x = R.assemble_inputs(sig, np.array([0, 3, 6]))
    assert x.shape == (2, 48, 3, 5)
    s, m, c = 2, 3, 1
    np.testing.assert_array_equal(x[1, 12 * s + 3 * m + c], sig[1, s, m, c][[0, 3, 6]])


def test_build_small_dataset_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIES_CACHE_DIR", str(tmp_path))
    cfg = R.RTDatasetConfig(n_densities=3, size=16, seed=5, sim_batch=2)
    ds = R.build_dataset(cfg, progress=False)
    assert ds.x_raw.shape == (3, 48, 16, 16) and ds.rho.shape == (3, 16, 16)
    assert ds.path is not None and ds.path.parent == tmp_path / "radiative"
    # inputs equal a direct simulation (source left = index 2) at the subsampled steps
    direct = simulate(ds.rho[1], "left").signals[0]
    idx = R.time_indices(96, 16)
    np.testing.assert_allclose(ds.x_raw[1, 24:36].reshape(4, 3, 16, 16), direct[:, :, idx], rtol=1e-6)
    assert not ds.cached and ds.seconds > 0
    again = R.build_dataset(cfg, progress=False)
    assert again.cached and again.seconds == ds.seconds  # the build's time travels with the cache
    np.testing.assert_array_equal(again.x_raw, ds.x_raw)
    # fixed normalisation: a sample's normalised input does not depend on the rest of the batch
    np.testing.assert_array_equal(ds.inputs(24)[:1], R.normalise_inputs(ds.x_raw[:1, R.channel_indices(24)]))
    y = ds.targets()
    assert y.shape == (3, 1, 16, 16) and 0 < y.min() and y.max() <= 1
    np.testing.assert_allclose(R.denormalise_density(y[:, 0]), ds.rho, rtol=1e-6)
    assert R.RTDatasetConfig(n_densities=3, size=16, seed=6).key() != cfg.key()
    assert R.RTDatasetConfig(n_densities=3, size=16, seed=5, sim_batch=99).key() == cfg.key()


def test_config_errors():
    with pytest.raises(ValueError, match="mode"):
        R.RTDatasetConfig(mode="exact")
    with pytest.raises(TypeError):
        R.build_dataset({"n_densities": 3})


def test_bump_dataset_small(tmp_path, monkeypatch):
    monkeypatch.setenv("STUDIES_CACHE_DIR", str(tmp_path))
    cfg = R.BumpDatasetConfig(n_samples=2, size=12, n_time=12, seed=1)
    ds = R.build_bump_dataset(cfg, progress=False)
    assert ds.x_raw.shape == (2, 48, 12, 12) and ds.labels.shape == (2, 3)
    assert np.all((ds.labels[:, :2] >= 0.2) & (ds.labels[:, :2] <= 0.8))
    np.testing.assert_allclose(ds.labels[:, 2], ds.rho.max(axis=(1, 2)))
    assert np.all(np.isfinite(ds.inputs()))
    again = R.build_bump_dataset(cfg, progress=False)
    assert again.cached and again.seconds == ds.seconds and np.array_equal(again.x_raw, ds.x_raw)


def test_standardise_by_train():
    rng = np.random.default_rng(0)
    x = (5 + 0.01 * rng.normal(size=(10, 3, 4, 4))).astype(np.float32)
    xs, stats = R.standardise_by_train(x, np.arange(6))
    assert stats["mean"].shape == (1, 3, 4, 4) and stats["std"].shape == (1, 3, 1, 1)
    np.testing.assert_allclose(xs[:6].mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(xs[:6].std(axis=(0, 2, 3)), 1, rtol=1e-3)
    np.testing.assert_allclose(R.apply_standardisation(x[6:], stats), xs[6:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError):
        R.standardise_by_train(x[:, 0], np.arange(6))


def test_standardise_by_train_in_place_in_chunks_against_float64():
    # a perturbation of 1e-4 on a common response of 5: a float32 running sum would lose it
    rng = np.random.default_rng(1)
    x = (5 + 1e-4 * rng.normal(size=(700, 2, 3, 5))).astype(np.float32)
    train = rng.permutation(700)[:500]
    x64 = x.astype(np.float64)
    mean = x64[train].mean(0, keepdims=True)
    std = np.sqrt(((x64[train] - mean) ** 2).mean(axis=(0, 2, 3), keepdims=True)) + 1e-8  # its guard against 0
    ref = (x64 - mean) / std
    copy, stats = R.standardise_by_train(x, train, chunk=64)
    np.testing.assert_allclose(stats["std"], std, rtol=1e-5)
    np.testing.assert_allclose(copy, ref, atol=1e-6, rtol=1e-6)  # rounded once, to float32
    assert copy is not x and x[0, 0, 0, 0] > 4  # the input is left alone
    same, _ = R.standardise_by_train(x, train, in_place=True, chunk=64)
    assert same is x
    np.testing.assert_array_equal(x, copy)
    with pytest.raises(ValueError, match="writeable float32"):
        R.standardise_by_train(x64, train, in_place=True)


def test_cache_without_stored_time_is_rebuilt(tmp_path, monkeypatch):
    """A cache written before the build time was stored is simulated again (so the time metric is always real)."""
    monkeypatch.setenv("STUDIES_CACHE_DIR", str(tmp_path))
    cfg = R.RTDatasetConfig(n_densities=2, size=12, seed=3)
    ds = R.build_dataset(cfg, progress=False)
    with np.load(ds.path) as z:
        np.savez(ds.path, **{k: z[k] for k in z.files if k != "seconds"})
    again = R.build_dataset(cfg, progress=False)
    assert not again.cached and again.seconds > 0 and np.array_equal(again.x_raw, ds.x_raw)
    with np.load(ds.path) as z:
        assert "seconds" in z.files
