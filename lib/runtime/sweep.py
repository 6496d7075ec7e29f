"""Parameter sweeps declared as data.

A *sweep file* is an ordinary parameter file ``parameters/<study>/sweep_<name>.yaml``
(its values are the base of every point) with one more reserved key, ``_sweep``::

    _profile: {description: "...", expected_runtime: "60 s", device: cpu}
    _sweep:
      grid: {mAs: [50.0, 100.0, 200.0], seed: [0, 1]}   # Cartesian product: 6 points
      metrics: [nlr_cbf_mae, cnn_truth_cbf_mae]          # what the results page plots (optional)
    profile: sweep_dose
    seed: 0
    ...

Each point of the grid is one runner call with validated ``--set`` overrides
(:func:`expand_sweep`), written to ``_runs/<study>/<sweep>/<point>/``; the point's id
(:func:`point_id`) is stable, readable and safe as a directory name. A grid of more than
:data:`lib.runtime.params.MAX_SWEEP_POINTS` points (the product of its lists' lengths) is refused
before it is expanded. The workflow
(``workflow/Snakefile``) runs the points; :mod:`lib.pages.tables` gathers every run under ``_runs/``
into one tidy table.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lib.runtime.params import (
    ParameterError,
    ProfileInfo,
    load_parameter_file,
    load_sweep_block,
    validate,
)
from lib.runtime.run import Study, chapter_parameters, list_studies, read_chapter

__all__ = [
    "SweepPoint",
    "Sweep",
    "point_id",
    "format_override",
    "is_sweep_file",
    "run_profiles",
    "load_sweep",
    "list_sweeps",
    "expand_sweep",
    "parse_runtime",
    "job_resources",
    "expected_seconds",
]

_SAFE = re.compile(r"[^A-Za-z0-9.+]+")
_MAX_ID = 96


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its directory-safe id and its validated overrides."""

    id: str
    overrides: dict[str, Any]

    def set_args(self) -> list[str]:
        """The runner's command-line overrides, ``["key=value", ...]`` (values as YAML flow)."""
        return [f"{k}={format_override(v)}" for k, v in self.overrides.items()]


@dataclass(frozen=True)
class Sweep:
    """A sweep file of a study and its expanded points."""

    study: str
    name: str
    path: Path
    grid: dict[str, list[Any]]
    metrics: list[str]
    info: ProfileInfo
    points: list[SweepPoint] = field(default_factory=list)

    def point(self, point_id: str) -> SweepPoint:
        """The point called ``point_id`` (an error lists the existing ones)."""
        for p in self.points:
            if p.id == point_id:
                return p
        raise KeyError(f"sweep {self.study}/{self.name} has no point {point_id!r}; points: "
                       + ", ".join(p.id for p in self.points))


def _slug(value: Any) -> tuple[str, bool]:
    """A filesystem-safe spelling of a value and whether it is lossless."""
    if value is None:
        return "none", True
    if isinstance(value, bool):
        return str(value).lower(), True
    if isinstance(value, int):
        return str(value).replace("-", "m"), True
    if isinstance(value, float):
        text = repr(value).replace("-", "m")
        return text, bool(re.fullmatch(r"[A-Za-z0-9.+]+", text))
    if isinstance(value, (list, tuple)):
        parts = [_slug(v) for v in value]
        return "+".join(p for p, _ in parts) or "empty", all(ok for _, ok in parts) and bool(value)
    text = str(value)
    safe = _SAFE.sub("-", text).strip("-")
    return safe or "x", safe == text


def point_id(overrides: Mapping[str, Any]) -> str:
    """A stable, readable, filesystem-safe id of a sweep point.

    ``{"epochs": 2, "lr": 0.001}`` gives ``"epochs-2_lr-0.001"``. Values that cannot be
    spelled safely (spaces, slashes, very long lists) are replaced where needed and the id
    then ends with 8 hex digits of a hash of the exact values, so distinct points never share
    an id. Only ``[A-Za-z0-9._+-]`` occur.
    """
    parts, lossless = [], True
    for key, value in overrides.items():
        text, ok = _slug(value)
        parts.append(f"{key}-{text}")
        lossless &= ok
    ident = "_".join(parts) or "base"
    if not lossless or len(ident) > _MAX_ID:
        digest = hashlib.sha256(json.dumps(dict(overrides), sort_keys=True, default=str).encode()).hexdigest()[:8]
        ident = f"{ident[:_MAX_ID - 9]}-{digest}"
    return ident


def format_override(value: Any) -> str:
    """``value`` as the YAML flow text the runner's ``--set key=value`` reads back to the same value."""
    return json.dumps(value) if not isinstance(value, str) else (
        value if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.+-]*", value) and value.lower() not in
        {"true", "false", "yes", "no", "on", "off", "null", "none", "y", "n"} else json.dumps(value)
    )


def is_sweep_file(path: str | Path) -> bool:
    """Whether a parameter file declares a ``_sweep``."""
    return load_sweep_block(path) is not None


def run_profiles(study: Study) -> list[str]:
    """The study's profiles that are single runs (parameter files without ``_sweep``)."""
    return [p for p in study.profiles if not is_sweep_file(study.parameter_dir / f"{p}.yaml")]


