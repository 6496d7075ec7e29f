"""The run record: one typed class, one writer and one reader for what a run leaves behind.

Every run folder (``_runs/<study>/<profile>/``, a sweep point ``_runs/<study>/<sweep>/<point>/`` or a
user's ``--out``) holds two files written by :meth:`RunRecord.write` and read back by
:meth:`RunRecord.read`, and nothing else reads or writes them:

``provenance.json``
    status (``ok``, ``failed``, ``timeout``, ``interrupted``), the run key and the digest of every
    input it covers (:attr:`RunRecord.inputs`), the overrides, the parameters, the data source of
    each dataset read, the thread settings, start, end and wall time, the failed cell, and the
    environment (git state, package versions, platform, device).
``metrics.json``
    the glued numbers of the chapter, plus ``_data_sources`` (keys starting with ``_`` are not metrics).

The run key (:func:`key_of`) is the SHA-256 of the input digests; :func:`reuse_state` is the one rule
deciding whether a finished run can stand for the current inputs (the book, ``studies status`` and the
result tables all ask it), and :func:`changed_inputs` names what changed when it cannot.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = [
    "PROVENANCE_FILE",
    "METRICS_FILE",
    "DATA_SOURCES_KEY",
    "STATUSES",
    "RecordError",
    "RunRecord",
    "key_of",
    "changed_inputs",
    "reuse_state",
    "reuse_problem",
    "data_source_text",
]

#: The record's two files in a run folder.
PROVENANCE_FILE = "provenance.json"
METRICS_FILE = "metrics.json"
#: Key of ``metrics.json`` holding ``{dataset: data_source}`` (not a metric; readers skip keys starting with ``_``).
DATA_SOURCES_KEY = "_data_sources"
#: Every status a run can end with; only ``ok`` runs are reused.
STATUSES: tuple[str, ...] = ("ok", "failed", "timeout", "interrupted")


class RecordError(ValueError):
    """A run folder's record exists but cannot be read (not JSON, or not a record)."""


def data_source_text(sources: Any) -> str:
    """``{dataset: source}`` as one line, ``"dsb2018: real; nist-pgaa: synthetic (reason)"`` (``""``: none read)."""
    if not isinstance(sources, Mapping):
        return ""
    return "; ".join(f"{k}: {v}" for k, v in sorted(sources.items()))


