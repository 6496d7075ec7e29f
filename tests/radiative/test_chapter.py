"""Run the radiative-transfer chapter at the ci profile and check its headline numbers; a slow test runs
``lab`` and checks the goals of the study.

Thresholds are set so that a network that learned nothing fails them: predicting the mean training map
scores R² ~ 0 (``rt_test_r2_mean_baseline``), a bump regressor that predicts the mean bump has a custom
score of a few percent, and a classifier that always answers "no" has a severe score equal to the share
of bumps outside every source (~0 %).
"""

from __future__ import annotations

import math

import pytest

from lib.runtime.run import run_study


@pytest.fixture(scope="module")
def ci_metrics(tmp_path_factory):
    res = run_study("radiative", "ci", out=tmp_path_factory.mktemp("rt-ci"), progress=False)
    assert len(res.figures) >= 7
    return res.metrics


def test_ci_all_finite(ci_metrics):
    assert all(math.isfinite(v) for v in ci_metrics.values())


def test_ci_solver_checks(ci_metrics):
    m = ci_metrics
    assert m["rt_equilibrium_max_dev"] < 1e-12
    assert m["rt_relax_T_faithful"] == pytest.approx(5.983584, abs=1e-5)  # the original binary's 0-D value
    assert m["rt_relax_T_physical"] == pytest.approx(5.41608, abs=1e-5)
    assert 0.75 < m["rt_convergence_order"] < 1.3  # first-order scheme
    assert m["rt_faithful_physical_maxdiff_E"] > 1e-3  # the quirks change the signals


def test_ci_agreement_with_original_program(ci_metrics):
    # the reference outputs ship with the project (lib/radiative/reference/): the comparison runs everywhere
    assert ci_metrics["rt_frames16_max_rel_err"] < 1e-5
    assert ci_metrics["rt_signals16_max_rel_err"] < 1e-5
    assert ci_metrics["rt_signals32_max_rel_err"] < 1e-5


def test_ci_inverse_problem(ci_metrics):
    m = ci_metrics
    assert m["rt_n_test_maps"] == 4 * m["rt_n_test_densities"]  # rotations of the held-out densities
    assert abs(m["rt_test_r2_mean_baseline"]) < 0.2
    assert m["rt_test_r2"] > 0.5  # a useless (mean-map) model scores ~0
    assert m["rt_test_relative_l2"] < 0.3
    assert m["rt_test_ssim"] > 0.4
    assert m["rt_val_r2"] > 0.4
    assert {"rt_test_r2_24ch", "rt_test_r2_12ch", "rt_test_r2_on_physical", "rt_test_r2_milletari"} <= set(m)
    # noise: the clean model degrades with noise; the noise-aware model does better at 3 %
    # noise is scored on the unrotated test densities: at level 0 that is the unrotated test R²
    assert m["rt_test_r2_noise_0permil"] == pytest.approx(m["rt_test_r2_unrotated"], abs=1e-6)
    assert m["rt_test_r2_noise_30permil"] < m["rt_test_r2_noise_0permil"]
    assert m["rt_test_r2_noise_30permil_aware"] > m["rt_test_r2_noise_30permil"]
    assert m["rt_sim_ms_per_run"] > 0
    assert "rt_sim_speedup_vs_cpp" not in m or m["rt_sim_speedup_vs_cpp"] > 1  # only from a record


def test_ci_bump_cnn(ci_metrics):
    m = ci_metrics
    assert 0 <= m["rt_bump_score"] <= 100 and m["rt_bump_n_test"] >= 2
    # the notebook's Keras R² is lenient (the mean-label predictor scores well above 0 on it): ask for a margin
    assert m["rt_bump_keras_r2_pct"] > m["rt_bump_keras_r2_mean_predictor_pct"] + 10
    assert m["rt_bump_r2_mean"] > 0.3  # per-target R², averaged over x, y, height: the mean predictor scores 0
    assert 0 <= m["rt_class_binary_accuracy"] <= 100 and m["rt_class_n_test"] >= 2


@pytest.fixture(scope="module")
def lab_metrics(tmp_path_factory):
    return run_study("radiative", "lab", out=tmp_path_factory.mktemp("radiative_lab"), progress=False).metrics


@pytest.mark.slow
def test_lab_results(lab_metrics):
    """What the default profile reaches, with a margin that a model that learned nothing fails."""
    m = lab_metrics
    assert m["rt_grid"] == 64 and m["rt_n_test_densities"] >= 200 and m["rt_bump_n_test"] >= 200
    assert m["rt_test_r2"] > 0.8 and m["rt_test_r2"] > m["rt_test_r2_mean_baseline"] + 0.6
    assert m["rt_test_r2"] > m["rt_test_r2_milletari"]
    assert m["rt_test_r2_noise_10permil_aware"] > 0.4 > m["rt_test_r2_noise_10permil"]
    assert m["rt_bump_score"] > 70 and m["rt_bump_keras_r2"] > 0.3
    assert m["rt_class_binary_accuracy"] > 80


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason="issue 12 goals, lab run of 2026-12-04 (1000 densities: 700 train, "
                   "200 test densities = 800 maps, 5 one-cycle epochs): V-Net test R2 0.888 (goal 0.92) and bump custom "
                   "score 83.5 +- 1.3 % over 3 seeds (90 %) missed; bump Keras R2 0.975 (0.95) and noise-aware R2 "
                   "at 1 % 0.844 (0.8) met")
def test_lab_goals(lab_metrics):
    """The issue's goals at the default profile (the chapter states the gaps that remain)."""
    m = lab_metrics
    goals = {
        "V-Net test R2 >= 0.92 on >= 200 held-out densities": m["rt_test_r2"] >= 0.92 and m["rt_n_test_densities"] >= 200,
        "bump Keras R2 >= 0.95": m["rt_bump_keras_r2"] >= 0.95,
        "bump custom score >= 90 %": m["rt_bump_score"] >= 90,
        "noise-aware R2 >= 0.8 at 1 % noise": m["rt_test_r2_noise_10permil_aware"] >= 0.8,
    }
    missed = [k for k, ok in goals.items() if not ok]
    assert not missed, f"lab goals missed: {missed} ({ {k: m[k] for k in m if k.startswith(('rt_test_r2', 'rt_bump'))} })"
