"""The perfusion chapter at the `lab` profile (the book's numbers) reaches the goals of issue 13.

Slow (about 10 CPU-minutes): run with ``make test-all`` or ``pytest -m slow``.
"""

import pytest

from lib.runtime.run import run_study

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def metrics(tmp_path_factory):
    out = tmp_path_factory.mktemp("perfusion_lab")
    return run_study("perfusion", "lab", out=out, progress=False).metrics


def test_enough_test_lesions(metrics):
    assert metrics["n_test_lesions"] >= 30


def test_truth_trained_cnn_lesions_and_ttp(metrics):
    assert metrics["cnn_truth_core_dice"] >= 0.65
    assert metrics["cnn_truth_pen_dice"] >= 0.80
    assert metrics["cnn_truth_ttp_r"] >= 0.90


def test_truth_trained_cnn_maps_beat_deconvolution(metrics):
    for k in ("cbf", "cbv"):
        best = min(metrics[f"{m}_{k}_mae"] for m in ("nlr", "osvd"))
        assert metrics[f"cnn_truth_{k}_mae"] <= best, k
    assert metrics["cnn_truth_ttp_mae"] <= metrics["nlr_ttp_mae"]  # model-free TTP of the filtered curves


def test_papers_measure(metrics):
    # the CNN trained on box-NLR maps against box-NLR's own lesions (paper: 0.79-0.85)
    assert metrics["cnn_nlr_vs_nlr_core_dice"] >= 0.75
    assert metrics["cnn_nlr_vs_nlr_pen_dice"] >= 0.80
    assert metrics["cnn_nlr_vs_nlr_core_r"] > 0.9


@pytest.mark.xfail(strict=False, reason="issue 13 low-dose goal (Dice within 0.05 at 15 mAs) not reached: "
                   "the network is trained at 200 mAs only; see the chapter's goal table")
def test_low_dose_dice_within_005(metrics):
    assert metrics["cnn_truth_core_dice_drop_low_dose"] <= 0.05
    assert metrics["cnn_truth_pen_dice_drop_low_dose"] <= 0.05
