"""Verdicts: compare a number with a goal or a reference and say it in a sentence.

Every verdict the book prints is computed, never typed: a chapter passes this run's value and the goal
or reference it answers to, and glues the sentence (:func:`lib.core.report.text`). One comparison,
:func:`compare`, decides the side (better, within the tolerance, worse) for a single reference or a
range, with higher or lower being better; the sentence functions phrase it:

* :func:`goal` -- ``"pooled F1 0.887 falls short of the goal 0.90 by 1.3 points"`` / ``"... meets the goal 0.90"``;
* :func:`versus` -- ``"A (0.912) beats B (0.866) by 4.6 points"`` / ``"is within 1 point of"`` / ``"falls short of"``;
* :func:`position` -- ``"below the authors' 0.87-0.89 (by 0.070)"`` / ``"within ..."`` / ``"above ..."``;
* :func:`tolerance` -- ``"the network is within 1 point of the limit (0.4 points below)"`` or
  ``"the network falls short of the 1 point goal by 0.7 points (1.7 points below the limit)"``;
* :func:`ratio` -- ``"the network needs 1,200 counts, 1.20x the limit's 1,000: within the goal of 1.5x"``;
* :func:`spread` -- where a value lies relative to a seed spread (``"within 2 SD of the mean"``,
  ``"a gap within two SDs of the spread between trainings (1.3 points)"``).

Differences of scores in [0, 1] are given in points (x100) where the functions say so (``scale``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Comparison", "compare", "goal", "versus", "position", "tolerance", "ratio", "spread", "gap_in_spread"]


@dataclass(frozen=True)
class Comparison:
    """The outcome of :func:`compare`.

    Attributes
    ----------
    side : {"better", "within", "worse"}
        Beyond the reference in the better direction, within the tolerance of it, or beyond it in the
        worse direction.
    gap : float
        Distance from the nearest end of the reference (0 when ``side == "within"``), always >= 0.
    above : bool
        Whether the value is above the reference's upper end plus the tolerance (as opposed to below its
        lower end minus the tolerance); meaningless when ``side == "within"``.
    """

    side: str
    gap: float
    above: bool


def _real(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise TypeError(f"verdict: {name} must be a real number, got {type(value).__name__}")
    return float(value)


def compare(value: float, reference: float, upper: float | None = None, *, tol: float = 0.0,
            higher_is_better: bool = True, scale: float = 1.0) -> Comparison:
    """Compare ``value`` with a reference value or the range ``[reference, upper]``.

    Parameters
    ----------
    value : float
        This run's number (finite).
    reference : float
        The goal or reference value, or the lower end of a reference range.
    upper : float, optional
        The upper end of a reference range (``>= reference``).
    tol : float, default 0.0
        Distances up to ``tol`` from the reference (or outside the range) count as "within".
    higher_is_better : bool, default True
        Which side is "better".
    scale : float, default 1.0
        The unit the sentence shows differences in (100: points of a score in [0, 1]); the test is
        ``scale * distance > scale * tol``, so that a difference shown as "1.0 points" and a tolerance
        of 1 point are compared as shown.

    Returns
    -------
    Comparison
    """
    v, lo = _real("value", value), _real("reference", reference)
    hi = lo if upper is None else _real("upper", upper)
    if not (math.isfinite(v) and math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError(f"verdict: value {v} and reference [{lo}, {hi}] must be finite; a verdict on a missing "
                         "number is the chapter's own sentence (report.unavailable)")
    if hi < lo:
        raise ValueError(f"verdict: the reference range [{lo}, {hi}] is reversed; give the lower end first")
    if tol < 0:
        raise ValueError(f"verdict: tol must be >= 0, got {tol}")
    if scale * (v - hi) > scale * tol:
        return Comparison("better" if higher_is_better else "worse", v - hi, True)
    if scale * (lo - v) > scale * tol:
        return Comparison("worse" if higher_is_better else "better", lo - v, False)
    return Comparison("within", 0.0, v > hi)


def goal(value: float, target: float, *, what: str, value_fmt: str = ".3f", goal_fmt: str = ".2f",
         scale: float = 100.0, unit: str = "points", higher_is_better: bool = True) -> str:
    """``"<what> <value> meets the goal <target>"`` or ``"... falls short of the goal <target> by <gap> <unit>"``.

    Parameters
    ----------
    value, target : float
        This run's number and its goal (meeting it exactly counts as meeting it).
    what : str
        The subject, e.g. ``"pooled F1"``.
    value_fmt, goal_fmt : str
        Formats of the value and the goal (``".3f"`` for a goal computed from another score).
    scale, unit : float, str
        The shortfall is shown as ``scale * gap`` with one decimal, then ``unit`` (points of a score in [0, 1]).
    higher_is_better : bool
    """
    c = compare(value, target, higher_is_better=higher_is_better, scale=scale)
    head = f"{what} {float(value):{value_fmt}}"
    if c.side != "worse":
        return f"{head} meets the goal {float(target):{goal_fmt}}"
    return f"{head} falls short of the goal {float(target):{goal_fmt}} by {scale * c.gap:.1f} {unit}"


def versus(a: float, b: float, *, name_a: str, name_b: str, tol: float = 0.01, fmt: str = ".3f",
           scale: float = 100.0, unit: str = "points", higher_is_better: bool = True) -> str:
    """``"<name_a> (a) beats <name_b> (b) by d points"``, ``"... is within t point of ..."`` or ``"falls short of"``.

    Parameters
    ----------
    a, b : float
        The two scores (``a`` is the subject).
    name_a, name_b : str
    tol : float, default 0.01
        Differences up to ``tol`` (in the scores' own units) read "within"; shown as ``scale * tol``.
    fmt, scale, unit
        Format of the scores; the difference is ``scale * |a - b|`` with one decimal, then ``unit``.
    higher_is_better : bool
    """
    c = compare(a, b, tol=tol, higher_is_better=higher_is_better, scale=scale)
    left, right = f"{name_a} ({float(a):{fmt}})", f"{name_b} ({float(b):{fmt}})"
    if c.side == "within":
        t = scale * tol
        return f"{left} is within {t:.0f} {unit[:-1] if t == 1 and unit.endswith('s') else unit} of {right}"
    verb = "beats" if c.side == "better" else "falls short of"
    return f"{left} {verb} {right} by {scale * c.gap:.1f} {unit}"


def position(value: float, reference: float, upper: float | None = None, *, what: str, tol: float = 0.0,
             fmt: str | None = ".3f", unit: str = "", within: str = "within") -> str:
    """``"below <what> (by d)"``, ``"within <what>"`` or ``"above <what> (by d)"``: where a value lies.

    Parameters
    ----------
    value, reference, upper, tol
        As in :func:`compare`.
    what : str
        The reference as the sentence names it (``"the authors' validation 0.87-0.89"``, ``"oSVD (12.3)"``).
    fmt : str or None, default ".3f"
        Format of the distance, shown as ``" (by d<unit>)"``; ``None`` leaves it out.
    unit : str
        Appended to the distance (``" points"``).
    within : str, default "within"
        The words before ``what`` when the value is within the tolerance (``"within 0.5 of"``).
    """
    c = compare(value, reference, upper, tol=tol)
    if c.side == "within":
        return f"{within} {what}"
    by = "" if fmt is None else f" (by {c.gap:{fmt}}{unit})"
    return f"{'above' if c.above else 'below'} {what}{by}"


def tolerance(value: float, limit: float, tol_points: float, *, what: str = "the network", scale: float = 100.0) -> str:
    """A value against a limit it may trail by at most ``tol_points`` points (accuracies in [0, 1]).

    ``"<what> is within 1 point of the limit (0.4 points below)"`` or ``"<what> falls short of the 1 point
    goal by 0.7 points (1.7 points below the limit)"``; a missing value reads
    ``"<what> cannot be compared with the limit (no value)"``.
    """
    gap = scale * (float(limit) - float(value))
    tol_text = f"{tol_points:g} point{'s' if tol_points != 1 else ''}"
    if not math.isfinite(gap):
        return f"{what} cannot be compared with the limit (no value)"
    c = compare(gap, tol_points, higher_is_better=False)
    if c.side != "worse":
        rel = f"{abs(gap):.1f} points {'below' if gap >= 0 else 'above'}"
        return f"{what} is within {tol_text} of the limit ({rel})"
    return f"{what} falls short of the {tol_text} goal by {c.gap:.1f} points ({gap:.1f} points below the limit)"


def ratio(value: float, limit: float, max_ratio: float, *, what: str = "the network", quantity: str = "counts") -> str:
    """How much more of ``quantity`` a method needs than the limit, against a goal ratio (lower is better).

    ``"<what> needs 1,200 counts, 1.20× the limit's 1,000: within the goal of 1.5×"`` (or ``outside``);
    infinite or NaN values (the target was not reached on the grid) are said as such.
    """
    if not math.isfinite(limit):
        return "the limit itself does not reach the target on this grid"
    if not math.isfinite(value):
        return f"{what} does not reach the target on this grid (the limit does at {limit:,.0f} {quantity})"
    r = value / limit
    ok = "within" if compare(r, max_ratio, higher_is_better=False).side != "worse" else "outside"
    return f"{what} needs {value:,.0f} {quantity}, {r:.2f}× the limit's {limit:,.0f}: {ok} the goal of {max_ratio:g}×"


def spread(value: float, mean: float, sd: float) -> str:
    """Where one run lies relative to a seed spread: ``"lies within k SD of the mean"`` (k >= 1, rounded up).

    With ``sd == 0`` a value equal to the mean lies "within 1 SD" and any other "differs from the mean".
    """
    if sd < 0:
        raise ValueError(f"verdict: a spread needs sd >= 0, got {sd}")
    z = abs(value - mean) / sd if sd > 0 else (math.inf if value != mean else 0.0)
    if not math.isfinite(z):
        return "differs from the mean"
    return f"lies within {max(1, math.ceil(round(z, 6)))} SD of the mean"


def gap_in_spread(value: float, target: float, sd: float, *, k: float = 2.0) -> bool:
    """Whether ``value`` falls short of ``target`` (higher is better) by no more than ``k`` SDs (``sd > 0``)."""
    return sd > 0 and 0 < target - value <= k * sd
