"""The page "Results across runs": our gathered runs beside the seed papers' numbers, and sweep plots.

Everything here reads the tidy table of :func:`lib.pages.tables.gather_runs` (one row per run and
metric, from every ``_runs/<study>/<profile>/`` and ``_runs/<study>/<sweep>/<point>/``), so a
run made anywhere (a laptop, a GPU box, a cluster) reaches the book by copying its run
directory into ``_runs/``; no chapter is edited.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from lib.pages.tables import sweep_table

__all__ = [
    "REFERENCE_FIELDS",
    "load_reference",
    "run_summary",
    "compare_with_paper",
    "paper_table",
    "sweep_metrics",
    "plot_sweep",
    "show_figure",
    "execute_page",
]

#: Fields of one entry of ``book/results_reference.yaml``.
REFERENCE_FIELDS = ("study", "quantity", "paper", "unit", "metric", "scale", "source", "comparable")


def load_reference(path: str | Path):
    """The seed papers' numbers (``book/results_reference.yaml``) as a DataFrame, one row per number.

    Raises
    ------
    ValueError
        An entry lacks a field or has a non-numeric ``paper`` or ``scale``.
    """
    import pandas as pd

    path = Path(path)
    entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    if not isinstance(entries, list):
        raise ValueError(f"{path} must be a list of entries with fields {', '.join(REFERENCE_FIELDS)}")
    for i, entry in enumerate(entries):
        missing = [f for f in REFERENCE_FIELDS if not isinstance(entry, dict) or f not in entry]
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {missing}; every entry needs {', '.join(REFERENCE_FIELDS)}")
        for key in ("paper", "scale"):
            if isinstance(entry[key], bool) or not isinstance(entry[key], (int, float)):
                raise ValueError(f"{path}: entry {i} ({entry['metric']}): {key} must be a number, got {entry[key]!r}")
    return pd.DataFrame(entries, columns=list(REFERENCE_FIELDS))


def _short(commit: Any) -> str:
    return str(commit)[:10] if isinstance(commit, str) and commit else "unknown"


def run_summary(table):
    """One row per run: study, run, status, data source, device, date (UTC), commit, dirty tree, duration, metrics."""
    import pandas as pd

    if table.empty:
        return pd.DataFrame(columns=["study", "run", "status", "data", "device", "date", "commit", "duration_s",
                                     "metrics"])
    first = table.groupby("run", sort=False).first()
    counts = table[table["metric"].astype(str) != ""].groupby("run").size()
    out = pd.DataFrame({
        "study": first["study"],
        "run": first.index,
        "status": first["status"],
        "data": (first["data_source"].fillna("").astype(str) if "data_source" in first else ""),
        "device": [f"{d} ({n})" if isinstance(n, str) and n and n != d else str(d)
                   for d, n in zip(first["device"], first["device_name"])],
        "date": [str(e)[:16].replace("T", " ") if isinstance(e, str) else "" for e in first["ended"]],
        "commit": [_short(c) + ("+dirty" if d is True or str(d) == "True" else "")
                   for c, d in zip(first["commit"], first["dirty"])],
        "duration_s": first["duration_s"],
        "metrics": counts.reindex(first.index).fillna(0).astype(int).to_numpy(),
    })
    return out.reset_index(drop=True)


def compare_with_paper(table, reference):
    """Our value of each reference metric in every profile run (not sweep points), beside the paper's.

    Returns
    -------
    pandas.DataFrame
        Columns ``study, quantity, paper, ours, unit, run, device, date, commit, source, comparable``;
        ``ours`` is the run's metric times the entry's ``scale`` (NaN where a run lacks the metric,
        e.g. a section switched off at that profile). Entries without any run get one row with
        ``run`` empty.
    """
    import pandas as pd

    runs = run_summary(table[table["sweep"] == ""]) if not table.empty else run_summary(table)
    values = table[table["sweep"] == ""].set_index(["run", "metric"])["value"] if not table.empty else None
    rows = []
    for ref in reference.itertuples(index=False):
        mine = runs[runs["study"] == ref.study]
        if mine.empty:
            rows.append({"study": ref.study, "quantity": ref.quantity, "paper": ref.paper, "ours": math.nan,
                         "unit": ref.unit, "run": "", "device": "", "date": "", "commit": "",
                         "source": ref.source, "comparable": ref.comparable})
            continue
        for run in mine.itertuples(index=False):
            value = values.get((run.run, ref.metric), math.nan) if values is not None else math.nan
            rows.append({"study": ref.study, "quantity": ref.quantity, "paper": ref.paper,
                         "ours": float(value) * ref.scale if value == value else math.nan, "unit": ref.unit,
                         "run": run.run, "device": run.device, "date": run.date, "commit": run.commit,
                         "source": ref.source, "comparable": ref.comparable})
    return pd.DataFrame(rows, columns=["study", "quantity", "paper", "ours", "unit", "run", "device", "date",
                                       "commit", "source", "comparable"])


def paper_table(part) -> tuple[Any, str]:
    """One study's rows of :func:`compare_with_paper` as a narrow table plus its notes, for the page.

    The device, date and commit of each run are in the runs table above it, so they are left out; the long
    ``source`` and ``comparable`` texts move to numbered notes under the table (one note per reference entry,
    shared by its runs), so the table fits the content column.

    Returns
    -------
    (pandas.DataFrame, str)
        Index ``(quantity, run)``; columns ``paper``, ``ours``, ``unit``, ``note``; and the notes as a Markdown
        list (``[n] source. comparable``).
    """
    notes: dict[tuple[str, str], int] = {}
    for src, comp in zip(part["source"], part["comparable"]):
        notes.setdefault((str(src), str(comp)), len(notes) + 1)
    shown = part.assign(note=[f"[{notes[(str(a), str(b))]}]" for a, b in zip(part["source"], part["comparable"])])
    shown = shown[["quantity", "run", "paper", "ours", "unit", "note"]].set_index(["quantity", "run"])
    text = "\n".join(f"{n}. Source: {src.rstrip('.')}. {comp}" for (src, comp), n in notes.items())
    return shown, text


def sweep_metrics(table, study: str, sweep: str, wanted: list[str] | None = None, limit: int = 4) -> list[str]:
    """The metrics to plot for a sweep: ``wanted`` (the sweep file's ``metrics``) that exist, else the first ones."""
    present = [m for m in sweep_table(table, study, sweep)["metric"].astype(str).unique() if m]
    if wanted:
        return [m for m in wanted if m in present]
    return present[:limit]


def plot_sweep(table, study: str, sweep: str, metrics: list[str]):
    """One panel per metric: the metric against the first swept parameter, one line per other combination.

    Returns a matplotlib Figure (points are runs; the x axis is logarithmic when the values span
    more than a factor 20).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    sub = sweep_table(table, study, sweep)
    params = [c for c in sub.columns if c.startswith("param.")]
    if not params or not metrics:
        raise ValueError(f"sweep {study}/{sweep} has no swept parameter or no metric to plot")
    x, others = params[0], params[1:]
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.6 * len(metrics), 3.0), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        m = sub[sub["metric"] == metric]
        groups = m.groupby(others, dropna=False) if others else [((), m)]
        for key, g in groups:
            g = g.sort_values(x)
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{o.removeprefix('param.')}={k}" for o, k in zip(others, key)) or None
            ax.plot(g[x], g["value"], "o-", label=label)
        xs = np.asarray(_numeric(sub[x]), dtype=float)
        if np.all(np.isfinite(xs)) and xs.min() > 0 and xs.max() / xs.min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel(x.removeprefix("param."))
        ax.set_title(metric, fontsize=9)
        if others:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def show_figure(fig, *, dpi: int = 110) -> None:
    """Display a matplotlib figure in place as a PNG, whatever the backend (Agg included), and close it."""
    import io

    import matplotlib.pyplot as plt
    from IPython.display import Image, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    display(Image(buf.getvalue()))


def _numeric(series):
    """``series`` as numbers where possible (NaN elsewhere)."""
    import pandas as pd

    return pd.to_numeric(series, errors="coerce")


def execute_page(source: str | Path, dest: str | Path, *, timeout: int = 600) -> Path:
    """Execute a MyST-markdown page (e.g. ``book/results.md``) into an ``.ipynb``.

    The book build executes the results page itself (after the studies); this function
    gives the page's current outputs without building the book (tests, quick looks).
    """
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    source, dest = Path(source), Path(dest)
    nb = jupytext.read(source, fmt="md:myst")
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(source.parent)}}).execute()
    nbformat.write(nb, dest)
    return dest

