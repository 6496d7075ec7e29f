"""The fused Numba backend of the P1 solver: agreement with the vectorised NumPy code (every mode switch,
every boundary type), thread-count independence, the ``auto`` fallback and its errors.

The agreement with the original C++ program's outputs is tested in ``test_p1.py`` (parametrised over
the backends); here the NumPy backend is the reference, and the two must agree to round-off.
"""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from lib.radiative.dataset import BumpDatasetConfig, build_bump_dataset, m1_opacity  # noqa: E402
from lib.radiative.p1 import (  # noqa: E402
    EDGES,
    Dirichlet,
    Neumann,
    P1Config,
    Ponctuel,
    PowerOpacity,
    numba_unsupported_reason,
    simulate,
)

A = 0.01372


def _assert_same(a, b, *, tol=1e-12):
    """Signals, frames, final fields and times of two results agree to round-off (relative to each field's scale)."""
    for e in EDGES:
        ref = a.edge_signals[e]
        assert b.edge_signals[e].shape == ref.shape and b.edge_signals[e].dtype == ref.dtype
        np.testing.assert_allclose(b.edge_signals[e], ref, rtol=tol, atol=tol * np.abs(ref).max())
    for k, ref in a.final.items():
        np.testing.assert_allclose(b.final[k], ref, rtol=tol, atol=tol * max(np.abs(ref).max(), 1.0))
    if a.frames is None:
        assert b.frames is None
    else:
        np.testing.assert_allclose(b.frames, a.frames, rtol=tol, atol=tol * np.abs(a.frames).max())
    np.testing.assert_array_equal(b.times, a.times)
    np.testing.assert_array_equal(b.frame_steps, a.frame_steps)


CONFIGS = {
    "faithful": P1Config.faithful(),
    "physical": P1Config.physical(),
    "physical_kappa_1/3": P1Config.physical(eddington=1 / 3),
    # switches mixed across the two modes (each one reaches a different branch of the kernel)
    "faithful_Cv_per_direction": P1Config.faithful(heat_capacity="Cv", damping="per_direction", record="after"),
    "physical_previous_aCv": P1Config.physical(fixed_point="previous", heat_capacity="aCv", damping="sum4",
                                               ghost_rho="zero", eddington=0.5),
    "m1_opacity": P1Config.faithful(sigma_a=m1_opacity, sigma_c=PowerOpacity(coef=2.0, p=0, q=2), ghost_rho="copy"),
}

BOUNDARIES = {
    "neumann": None,
    "ponctuel_left": "left",
    "partial_ponctuel_and_dirichlet": {
        "up": Ponctuel(0.3, 0.5, amplitude=3.0, frequency=300.0, T=4.0, Fx=0.1, Fy=-0.2),
        "left": Dirichlet(E=lambda t, s: A * 625 + s + 50.0 * t, T=5.0, Fx=lambda t, s: 0.1 * s),
        "right": Dirichlet(E=A * 500.0, T=4.5, Fy=0.3),
        "down": Neumann(),
    },
}


@pytest.mark.parametrize("bc_name", list(BOUNDARIES))
@pytest.mark.parametrize("cfg_name", list(CONFIGS))
def test_numba_matches_numpy(cfg_name, bc_name):
    """A non-square batch with every mode switch and boundary type: the kernel reproduces the vectorised code."""
    rng = np.random.default_rng(7)
    rho = rng.uniform(0.5, 10, (3, 9, 12))
    kw = dict(config=CONFIGS[cfg_name], n_steps=30, frames=[0, 11, 29], T0=rng.uniform(4.5, 5.5, (3, 9, 12)))
    a = simulate(rho, BOUNDARIES[bc_name], backend="numpy", **kw)
    b = simulate(rho, BOUNDARIES[bc_name], backend="numba", **kw)
    assert (a.backend, b.backend) == ("numpy", "numba")
    # the run must do something, or agreement would be trivial
    assert np.abs(a.final["E"] - a.final["E"].mean()).max() > 1e-3
    _assert_same(a, b)


