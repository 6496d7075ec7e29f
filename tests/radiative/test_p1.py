"""Tests of the P1 + matter solver against the authors' C++ program and analytic results."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from lib.core import registry
from lib.radiative.p1 import (
    EDGES,
    Dirichlet,
    Neumann,
    P1Config,
    Ponctuel,
    equilibrium_temperature_0d,
    rotate_density,
    simulate,
    source_boundaries,
    step_count,
)

A = 0.01372


def _rt_root():
    try:
        return registry.fetch("rt-reference", download=False)
    except registry.DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"reference outputs of the original C++ solver are not available: {err}")


def _reference_density(n: int) -> np.ndarray:
    from lib.radiative.densities import reference_density

    return reference_density(n)


def test_reference_density_peaks_where_the_reference_runs_put_them():
    from lib.radiative.densities import reference_density

    rho = reference_density(100)  # cell centres 0.005, 0.015, ...: (0.305, 0.655) is cell (65, 30) in (y, x)
    assert rho.shape == (100, 100) and rho.min() == pytest.approx(1.0, abs=1e-6)
    assert np.unravel_index(rho.argmax(), rho.shape) in {(64, 29), (65, 30), (64, 30), (65, 29)}
    assert rho.max() == pytest.approx(4.0, abs=0.02) and rho[30, 70] == pytest.approx(3.0, abs=0.02)
    with pytest.raises(ValueError, match="positive int grid size"):
        reference_density(0)


# ------------------------------------------------------------------ agreement with the original program
SOLVERS = ["numpy", "numba"]  # the vectorised code and the fused kernel (the default "auto" picks numba)


@pytest.mark.parametrize("backend", SOLVERS)
def test_faithful_matches_case16_every_step(backend):
    root = _rt_root()
    rho = np.flipud(np.load(root / "case16" / "rho_input.npy"))
    np.testing.assert_array_equal(rho, _reference_density(16))
    frames = np.load(root / "case16" / "frames_left.npy")  # (96, 5, 16, 16), 6 significant digits
    res = simulate(rho, "left", mode="faithful", frames="all", backend=backend)
    assert res.backend == backend
    ours = res.frames[0]
    assert ours.shape[0] == frames.shape[0] == 96
    for ch in range(4):  # E, Fx, Fy, T
        scale = np.abs(frames[:, ch]).max()
        np.testing.assert_allclose(ours[:, ch], frames[:, ch], rtol=1e-5, atol=1e-5 * scale)
    final = np.load(root / "case16" / "final_left.npy")
    for ch, name in enumerate(("E", "Fx", "Fy", "T")):
        np.testing.assert_allclose(res.final[name][0], final[ch], rtol=1e-5, atol=1e-5 * np.abs(final[ch]).max())


@pytest.mark.parametrize("backend", SOLVERS)
@pytest.mark.parametrize("case,n_steps", [("case16", 96), ("case32", 192)])
def test_faithful_signals_match_reference_all_source_edges(case, n_steps, backend):
    root = _rt_root()
    rho = np.flipud(np.load(root / case / "rho_input.npy"))
    ref = np.load(root / case / "signals.npy")  # (src, measured, ch, step, pos), float32
    assert ref.shape[3] == n_steps == step_count(rho.shape[0])
    for s, edge in enumerate(EDGES):
        sig = simulate(rho, edge, mode="faithful", backend=backend).signals[0]
        assert sig.shape == ref[s].shape
        rel = np.abs(sig - ref[s]).max() / np.abs(ref[s]).max()
        assert rel <= 1e-5, (case, edge, rel)
        np.testing.assert_allclose(sig, ref[s], rtol=1e-5, atol=1e-6)


def test_convergence_table_and_first_order():
    """Reproduce the mesh-convergence table (computed from the C++ runs at N=16/32/64) and the order."""
    root = _rt_root()
    table = np.loadtxt(root / "convergence_signals_left_source.csv", delimiter=",")
    coarse = {}
    for n in (16, 32, 64):
        sig = simulate(_reference_density(n), "left").signals[0]
        f = n // 16
        coarse[n] = sig[:, :, : 96 * f : f].reshape(4, 3, 96, 16, f).mean(-1)
    rows = [(3, 0), (3, 1), (3, 2), (0, 0), (0, 1), (0, 2), (2, 0), (2, 1), (2, 2)]  # (edge, channel)
    orders = []
    for k, (e, c) in enumerate(rows):
        d1 = np.abs(coarse[16][e, c] - coarse[32][e, c]).mean()
        d2 = np.abs(coarse[32][e, c] - coarse[64][e, c]).mean()
        np.testing.assert_allclose([d1, d2], table[k, :2], rtol=2e-3)
        orders.append(np.log2(d1 / d2))
    assert np.median(orders) >= 0.8


# ------------------------------------------------------------------ analytic / structural properties
@pytest.mark.parametrize("mode", ["faithful", "physical"])
def test_equilibrium_preserved(mode):
    rho = np.random.default_rng(0).uniform(1, 10, (2, 12, 12))
    res = simulate(rho, None, mode=mode, n_steps=20)
    np.testing.assert_allclose(res.final["E"], A * 5.0**4, rtol=1e-13)
    np.testing.assert_allclose(res.final["T"], 5.0, rtol=1e-13)
    np.testing.assert_allclose(res.final["Fx"], 0.0, atol=1e-13)


@pytest.mark.parametrize("mode,expected", [("faithful", 5.983584), ("physical", 5.41608)])
def test_zero_d_relaxation(mode, expected):
    cfg = P1Config.from_mode(mode, t_f=0.002)
    E0 = A * 6.0**4
    res = simulate(np.full((8, 8), 100.0), None, config=cfg, E0=E0, T0=5.0)
    T = res.final["T"][0]
    assert np.ptp(T) < 1e-12
    assert T.mean() == pytest.approx(expected, abs=2e-6)
    assert T.mean() == pytest.approx(equilibrium_temperature_0d(E0, 5.0, 100.0, config=cfg), abs=2e-6)
    if mode == "faithful":
        assert res.final["E"][0].mean() == pytest.approx(17.5873, abs=1e-4)
        # step 1 conserves E + rho a C_v T (to the fixed-point tolerance)
        total = res.final["E"][0] + 100.0 * A * cfg.C_v * T
        np.testing.assert_allclose(total, E0 + 100.0 * A * cfg.C_v * 5.0, rtol=1e-6)


@pytest.mark.parametrize("mode,expected", [("faithful", 0.0611348), ("physical", 0.3767147)])
def test_flux_relaxation(mode, expected):
    cfg = P1Config.from_mode(mode, sigma_a=lambda r, T: 0.0, sigma_c=lambda r, T: 10.0)
    res = simulate(np.ones((8, 8)), None, config=cfg, F0=(1.0, 0.0), n_steps=3)
    np.testing.assert_allclose(res.final["Fx"], expected, rtol=1e-6)
    # closed form (1 + c dt S)^-3 with S = 4 M sigma (code) or M sigma (per direction)
    dx = 1 / 8
    M = 2 / (2 + dx * 10.0)
    S = 4 * M * 10 if mode == "faithful" else M * 10
    np.testing.assert_allclose(res.final["Fx"], (1 + cfg.c * res.dt * S) ** -3, rtol=1e-12)


def test_rotation_equivariance():
    rho = _reference_density(16) * np.random.default_rng(1).uniform(0.8, 1.2, (16, 16))
    top = simulate(rho, "up").signals[0]
    left_rot = simulate(rotate_density(rho), "left").signals[0]
    up, down, left, right = range(4)
    np.testing.assert_allclose(left_rot[left], top[up], atol=1e-9)
    np.testing.assert_allclose(left_rot[right], top[down], atol=1e-9)
    np.testing.assert_allclose(left_rot[up], top[right][..., ::-1], atol=1e-9)
    np.testing.assert_allclose(left_rot[down], top[left][..., ::-1], atol=1e-9)


def test_mirror_symmetry_uniform_density():
    sig = simulate(np.ones((16, 16)), "left").signals[0]
    np.testing.assert_allclose(sig[0], sig[1], atol=1e-12)


def test_batched_equals_individual():
    rng = np.random.default_rng(2)
    rho = rng.uniform(1, 10, (3, 8, 8))
    batched = simulate(rho, "right", n_steps=15).signals
    for b in range(3):
        np.testing.assert_allclose(batched[b], simulate(rho[b], "right", n_steps=15).signals[0], rtol=0, atol=1e-12)


def _pulse(n: int, width: float = 0.06):
    x = (np.arange(n) + 0.5) / n
    X, Y = np.meshgrid(x, x)
    return np.exp(-((X - 0.5) ** 2 + (Y - 0.5) ** 2) / (2 * width**2)), X, Y


@pytest.mark.parametrize("mode,kappa", [("faithful", 1.0), ("physical", 1 / 3)])
def test_diffusion_limit_and_conservation(mode, kappa):
    """AP limit: with sigma dx >> 1 the scheme diffuses a Gaussian with D -> kappa c / sigma."""
    n, c = 32, 1000.0
    dx = 1 / n
    ratios = []
    for sdx in (31.0, 312.0):
        sigma = sdx / dx
        kw = dict(c=c, sigma_a=lambda r, T: 0.0, sigma_c=lambda r, T, s=sigma: s)
        cfg = P1Config.faithful(**kw) if mode == "faithful" else P1Config.physical(eddington=kappa, **kw)
        E0, X, Y = _pulse(n)
        D_exact = kappa * c / sigma
        t_run = 0.002 / D_exact  # variance grows by 2 D t = 0.004 per axis
        steps = int(round(t_run / (cfg.cfl * dx / c)))
        res = simulate(np.ones((n, n)), None, config=cfg, E0=E0, n_steps=steps)
        E = res.final["E"][0]
        np.testing.assert_allclose(E.sum(), E0.sum(), rtol=1e-6)  # conservation (pulse far from walls)

        def var(f):
            w = f / f.sum()
            return ((X - 0.5) ** 2 * w).sum()

        D_num = (var(E) - var(E0)) / (2 * steps * res.dt)
        ratios.append(D_num / D_exact)
    assert 0.9 < ratios[0] < 1.0
    assert abs(ratios[1] - 1) < abs(ratios[0] - 1)
    assert abs(ratios[1] - 1) < 0.02


def test_dirichlet_callable_and_partial_ponctuel():
    bcs = {"left": Dirichlet(E=lambda t, s: A * 625 + s, T=5.0), "up": Ponctuel(0.3, 0.5)}
    res = simulate(np.ones((2, 10, 10)), bcs, n_steps=30)
    assert np.all(np.isfinite(res.signals))
    # a partial source only lights part of the up edge early on: positions far from [0.3, 0.5] stay calmer
    up_E = res.signals[0, 0, 0]
    assert np.abs(up_E[5:, 3:5] - A * 625).max() > np.abs(up_E[5:, 8:] - A * 625).max()


def test_integer_step_loop_when_tf_over_dt_is_integer():
    # N=32, c=1000, t_f=0.02 crashed the original program (while t <= t_f); here it is exactly 1280 steps
    cfg = P1Config.faithful(c=1000.0, t_f=0.02)
    assert step_count(32, cfg) == 1280
    res = simulate(np.ones((32, 32)), "left", config=cfg, n_steps=5)
    assert res.signals.shape == (1, 4, 3, 5, 32)


def test_record_after_in_physical_mode():
    res = simulate(np.ones((8, 8)), "left", mode="physical", n_steps=4)
    assert res.times[0] == pytest.approx(res.dt)
    res_f = simulate(np.ones((8, 8)), "left", mode="faithful", n_steps=4)
    assert res_f.times[0] == 0.0


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(ValueError, match="rho must have shape"):
        simulate(np.ones(5))
    with pytest.raises(ValueError, match="non-negative"):
        simulate(-np.ones((4, 4)))
    with pytest.raises(ValueError, match="Unknown edge"):
        simulate(np.ones((4, 4)), {"top": Neumann()})
    with pytest.raises(ValueError, match="Unknown edge"):
        source_boundaries("north")
    with pytest.raises(ValueError, match="mode"):
        simulate(np.ones((4, 4)), mode="exact")
    with pytest.raises(ValueError, match="eddington"):
        P1Config.physical(eddington=3.0)
    with pytest.raises(ValueError, match="start <= end"):
        Ponctuel(0.6, 0.2)
    with pytest.raises(ValueError, match="frame steps"):
        simulate(np.ones((4, 4)), n_steps=3, frames=[5])
    assert dataclasses.replace(P1Config.faithful(), cfl=0.25).cfl == 0.25


@pytest.mark.parametrize("other", ["torch", "numba"])
def test_torch_backend_matches_reference_and_numpy(other):
    if other == "torch":
        pytest.importorskip("torch")
    root = _rt_root()
    rho = np.flipud(np.load(root / "case16" / "rho_input.npy"))
    ref = np.load(root / "case16" / "signals.npy")
    sig = simulate(rho, "left", backend=other, device="cpu").signals[0]
    np.testing.assert_allclose(sig, ref[2], rtol=1e-5, atol=1e-6)
    cfg = P1Config.physical(eddington=1 / 3)
    rng = np.random.default_rng(4)
    rho_b = rng.uniform(1, 10, (2, 8, 8))
    a = simulate(rho_b, "up", config=cfg, n_steps=20, frames=[3], backend="numpy")
    b = simulate(rho_b, "up", config=cfg, n_steps=20, frames=[3], backend=other)
    np.testing.assert_allclose(b.signals, a.signals, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(b.frames, a.frames, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="backend"):
        simulate(rho_b, backend="jax")
    with pytest.raises(ValueError, match="CPU only"):
        simulate(rho_b, device="cuda")
