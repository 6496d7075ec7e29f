"""Where every run stands: ``studies status [--profile P]``, and what ``make book`` and the workflow consult.

For each study and profile (``_runs/<study>/<profile>/``) and each sweep point
(``_runs/<study>/<sweep>/<point>/``) :func:`run_state` reads the run's record
(:class:`lib.runtime.record.RunRecord`) and asks the one reuse rule
(:func:`lib.runtime.record.reuse_state`) whether it stands for the inputs as they are now:

``current``
    it ended ``ok`` with the current key: the book reuses it;
``stale``
    it ended ``ok``, but an input changed since; the reason names which (``lib/core/report.py``,
    ``<parameter file>``, ...); or it ran on a synthetic fallback and the real dataset is now at hand;
``failed``
    it failed or timed out (the reason says where);
``interrupted``
    it was stopped by Ctrl-C or SIGTERM;
``missing``
    there is no run.

Only ``current`` runs are reused; the workflow (``workflow/Snakefile``) runs exactly the others.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.runtime.record import RecordError, RunRecord, key_of, reuse_state
from lib.runtime.run import Study, list_studies, repo_root, resolve_parameters, run_inputs

__all__ = ["STATES", "RunState", "run_state", "point_state", "run_states", "format_states"]

#: Every state a run can be in, in the order of :func:`format_states`'s summary.
STATES: tuple[str, ...] = ("current", "stale", "failed", "interrupted", "missing")


@dataclass(frozen=True)
class RunState:
    """Where one run stands.

    Attributes
    ----------
    study, profile : str
        The study and the profile (for a sweep point, the sweep's name).
    point : str
        The sweep point's id (``""`` for a profile's own run).
    folder : Path
        The run folder.
    state : str
        One of :data:`STATES`.
    reason : str
        Why it is not current (``""`` when it is).
    seconds : float or None
        The recorded run's wall time.
    data_source : str
        The recorded run's data sources as one line (``""`` without a run).
    ended : str or None
        When the recorded run ended (ISO 8601 UTC).
    """

    study: str
    profile: str
    point: str
    folder: Path
    state: str
    reason: str = ""
    seconds: float | None = None
    data_source: str = ""
    ended: str | None = None

    @property
    def name(self) -> str:
        """``study/profile`` or ``study/sweep/point``."""
        return "/".join(p for p in (self.study, self.profile, self.point) if p)


def _state(study: Study, profile: str, point: str, folder: Path, params_path: Path,
           overrides: dict[str, Any]) -> RunState:
    try:
        record = RunRecord.read(folder)
    except RecordError as err:
        return RunState(study.name, profile, point, folder, "failed", f"unreadable record: {err}")
    inputs = run_inputs(study, params_path, overrides)
    state, reason = reuse_state(record, key_of(inputs), overrides=overrides, current_inputs=inputs)
    if record is None:
        return RunState(study.name, profile, point, folder, state, reason)
    if state == "current" and not (folder / f"{study.name}.ipynb").is_file():
        state, reason = "missing", f"its record is there but not its notebook {study.name}.ipynb"
    if state == "current":
        arrived = _data_now_present(record)
        if arrived:
            state, reason = "stale", f"{', '.join(arrived)} now at hand (the run had to do without)"
    return RunState(study.name, profile, point, folder, state, reason, record.duration_s, record.data_source,
                    record.ended)


def _data_now_present(record: RunRecord) -> list[str]:
    """The datasets the run did without (synthetic fallback or an error) that are now at hand.

    The run key covers the code and the data manifests, not which copies exist; this covers the rest: a run made
    before the data arrived does not stand for one that would read them.
    """
    from lib.core import registry

    arrived = []
    for name, source in sorted((record.data_sources or {}).items()):
        if str(source).startswith("real") or name not in registry.names():
            continue
        try:
            if registry.present(name):
                arrived.append(name)
        except (KeyError, OSError, ValueError):
            continue
    return arrived


def run_state(study: Study, profile: str, *, runs: Path | None = None) -> RunState:
    """Where the run of ``study`` at ``profile`` in ``<runs>/<study>/<profile>/`` stands.

    Parameters
    ----------
    study : Study
        The study (:func:`lib.runtime.run.get_study`).
    profile : str
        A profile of the study (``parameters/<study>/<profile>.yaml``).
    runs : Path, optional
        The runs folder (default ``_runs`` of the checkout).
    """
    root = study.parameter_dir.parents[1]
    runs = Path(runs) if runs is not None else root / "_runs"
    _, _, params_path, _ = resolve_parameters(study, profile)
    return _state(study, profile, "", runs / study.name / profile, params_path, {})


def point_state(study: Study, sweep: Any, point: Any, *, runs: Path | None = None) -> RunState:
    """Where one sweep point's run ``<runs>/<study>/<sweep>/<point>/`` stands (its overrides must match)."""
    root = study.parameter_dir.parents[1]
    runs = Path(runs) if runs is not None else root / "_runs"
    return _state(study, sweep.name, point.id, runs / study.name / sweep.name / point.id, Path(sweep.path),
                  dict(point.overrides))


def run_states(root: Path | None = None, *, profiles: Iterable[str] | None = None,
               studies: Iterable[str] | None = None, runs: Path | None = None) -> list[RunState]:
    """Every run's state: each study's profiles (``profiles``, default all of them) and sweep points.

    A sweep's points are listed when its name is among ``profiles`` (or ``profiles`` is ``None``).
    """
    from lib.runtime.sweep import list_sweeps, run_profiles

    root = root or repo_root()
    wanted = None if profiles is None else list(profiles)
    chosen = None if studies is None else set(studies)
    states = []
    for st in list_studies(root):
        if chosen is not None and st.name not in chosen:
            continue
        for profile in run_profiles(st):
            if wanted is None or profile in wanted:
                states.append(run_state(st, profile, runs=runs))
        for sw in list_sweeps(root, [st.name]):
            if wanted is None or sw.name in wanted:
                states.extend(point_state(st, sw, pt, runs=runs) for pt in sw.points)
    return states


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def format_states(states: list[RunState]) -> str:
    """The states as aligned lines ``study/profile  state  time  data source  reason``, then a count per state."""
    rows = [(s.name, s.state, _duration(s.seconds), s.data_source, s.reason) for s in states]
    header = ("run", "state", "time", "data", "why")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4] for r in [header, *rows]]
    counts = [f"{sum(s.state == k for s in states)} {k}" for k in STATES if any(s.state == k for s in states)]
    lines.append(", ".join(counts) if counts else "no runs to show")
    return "\n".join(line.rstrip() for line in lines)
