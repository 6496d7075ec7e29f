"""Records of the ``gpu`` profile runs: one ``results/gpu/<study>.json`` per study, written by ``make gpu-check``.

A record says where and when a study's ``gpu`` profile ran (device, date, commit, package versions), how it
ended (``status``, wall time), its headline metrics (the metrics ``book/results_reference.yaml`` puts beside
the papers' numbers), the time of one epoch of its main training and the estimate of the ``paper`` profile's
run time on that device. :func:`write_record` validates before writing, :func:`read_record` validates what it
reads (a malformed record is an error naming the file, the field and the fix), and :func:`gpu_column` gives
the book's Results page its "GPU column" (a label with device and date, and the headline metrics), or the one
sentence :data:`NO_RECORD_SENTENCE` when no record exists.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "RECORD_FIELDS",
    "RECORD_DIR",
    "STATUSES",
    "NO_RECORD_SENTENCE",
    "GpuRecordError",
    "record_path",
    "validate_record",
    "write_record",
    "read_record",
    "read_records",
    "paper_runtime_estimate",
    "format_duration",
    "gpu_column",
]

#: Where the records live, relative to the repository root.
RECORD_DIR = Path("results") / "gpu"
#: How a ``gpu`` run ended (the runner's statuses, plus ``not_run`` for one the deadline left out).
STATUSES = ("ok", "failed", "timeout", "interrupted", "not_run")
#: The sentence the book shows in place of the GPU column when no record exists.
NO_RECORD_SENTENCE = ("No GPU run has been recorded yet (make gpu-check on a machine with CUDA writes "
                      "results/gpu/<study>.json).")

_NUMBER = (int, float)
#: Field name -> (accepted types, may it be null?, what it is).
RECORD_FIELDS: dict[str, tuple[tuple[type, ...], bool, str]] = {
    "study": ((str,), False, "the study's name"),
    "profile": ((str,), False, "the parameter profile that ran (gpu)"),
    "device": ((str,), False, "the accelerator's name, e.g. 'NVIDIA H100 80GB HBM3'"),
    "date": ((str,), False, "when the run ended, ISO 8601 with time zone"),
    "commit": ((str,), False, "the git commit of the checkout that ran"),
    "versions": ((dict,), False, "package versions (python, torch, cuda, ...)"),
    "status": ((str,), False, f"one of {', '.join(STATUSES)}"),
    "wall_s": (_NUMBER, False, "wall time of the run in seconds"),
    "metrics": ((dict,), False, "headline metrics, name -> number"),
    "epoch_s": (_NUMBER, True, "seconds of one epoch of the main training (null when unknown)"),
    "paper_estimate_s": (_NUMBER, True, "estimated run time of the paper profile on this device (null: unknown)"),
}


class GpuRecordError(ValueError):
    """A GPU record is malformed or unreadable; the message names the file, the field and the fix."""


def record_path(root: str | Path, study: str) -> Path:
    """The record of ``study`` below the repository ``root``: ``results/gpu/<study>.json``."""
    return Path(root) / RECORD_DIR / f"{study}.json"


def _finite_number(value: Any) -> bool:
    return isinstance(value, _NUMBER) and not isinstance(value, bool) and math.isfinite(value)


def validate_record(record: Any, *, source: str = "record") -> dict[str, Any]:
    """Check one record's fields and types; return it as a plain dict.

    Parameters
    ----------
    record : mapping
        The record (see :data:`RECORD_FIELDS`); extra fields are kept.
    source : str
        What to name in an error (the file).

    Raises
    ------
    GpuRecordError
        A field is missing, has the wrong type, a metric is not a finite number, the status or the date is
        not one of the allowed forms, or a time is negative.
    """
    fix = "rerun make gpu-check on a machine with CUDA, or delete the file"
    if not isinstance(record, Mapping):
        raise GpuRecordError(f"{source}: a GPU record must be a JSON object with the fields "
                             f"{', '.join(RECORD_FIELDS)}, got {type(record).__name__}; {fix}")
    out = dict(record)
    missing = [k for k in RECORD_FIELDS if k not in out]
    if missing:
        raise GpuRecordError(f"{source}: the GPU record lacks the field(s) {', '.join(missing)}; {fix}")
    for key, (types, nullable, what) in RECORD_FIELDS.items():
        value = out[key]
        if value is None and nullable:
            continue
        bad_type = not isinstance(value, types) or isinstance(value, bool)
        if bad_type or (types is _NUMBER and not _finite_number(value)):
            raise GpuRecordError(f"{source}: field {key!r} must be {what}, got {value!r}; {fix}")
        if types is _NUMBER and value < 0:
            raise GpuRecordError(f"{source}: field {key!r} must not be negative, got {value!r}; {fix}")
    if out["status"] not in STATUSES:
        raise GpuRecordError(f"{source}: field 'status' must be one of {', '.join(STATUSES)}, got "
                             f"{out['status']!r}; {fix}")
    try:
        when = _dt.datetime.fromisoformat(out["date"])
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise GpuRecordError(f"{source}: field 'date' must be an ISO 8601 time with a time zone "
                             f"(e.g. 2026-12-04T10:00:00+00:00), got {out['date']!r}; {fix}")
    for name, value in out["metrics"].items():
        if not isinstance(name, str) or not _finite_number(value):
            raise GpuRecordError(f"{source}: metric {name!r} must be a finite number, got {value!r}; {fix}")
    for name, value in out["versions"].items():
        if not isinstance(value, str):
            raise GpuRecordError(f"{source}: version of {name!r} must be a string, got {value!r}; {fix}")
    return out


def write_record(record: Mapping[str, Any], path: str | Path) -> Path:
    """Validate ``record`` and write it to ``path`` (JSON, replaced atomically); return the path.

    Raises
    ------
    GpuRecordError
        The record is malformed (nothing is written).
    """
    path = Path(path)
    data = validate_record(record, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """Read and validate one record.

    Raises
    ------
    GpuRecordError
        The file is missing, not JSON or malformed.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GpuRecordError(f"{path}: no GPU record there; make gpu-check on a machine with CUDA writes it") \
            from None
    except (OSError, UnicodeDecodeError) as err:
        raise GpuRecordError(f"{path}: cannot read the GPU record ({err}); rerun make gpu-check or delete it") \
            from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise GpuRecordError(f"{path}: the GPU record is not valid JSON (line {err.lineno}: {err.msg}); rerun "
                             "make gpu-check on a machine with CUDA, or delete the file") from None
    return validate_record(data, source=str(path))