def expand_sweep(study: Study, path: str | Path, *, notebook: Any = None) -> Sweep:
    """Validate a sweep file against the study's parameters cell and expand its grid.

    Raises
    ------
    lib.runtime.params.ParameterError
        The file has no ``_sweep``, the grid has more than :data:`~lib.runtime.params.MAX_SWEEP_POINTS`
        points, a grid key is not a parameter, a value has the wrong type, or two points would get
        the same id.
    """
    path = Path(path)
    block = load_sweep_block(path)
    if block is None:
        raise ParameterError(f"{path} has no _sweep block; see lib.runtime.sweep for the format")
    values, info = load_parameter_file(path)
    specs = chapter_parameters(study, notebook=notebook)
    validate(specs, values, source=str(path))
    grid: dict[str, list[Any]] = {}
    for key, items in block["grid"].items():
        if key == "profile":
            raise ParameterError(f"{path}: _sweep.grid cannot vary 'profile' (one sweep file is one profile)")
        grid[key] = [validate(specs, {key: v}, source=f"{path}: _sweep.grid.{key}[{i}]")[key]
                     for i, v in enumerate(items)]
    points, seen = [], {}
    for combo in itertools.product(*grid.values()):
        overrides = dict(zip(grid, combo))
        pid = point_id(overrides)
        if pid in seen:
            raise ParameterError(f"{path}: _sweep.grid gives the point {pid!r} twice; remove the repeated value")
        seen[pid] = overrides
        points.append(SweepPoint(pid, overrides))
    return Sweep(study.name, path.stem, path, grid, block["metrics"], info, points)


def load_sweep(study: Study, name: str) -> Sweep:
    """The sweep ``parameters/<study>/<name>.yaml``, validated and expanded."""
    path = study.parameter_dir / f"{name}.yaml"
    if not path.is_file():
        raise ParameterError(f"study {study.name!r} has no parameter file {name}.yaml; files: "
                             + ", ".join(study.profiles))
    return expand_sweep(study, path)


def list_sweeps(root: Path | None = None, studies: Iterable[str] | None = None) -> list[Sweep]:
    """Every sweep file of every study (or of ``studies``), expanded."""
    wanted = set(studies) if studies is not None else None
    out = []
    for st in list_studies(root):
        if wanted is not None and st.name not in wanted:
            continue
        nb = None
        for prof in st.profiles:
            path = st.parameter_dir / f"{prof}.yaml"
            if is_sweep_file(path):
                nb = nb if nb is not None else read_chapter(st.notebook)
                out.append(expand_sweep(st, path, notebook=nb))
    return out


_UNITS = {"s": 1 / 60, "sec": 1 / 60, "second": 1 / 60, "seconds": 1 / 60, "min": 1.0, "mins": 1.0,
          "minute": 1.0, "minutes": 1.0, "m": 1.0, "h": 60.0, "hr": 60.0, "hour": 60.0, "hours": 60.0,
          "d": 1440.0, "day": 1440.0, "days": 1440.0}


def parse_runtime(text: str) -> float | None:
    """Minutes in a profile's ``expected_runtime`` (``"90 s"``, ``"8 min"``, ``"3 h"``, ``"1 h 30 min"``).

    Returns None for ``"unknown"`` or text without a number and a unit.
    """
    pairs = re.findall(r"(\d+(?:\.\d+)?)\s*([A-Za-z]+)", text or "")
    total, found = 0.0, False
    for number, unit in pairs:
        factor = _UNITS.get(unit.lower())
        if factor is not None:
            total += float(number) * factor
            found = True
    return total if found else None


def expected_seconds(study: Study, profile: str, *, runs: Path | None = None) -> float:
    """How long a run of ``study`` at ``profile`` is expected to take, in seconds (the workflow's job priority).

    The wall time of the last run recorded in ``<runs>/<study>/<profile>/`` when there is one (whatever its key:
    the time of the same chapter before an edit is the best guess), else the profile's ``expected_runtime``,
    else 0.
    """
    from lib.runtime.record import RecordError, RunRecord

    folder = (Path(runs) if runs is not None else study.parameter_dir.parents[1] / "_runs") / study.name / profile
    try:
        record = RunRecord.read(folder)
    except RecordError:
        record = None
    if record is not None and record.status == "ok" and record.duration_s:
        return float(record.duration_s)
    minutes = parse_runtime(study.profile_info(profile).expected_runtime)
    return 60.0 * minutes if minutes is not None else 0.0


def job_resources(info: ProfileInfo, *, safety: float = 3.0, minimum_min: int = 10) -> dict[str, int]:
    """Scheduler resources of one run from its profile.

    Returns ``{"gpu": 0|1, "runtime": minutes, "mem_mb": MB?}``: ``gpu=1`` when the profile's
    device is ``gpu``; ``runtime`` is ``safety`` times the expected run time, at least
    ``minimum_min`` minutes (a wall-clock limit, so generous: CPUs and GPUs differ); ``mem_mb``
    only when the profile declares it.
    """
    minutes = parse_runtime(info.expected_runtime)
    res = {"gpu": int(info.device == "gpu"),
           "runtime": max(minimum_min, math.ceil(safety * minutes)) if minutes is not None else 60 * 24}
    if info.mem_mb is not None:
        res["mem_mb"] = int(info.mem_mb)
    return res