@dataclass
class RunRecord:
    """What one run of a chapter was and produced (the content of ``provenance.json`` and ``metrics.json``).

    Attributes
    ----------
    study, profile : str
        The study and the profile (the parameter file's stem, or its ``profile`` value).
    status : str
        One of :data:`STATUSES`.
    run_key : str or None
        :func:`key_of` of :attr:`inputs`; ``None`` in a record written before keys were kept.
    inputs : dict of str to str
        ``{input: sha256}`` of everything the key covers: the chapter, the library files (by path
        relative to the checkout), ``<parameter file>``, ``<overrides>`` and ``<environment>``.
    overrides : dict
        The ``--set``/``--smoke`` values applied on top of the parameter file.
    parameters : dict
        Every parameter value the chapter ran with.
    data_sources : dict of str to str, or None
        ``{dataset: "real" | "synthetic (reason)" | "error (reason)"}``; ``{}`` when no dataset was
        read; ``None`` when not recorded.
    threads : dict of str to str
        The thread variables the kernel was given (``OMP_NUM_THREADS``, ...).
    started, ended : str or None
        ISO 8601 UTC times.
    duration_s : float or None
        Wall time of the chapter's execution, in seconds.
    failed_cell : str or None
        Where a run that did not end ``ok`` stopped (``"code cell 7 (book/x/x.md line 120)"``).
    metrics : dict of str to float or int
        The glued numbers (``metrics.json`` without its reserved ``_`` keys).
    environment : dict
        The rest of ``provenance.json``: git state, versions, platform, device, seed, parameter file, ...
    """

    study: str
    profile: str
    status: str
    run_key: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    overrides: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    data_sources: dict[str, str] | None = None
    threads: dict[str, str] = field(default_factory=dict)
    started: str | None = None
    ended: str | None = None
    duration_s: float | None = None
    failed_cell: str | None = None
    metrics: dict[str, float | int] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

    # -- derived views ---------------------------------------------------------------------------------------
    @property
    def device(self) -> dict[str, Any]:
        """``{"device": "cpu" | "cuda", "device_name": ...}`` as recorded (empty when not)."""
        dev = self.environment.get("device")
        return dev if isinstance(dev, dict) else ({"device": str(dev)} if dev else {})

    @property
    def git(self) -> dict[str, Any]:
        """``{"commit": ..., "dirty": ...}`` of the checkout the run came from (empty when not a git checkout)."""
        git = self.environment.get("git")
        return git if isinstance(git, dict) else {}

    @property
    def data_source(self) -> str:
        """:attr:`data_sources` as one line: ``"not recorded"``, ``"no dataset read"`` or ``"name: source; ..."``."""
        if self.data_sources is None:
            return "not recorded"
        return data_source_text(self.data_sources) or "no dataset read"

    # -- the writer ------------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        """The content of ``provenance.json`` (JSON-serialisable)."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("metrics", "environment")}
        if own["failed_cell"] is None:
            del own["failed_cell"]
        return {**self.environment, **own}

    def write(self, folder: str | Path) -> None:
        """Write ``provenance.json`` and ``metrics.json`` into ``folder`` (the one writer of a run's record)."""
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")
        folder = Path(folder)
        payload: dict[str, Any] = dict(self.metrics)
        if self.data_sources:
            payload[DATA_SOURCES_KEY] = self.data_sources
        (folder / METRICS_FILE).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        (folder / PROVENANCE_FILE).write_text(json.dumps(self.provenance(), indent=2, default=str) + "\n",
                                              encoding="utf-8")

    # -- the reader ------------------------------------------------------------------------------------------
    @classmethod
    def from_provenance(cls, provenance: Mapping[str, Any], metrics: Mapping[str, Any] | None = None,
                        *, where: str = "the record") -> RunRecord:
        """A record from the parsed ``provenance.json`` (and ``metrics.json``) of a run.

        Raises
        ------
        RecordError
            ``provenance`` is not a mapping or lacks ``status``.
        """
        if not isinstance(provenance, Mapping) or "status" not in provenance:
            raise RecordError(f"{where} is not a run record (no status); delete the folder and run the study again")
        names = {f.name for f in fields(cls)} - {"metrics", "environment"}
        own = {k: provenance.get(k) for k in names if k in provenance}
        environment = {k: v for k, v in provenance.items() if k not in names}
        numbers = {k: v for k, v in (metrics or {}).items() if not str(k).startswith("_")}
        sources = own.get("data_sources")
        if sources is None and metrics and isinstance(metrics.get(DATA_SOURCES_KEY), Mapping):
            sources = dict(metrics[DATA_SOURCES_KEY])
        duration = own.get("duration_s")
        return cls(
            study=str(own.get("study") or ""),
            profile=str(own.get("profile") or ""),
            status=str(own["status"]),
            run_key=own.get("run_key"),
            inputs=dict(own.get("inputs") or {}),
            overrides=dict(own.get("overrides") or {}),
            parameters=dict(own.get("parameters") or {}),
            data_sources=dict(sources) if isinstance(sources, Mapping) else None,
            threads=dict(own.get("threads") or {}),
            started=own.get("started"),
            ended=own.get("ended"),
            duration_s=float(duration) if isinstance(duration, (int, float)) and not isinstance(duration, bool)
            else None,
            failed_cell=own.get("failed_cell"),
            metrics=numbers,
            environment=environment,
        )

    @classmethod
    def read(cls, folder: str | Path) -> RunRecord | None:
        """The record of the run in ``folder``; ``None`` when the folder holds no ``provenance.json``.

        Raises
        ------
        RecordError
            The record exists but is not readable JSON (the message names the file and the fix).
        """
        folder = Path(folder)
        prov_path = folder / PROVENANCE_FILE
        if not prov_path.is_file():
            return None
        prov = _read_json(prov_path)
        metrics_path = folder / METRICS_FILE
        metrics = _read_json(metrics_path) if metrics_path.is_file() else {}
        if not isinstance(metrics, Mapping):
            raise RecordError(f"{metrics_path} is not a JSON object; delete {folder} and run the study again")
        record = cls.from_provenance(prov, metrics, where=str(prov_path))
        record.study = record.study or folder.parent.name
        record.profile = record.profile or folder.name
        return record


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RecordError(f"cannot read {path} ({err}); delete {path.parent} and run the study again") from None