def test_float32_signals_and_default_backend():
    rho = np.random.default_rng(3).uniform(1, 10, (2, 16, 16))
    a = simulate(rho, "down", backend="numpy", signal_dtype=np.float32, frames=[5])
    b = simulate(rho, "down", signal_dtype=np.float32, frames=[5])  # default "auto" -> numba
    assert b.backend == "numba" and b.backend_reason == ""
    assert b.signals.dtype == np.float32 and b.frames.dtype == np.float32
    np.testing.assert_array_equal(b.signals, a.signals)  # same float64 values, same rounding to float32
    c = simulate(rho, "down", backend="numba", signal_dtype=np.float16, n_steps=5)  # stored as float16
    assert c.signals.dtype == np.float16


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs numba with >= 2 threads")
def test_results_do_not_depend_on_thread_count():
    rho = np.random.default_rng(5).uniform(1, 10, (5, 16, 16))
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = simulate(rho, "left", backend="numba", frames=[10])
        numba.set_num_threads(2)
        two = simulate(rho, "left", backend="numba", frames=[10])
    finally:
        numba.set_num_threads(before)
    for e in EDGES:
        np.testing.assert_array_equal(two.edge_signals[e], one.edge_signals[e])
    np.testing.assert_array_equal(two.frames, one.frames)
    # and each member of the batch equals its own unbatched run
    np.testing.assert_array_equal(two.signals[3], simulate(rho[3], "left", backend="numba").signals[0])


def test_auto_falls_back_for_python_callables_and_numba_names_the_fix():
    cfg = P1Config.faithful(sigma_c=lambda r, T: 10.0)
    reason = numba_unsupported_reason(cfg)
    assert reason is not None and "sigma_c" in reason and "PowerOpacity" in reason
    assert numba_unsupported_reason(P1Config.faithful()) is None
    rho = np.ones((6, 6))
    res = simulate(rho, "left", config=cfg, n_steps=5)
    assert res.backend == "numpy" and res.backend_reason == reason
    with pytest.raises(TypeError, match="PowerOpacity"):
        simulate(rho, "left", config=cfg, n_steps=5, backend="numba")
    # the same law written as a PowerOpacity runs in the kernel and gives the same result
    fast = simulate(rho, "left", config=P1Config.faithful(sigma_c=PowerOpacity(coef=10.0, p=0, q=0)), n_steps=5)
    assert fast.backend == "numba"
    _assert_same(res, fast)


def test_power_opacity_values_and_validation():
    rng = np.random.default_rng(0)
    rho, T = rng.uniform(0.1, 3, 50), rng.uniform(1, 6, 50)
    np.testing.assert_array_equal(PowerOpacity()(rho, T), rho * T)
    r = 10.0 * rho
    np.testing.assert_array_equal(m1_opacity(rho, T), T * (r * r * r))
    np.testing.assert_allclose(PowerOpacity(coef=2.5, scale=0.5, p=2, q=3)(rho, T), 2.5 * (0.5 * rho) ** 2 * T**3,
                               rtol=1e-14)
    assert PowerOpacity(coef=4.0, p=0, q=0)(rho, T) == 4.0
    for bad in (dict(p=1.5), dict(q=-1), dict(coef=float("nan")), dict(scale=-1.0), dict(p=True)):
        with pytest.raises(ValueError, match="PowerOpacity"):
            PowerOpacity(**bad)


def test_numba_errors_are_clear():
    rho = np.ones((6, 6))
    with pytest.raises(RuntimeError, match="did not converge"):
        simulate(rho, "left", config=P1Config.faithful(max_iter=1), n_steps=3, backend="numba")
    with pytest.raises(RuntimeError, match="did not converge"):  # same rule in the vectorised code
        simulate(rho, "left", config=P1Config.faithful(max_iter=1), n_steps=3, backend="numpy")
    with pytest.raises(ValueError, match="CPU only"):
        simulate(rho, backend="numba", device="cuda")
    with pytest.raises(TypeError, match="Neumann, Dirichlet or Ponctuel"):
        simulate(rho, {"up": "open"}, backend="numba")


def test_bump_dataset_same_with_numba_and_numpy():
    cfg = dict(n_samples=3, size=12, n_time=6, opacity="m1", sim_batch=2)
    a = build_bump_dataset(BumpDatasetConfig(backend="numpy", **cfg), cache=False, progress=False)
    b = build_bump_dataset(BumpDatasetConfig(backend="numba", **cfg), cache=False, progress=False)
    np.testing.assert_array_equal(b.x_raw, a.x_raw)
    assert np.ptp(a.x_raw) > 0
