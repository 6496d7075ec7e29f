"""The book page "Execution of the chapters": every chapter's run with its provenance.

Like Jupyter Book's execution statistics, but read from the runner's records: for every run directory
``_runs/<study>/<profile>/`` (sweep points, one level deeper, are not chapter runs) the table lists the
profile, whether the book shows that run, its status, the device, the wall time, the git commit, when it
finished and the data source, all read through the run record (:class:`lib.runtime.record.RunRecord`).
The data source is what the runner recorded in the run's ``provenance.json`` under ``data_sources``:
``{dataset: source}``, each source ``real``, ``synthetic (reason)`` or ``error (reason)``, as
:func:`lib.core.registry.record_data_source` wrote it during the run. A run that read no registered dataset
records ``{}`` (shown as "no dataset read"); a folder without the record
(written before the runner kept one) shows "not recorded". The executed notebook is not searched: the
record is the one source.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lib.runtime.record import PROVENANCE_FILE, RecordError, RunRecord

__all__ = ["COLUMNS", "DATA_SOURCES", "book_profile", "data_source", "execution_records", "execution_table"]

#: Columns of :func:`execution_table`, in order.
COLUMNS = ("study", "profile", "in book", "status", "device", "wall time", "commit", "finished (UTC)", "data source")
#: Key of ``provenance.json`` under which the runner records ``{dataset: source}`` (see the module docstring).
DATA_SOURCES = "data_sources"


def book_profile(root: Path) -> str | None:
    """The profile the book being built shows: ``$STUDIES_BOOK_PROFILE``, else read off the staged build.

    ``make book`` builds a staged copy in ``_build/stage/<profile>/``; a page executed there runs with
    that directory (or one below it) as its working directory. ``None`` outside a book build.
    """
    env = os.environ.get("STUDIES_BOOK_PROFILE")
    if env:
        return env
    stage = (Path(root) / "_build" / "stage").resolve()
    try:
        rel = Path.cwd().resolve().relative_to(stage)
    except ValueError:
        return None
    return rel.parts[0] if rel.parts else None


def data_source(run_dir: Path) -> str:
    """Where the run's data came from, as the runner recorded it (see the module docstring), as one line of text."""
    try:
        record = RunRecord.read(run_dir)
    except RecordError:
        return "not recorded"
    return record.data_source if record is not None else "not recorded"


def _wall(seconds: Any) -> str:
    if not isinstance(seconds, (int, float)):
        return "not recorded"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _device(record: RunRecord) -> str:
    dev = record.device
    name = dev.get("device") or "unknown"
    detail = dev.get("device_name")
    return f"{name} ({detail})" if detail and detail != name else str(name)


def _commit(record: RunRecord) -> str:
    commit = record.git.get("commit")
    if not commit:
        return "unknown (no git checkout)"
    return commit[:12] + (" +dirty" if record.git.get("dirty") else "")


def execution_records(runs_dir: Path, *, shown_profile: str | None = None) -> list[dict[str, Any]]:
    """One record per chapter run ``<runs_dir>/<study>/<profile>/provenance.json``, sorted by study and profile.

    Parameters
    ----------
    runs_dir
        The runs directory (``_runs``); a missing directory gives no records.
    shown_profile
        The profile the book shows; its runs are marked ``in book``.
    """
    runs_dir = Path(runs_dir)
    records: list[dict[str, Any]] = []
    if not runs_dir.is_dir():
        return records
    for prov_path in sorted(runs_dir.glob(f"*/*/{PROVENANCE_FILE}")):
        run_dir = prov_path.parent
        study, profile = run_dir.parent.name, run_dir.name
        if study.startswith("_"):
            continue  # _runs/_results and other tables, not runs
        try:
            rec = RunRecord.read(run_dir)
        except RecordError:
            rec = None
        if rec is None:
            records.append({"study": study, "profile": profile, "in book": "", "status": "unreadable provenance.json",
                            "device": "", "wall time": "", "commit": "", "finished (UTC)": "", "data source": ""})
            continue
        profile = rec.profile or profile
        records.append({
            "study": rec.study or study,
            "profile": profile,
            "in book": "yes" if shown_profile is not None and profile == shown_profile else "",
            "status": rec.status,
            "device": _device(rec),
            "wall time": _wall(rec.duration_s),
            "commit": _commit(rec),
            "finished (UTC)": str(rec.ended or rec.started or "not recorded").replace("+00:00", ""),
            "data source": rec.data_source,
        })
    return records


def execution_table(runs_dir: Path, *, shown_profile: str | None = None) -> Any:
    """:func:`execution_records` as a :class:`pandas.DataFrame` with the :data:`COLUMNS`."""
    import pandas as pd

    return pd.DataFrame(execution_records(runs_dir, shown_profile=shown_profile), columns=list(COLUMNS))