def key_of(inputs: Mapping[str, str]) -> str:
    """The run key: SHA-256 of the sorted ``{input: sha256}`` digests (any changed, added or removed input changes it).

    Parameters
    ----------
    inputs : mapping of str to str
        What :func:`lib.runtime.run.run_inputs` returns.

    Returns
    -------
    str
        64 hexadecimal characters.
    """
    text = json.dumps(dict(sorted(inputs.items())), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def changed_inputs(recorded: Mapping[str, str], current: Mapping[str, str]) -> list[str]:
    """The inputs whose digest differs between a record and now, sorted, each marked as changed, new or removed.

    ``["lib/core/report.py", "parameters (changed)", ...]`` reads as: these are why a run is stale.
    """
    out = []
    for name in sorted(set(recorded) | set(current)):
        if name not in recorded:
            out.append(f"{name} (new)")
        elif name not in current:
            out.append(f"{name} (removed)")
        elif recorded[name] != current[name]:
            out.append(name)
    return out


def reuse_state(record: RunRecord | None, key: str, *, overrides: Mapping[str, Any] | None = None,
                current_inputs: Mapping[str, str] | None = None) -> tuple[str, str]:
    """Whether the run ``record`` stands for the current inputs: ``(state, reason)``, the one reuse rule.

    A run is reused (``"current"``) only when it ended ``ok``, its key equals ``key`` and its overrides
    equal ``overrides`` (none for a profile's own run; a sweep point's for a point), so a ``--set`` or
    ``--smoke`` run never stands for its profile.

    Parameters
    ----------
    record : RunRecord or None
        The run's record (``None``: there is no run).
    key : str
        The key of the inputs as they are now.
    overrides : mapping, optional
        The overrides the wanted run has (default none).
    current_inputs : mapping, optional
        The current input digests; when given, a stale run's reason names the inputs that changed.

    Returns
    -------
    tuple of str
        ``state`` is ``"current"``, ``"stale"``, ``"failed"`` (a failed or timed-out run),
        ``"interrupted"`` or ``"missing"``; ``reason`` says why it is not current (``""`` when it is).
    """
    if record is None:
        return "missing", "no run yet"
    if record.status != "ok":
        where = f" in {record.failed_cell}" if record.failed_cell else ""
        return ("interrupted" if record.status == "interrupted" else "failed"), f"{record.status}{where}"
    wanted = dict(overrides or {})
    if _canonical(record.overrides) != _canonical(wanted):
        return "stale", (f"it ran with overrides {record.overrides}, "
                         f"{'not the profile as it is' if not wanted else f'not {wanted}'}")
    if record.run_key != key:
        if record.run_key is None or not record.inputs:
            return "stale", "recorded before run keys covered each input"
        changed = changed_inputs(record.inputs, current_inputs) if current_inputs is not None else []
        return "stale", (", ".join(changed) + " changed" if changed else "its inputs changed")
    return "current", ""


def reuse_problem(record: RunRecord | None, key: str, *, overrides: Mapping[str, Any] | None = None,
                  current_inputs: Mapping[str, str] | None = None) -> str | None:
    """Why ``record`` cannot stand for the current inputs, as one line, or ``None`` when it can (:func:`reuse_state`).

    The line starts with the state: ``"missing: ..."``, ``"failed ..."``, ``"timeout ..."``,
    ``"interrupted ..."`` or ``"stale: ..."``.
    """
    state, reason = reuse_state(record, key, overrides=overrides, current_inputs=current_inputs)
    if state == "current":
        return None
    return reason if state in ("failed", "interrupted") else f"{state}: {reason}"


def _canonical(values: Mapping[str, Any]) -> str:
    def fix(v: Any) -> Any:
        return None if isinstance(v, float) and math.isnan(v) else v

    return json.dumps({k: fix(v) for k, v in values.items()}, sort_keys=True, default=str)
