"""Verdict sentences, on hand-computed cases (the studies' former copies' tests live here)."""

from __future__ import annotations

import math

import pytest

from lib.core import verdict as V


def test_compare_sides_with_tolerance_range_and_direction():
    assert V.compare(0.95, 0.92) == V.Comparison("better", pytest.approx(0.03), True)
    assert V.compare(0.80, 0.87, 0.89) == V.Comparison("worse", pytest.approx(0.07), False)
    assert V.compare(0.88, 0.87, 0.89).side == "within"
    assert V.compare(0.894, 0.89, tol=0.005).side == "within"
    assert V.compare(0.9, 0.9).side == "within"  # equal counts as meeting it
    assert V.compare(12.0, 15.0, higher_is_better=False).side == "better"  # an error below the reference
    assert V.compare(16.0, 15.0, higher_is_better=False) == V.Comparison("worse", 1.0, True)


def test_compare_rejects_what_it_cannot_judge():
    with pytest.raises(ValueError, match="must be finite"):
        V.compare(math.nan, 0.9)
    with pytest.raises(ValueError, match="reversed"):
        V.compare(0.9, 0.89, 0.87)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        V.compare(0.9, 0.9, tol=-1)
    with pytest.raises(TypeError, match="value must be a real number"):
        V.compare("0.9", 0.9)


def test_goal():  # nuclei's goal sentences
    assert V.goal(0.887, 0.90, what="F1") == "F1 0.887 falls short of the goal 0.90 by 1.3 points"
    assert V.goal(0.90, 0.90, what="F1") == "F1 0.900 meets the goal 0.90"
    assert V.goal(0.912, 0.90, what="F1") == "F1 0.912 meets the goal 0.90"
    assert V.goal(0.867, 0.8963, what="F1", goal_fmt=".3f") == "F1 0.867 falls short of the goal 0.896 by 2.9 points"
    assert V.goal(14.0, 12.0, what="MAE", value_fmt=".1f", goal_fmt=".1f", scale=1, unit="ml/100 g/min",
                  higher_is_better=False) == "MAE 14.0 falls short of the goal 12.0 by 2.0 ml/100 g/min"


def test_versus():  # nuclei's comparison sentences
    assert V.versus(0.912, 0.866, name_a="A", name_b="B") == "A (0.912) beats B (0.866) by 4.6 points"
    assert V.versus(0.850, 0.866, name_a="A", name_b="B") == "A (0.850) falls short of B (0.866) by 1.6 points"
    assert V.versus(0.870, 0.866, name_a="A", name_b="B") == "A (0.870) is within 1 point of B (0.866)"
    assert V.versus(0.870, 0.866, name_a="A", name_b="B", tol=0.02) == "A (0.870) is within 2 points of B (0.866)"


def test_position():  # radiative's literature sentences, perfusion's map comparison
    assert V.position(0.80, 0.87, 0.89, what="X", tol=0.005) == "below X (by 0.070)"
    assert V.position(0.88, 0.87, 0.89, what="X", tol=0.005) == "within X"
    assert V.position(0.95, 0.92, what="X", tol=0.005) == "above X (by 0.030)"
    assert V.position(97.0, 95.0, what="the goal of 95 %", tol=0.05, fmt=".1f", unit=" points") == \
        "above the goal of 95 % (by 2.0 points)"
    assert V.position(11.2, 12.3, what="oSVD (12.3)", fmt=None, within="within 0 of") == "below oSVD (12.3)"
    assert V.position(12.3, 12.3, what="oSVD (12.3)", fmt=None, within="within 0 of") == "within 0 of oSVD (12.3)"


def test_tolerance():  # pgnaa's gap to the likelihood limit
    assert V.tolerance(0.990, 0.996, 1.0) == "the network is within 1 point of the limit (0.6 points below)"
    assert V.tolerance(0.970, 0.996, 1.0) == \
        "the network falls short of the 1 point goal by 1.6 points (2.6 points below the limit)"
    assert V.tolerance(1.0, 0.99, 2.0) == "the network is within 2 points of the limit (1.0 points above)"
    assert V.tolerance(math.nan, 0.99, 2.0) == "the network cannot be compared with the limit (no value)"


def test_ratio():  # pgnaa's counts for 95 % accuracy
    assert V.ratio(120.0, 100.0, 1.5) == "the network needs 120 counts, 1.20× the limit's 100: within the goal of 1.5×"
    assert V.ratio(150.0, 100.0, 1.5).endswith("within the goal of 1.5×")
    assert "outside the goal of 1.5×" in V.ratio(200.0, 100.0, 1.5)
    assert V.ratio(math.nan, 1000.0, 1.5) == "the network does not reach the target on this grid (the limit does at " \
                                             "1,000 counts)"
    assert V.ratio(10.0, math.inf, 1.5) == "the limit itself does not reach the target on this grid"


def test_spread():
    assert V.spread(0.885, 0.89, 0.005) == "lies within 1 SD of the mean"
    assert V.spread(0.888, 0.90, 0.005) == "lies within 3 SD of the mean"  # z = 2.4, rounded up
    assert V.spread(0.90, 0.90, 0.0) == "lies within 1 SD of the mean"
    assert V.spread(0.91, 0.90, 0.0) == "differs from the mean"
    assert V.gap_in_spread(87.0, 90.0, 1.6) and not V.gap_in_spread(85.0, 90.0, 1.6)
    assert not V.gap_in_spread(91.0, 90.0, 1.6) and not V.gap_in_spread(89.0, 90.0, 0.0)
    with pytest.raises(ValueError, match="sd >= 0"):
        V.spread(1.0, 1.0, -1.0)