def read_records(root: str | Path) -> dict[str, dict[str, Any]]:
    """Every record below ``root`` (``results/gpu/*.json``), by study; empty when there are none.

    Raises
    ------
    GpuRecordError
        A record is malformed, or its ``study`` field differs from its file name.
    """
    out: dict[str, dict[str, Any]] = {}
    folder = Path(root) / RECORD_DIR
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        rec = read_record(path)
        if rec["study"] != path.stem:
            raise GpuRecordError(f"{path}: the record is of study {rec['study']!r} but the file is named for "
                                 f"{path.stem!r}; rename the file to {rec['study']}.json")
        out[path.stem] = rec
    return out


def paper_runtime_estimate(*, gpu_wall_s: float, gpu_work: float, paper_work: float) -> float:
    """Estimated paper-profile run time: the ``gpu`` run's wall time scaled by the ratio of training work.

    Both profiles train the same networks at the same input sizes, so a training sample-pass costs the
    same in both; the estimate scales the whole measured run (start-up and evaluation included, which makes
    it err on the long side for the fixed costs) by ``paper_work / gpu_work``.

    Parameters
    ----------
    gpu_wall_s : float
        Measured wall time of the ``gpu`` run, seconds.
    gpu_work, paper_work : float
        Training sample-passes of the two profiles (same unit), both positive.

    Raises
    ------
    ValueError
        A non-positive or non-finite argument.
    """
    for name, value in (("gpu_wall_s", gpu_wall_s), ("gpu_work", gpu_work), ("paper_work", paper_work)):
        if not _finite_number(value) or value <= 0:
            raise ValueError(f"paper_runtime_estimate: {name} must be a positive finite number, got {value!r}")
    return gpu_wall_s * paper_work / gpu_work


def format_duration(seconds: float | None) -> str:
    """``'2 h 05 min'``, ``'7 min 12 s'``, ``'42 s'``; ``'unknown'`` for None."""
    if seconds is None:
        return "unknown"
    s = int(round(seconds))
    if s >= 3600:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    if s >= 60:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s} s"


def gpu_column(root: str | Path, study: str) -> tuple[str, dict[str, float]] | str:
    """The Results page's GPU column of one study, or the sentence that no GPU run was recorded.

    Parameters
    ----------
    root : path
        The repository root (the record is ``results/gpu/<study>.json`` below it).
    study : str

    Returns
    -------
    (label, metrics) or str
        ``label`` names the device and the date (e.g. ``'GPU: NVIDIA H100 80GB HBM3, 2026-12-04'``, with
        the status when it is not ``ok``) and ``metrics`` maps each headline metric to its value; without a
        record, :data:`NO_RECORD_SENTENCE`.

    Raises
    ------
    GpuRecordError
        The record exists but is malformed.
    """
    path = record_path(root, study)
    if not path.is_file():
        return NO_RECORD_SENTENCE
    rec = read_record(path)
    label = f"GPU: {rec['device']}, {rec['date'][:10]}"
    if rec["status"] != "ok":
        label += f" ({rec['status']})"
    return label, dict(rec["metrics"])
