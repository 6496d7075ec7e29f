"""Every run under ``_runs/`` as one tidy table, and one table per sweep (``_runs/_results/``).

Runs are ``<study>/<profile>/`` and ``<study>/<sweep>/<point>/`` folders holding a run record
(:class:`lib.runtime.record.RunRecord`), whoever made them (the workflow, ``make book``, a user's
``studies run``, a GPU box or a cluster whose run folders were copied in). :func:`gather_runs` reads
them through the record's reader; :func:`write_tables` writes the table as CSV (and Parquet when
``pyarrow`` is installed). The results page and ``studies workflow gather`` read these tables.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from lib.runtime.record import PROVENANCE_FILE, RecordError, RunRecord, data_source_text

__all__ = ["RESULTS_DIR", "COLUMNS", "gather_runs", "sweep_table", "write_tables"]

#: Where the gathered tables go, relative to the runs directory (``_runs/_results``).
RESULTS_DIR = "_results"
#: The columns of :func:`gather_runs`, before one ``param.<name>`` column per swept parameter.
COLUMNS = ["study", "profile", "sweep", "point", "run", "metric", "value", "status", "device", "device_name",
           "commit", "dirty", "started", "ended", "duration_s", "seed", "params_sha256", "overrides", "data_source"]


def gather_runs(runs_dir: str | Path):
    """Every run under ``runs_dir`` as one tidy table: one row per (run, metric).

    A run without metrics still gets one row (``metric`` empty) so failures show.

    Parameters
    ----------
    runs_dir : str or Path
        The runs folder (``_runs``).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COLUMNS` (``overrides`` is the JSON of the ``--set`` values; ``data_source`` each
        dataset the run read: ``real`` or ``synthetic (reason)``) and one ``param.<name>`` column per
        swept parameter.

    Raises
    ------
    ValueError
        A run record cannot be read (the message names the file and says to delete the run and run it again).
    """
    import pandas as pd

    runs_dir = Path(runs_dir)
    rows: list[dict[str, Any]] = []
    prov_files = sorted(runs_dir.glob(f"*/*/{PROVENANCE_FILE}")) + sorted(runs_dir.glob(f"*/*/*/{PROVENANCE_FILE}"))
    for prov_path in prov_files:
        rel = prov_path.parent.relative_to(runs_dir)
        if rel.parts[0].startswith(("_", ".")) or any(part.startswith(".") for part in rel.parts):
            continue  # _results, _logs, and the runner's temporary .<run>.tmp-<pid> folders
        try:
            rec = RunRecord.read(prov_path.parent)
        except RecordError as err:
            raise ValueError(str(err)) from None
        assert rec is not None
        is_point = len(rel.parts) == 3
        base = {
            "study": rec.study or rel.parts[0],
            "profile": rec.profile or rel.parts[1],
            "sweep": rel.parts[1] if is_point else "",
            "point": rel.parts[2] if is_point else "",
            "run": rel.as_posix(),
            "status": rec.status,
            "device": rec.device.get("device"),
            "device_name": rec.device.get("device_name"),
            "commit": rec.git.get("commit"),
            "dirty": rec.git.get("dirty"),
            "started": rec.started,
            "ended": rec.ended,
            "duration_s": rec.duration_s,
            "seed": rec.environment.get("seed"),
            "params_sha256": rec.environment.get("params_sha256"),
            "overrides": json.dumps(rec.overrides, sort_keys=True, default=str),
            "data_source": data_source_text(rec.data_sources),
        }
        params = {f"param.{k}": (json.dumps(v) if isinstance(v, (list, dict)) else v)
                  for k, v in rec.overrides.items()}
        items = list(rec.metrics.items()) or [("", math.nan)]
        for name, value in items:
            rows.append({**base, **params, "metric": name, "value": value})
    df = pd.DataFrame(rows)
    if df.empty:
        return pd.DataFrame(columns=COLUMNS)
    extra = sorted(c for c in df.columns if c.startswith("param."))
    df = df[COLUMNS + extra]
    df["value"] = pd.to_numeric(df["value"], errors="coerce")
    return df.sort_values(["study", "sweep", "profile", "point", "metric"], kind="stable").reset_index(drop=True)


def sweep_table(table, study: str, sweep: str):
    """The rows of one sweep, with only that sweep's ``param.*`` columns (tidy: one row per point and metric)."""
    sub = table[(table["study"] == study) & (table["sweep"] == sweep)]
    keep = [c for c in sub.columns if not c.startswith("param.") or sub[c].notna().any()]
    return sub[keep].reset_index(drop=True)


def write_tables(runs_dir: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Gather ``runs_dir`` and write ``runs.csv`` plus ``sweeps/<study>__<sweep>.csv`` into ``out_dir``.

    ``out_dir`` defaults to ``<runs_dir>/_results``. Parquet copies are written too when
    ``pyarrow`` is installed. Returns the files written.
    """
    runs_dir = Path(runs_dir)
    out = Path(out_dir) if out_dir is not None else runs_dir / RESULTS_DIR
    (out / "sweeps").mkdir(parents=True, exist_ok=True)
    table = gather_runs(runs_dir)
    try:
        import pyarrow  # noqa: F401

        parquet = True
    except ImportError:
        parquet = False
    written = []

    def save(df, path: Path) -> None:
        df.to_csv(path, index=False)
        written.append(path)
        if parquet:
            df.to_parquet(path.with_suffix(".parquet"), index=False)
            written.append(path.with_suffix(".parquet"))

    save(table, out / "runs.csv")
    pairs = table.loc[table["sweep"] != "", ["study", "sweep"]].drop_duplicates()
    for study, sweep in pairs.itertuples(index=False):
        save(sweep_table(table, study, sweep), out / "sweeps" / f"{study}__{sweep}.csv")
    return written
