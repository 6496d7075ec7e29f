"""Where a run may land: the ``--out`` folder is replaced only when it holds an earlier run of the study.

A run writes into a temporary sibling of its output folder and, when it ends, puts that in place of
the folder (:func:`install`), so whatever the folder held is gone. :func:`protected_reason` and
:func:`run_folder_problem` let the runner refuse, before anything runs, a folder whose loss would hurt:

* never, not even with ``--force``: a collection's root or the code's checkout or any folder above
  them, the current folder or a folder above it, ``$HOME`` or a folder above it, ``book/`` and
  ``parameters/`` and everything inside them, ``_runs/`` itself and its direct subfolders
  (``_runs/<study>``, ``_runs/_results``, ``_runs/_logs``: each holds many runs);
* unless ``--force``: a non-empty folder that is not an earlier run of the study. A run folder holds
  nothing but what the runner writes (:data:`RUN_ENTRIES`, ``<study>.ipynb`` and kept partial runs
  ``.partial-<status>/``), and either a ``provenance.json`` of this study or, where the workflow
  removed the declared outputs before re-running the job, the ``run.key`` or ``kernel.log`` (every
  run writes one) left beside them, or nothing but an empty ``figures/``.

A run that does not end ``ok`` never displaces a finished one: when the folder holds a run with
status ``ok``, the new partial run is kept inside it as ``<out>/.partial-<status>/`` (``failed``,
``timeout`` or ``interrupted``; only the latest one is kept) and the finished run, its ``run.key``
included, stays where the book and the workflow look for it. When the folder holds no finished run,
the partial run replaces it.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "PARTIAL_PREFIX",
    "RUN_ENTRIES",
    "normalise_out",
    "protected_reason",
    "run_folder_problem",
    "finished_ok",
    "install",
]

#: Name prefix of a partial run kept inside the folder of a finished one: ``<out>/.partial-<status>/``.
PARTIAL_PREFIX = ".partial-"
#: What the runner writes into a run folder besides ``<study>.ipynb`` and ``.partial-<status>/``.
RUN_ENTRIES: frozenset[str] = frozenset({"metrics.json", "provenance.json", "run.key", "kernel.log", "figures"})


def normalise_out(out: str | os.PathLike[str]) -> Path:
    """``out`` as an absolute path without ``.``, ``..`` or symbolic links (``x/..`` is the current folder)."""
    return Path(os.path.realpath(os.path.expanduser(os.fspath(out))))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def protected_reason(out_dir: Path, *, roots: Iterable[Path], cwd: Path | None = None,
                     home: Path | None = None) -> str | None:
    """Why ``out_dir`` may never be a run's output folder, or ``None`` when it may be one.

    Parameters
    ----------
    out_dir : Path
        The output folder, normalised (:func:`normalise_out`).
    roots : iterable of Path
        Checkouts: the collection's root (with ``book/``, ``parameters/``, ``_runs/``) first, then the
        checkout of the code.
    cwd, home : Path, optional
        The current folder and the home folder (default: the process's).

    Returns
    -------
    str or None
        A phrase completing "--out X is ...", e.g. ``"the checkout /src/studies"``.
    """
    roots = [normalise_out(r) for r in roots]
    cwd = normalise_out(cwd if cwd is not None else Path.cwd())
    home = normalise_out(home if home is not None else Path.home())
    for root in roots:
        if out_dir == root:
            return f"the checkout {root} itself"
        if out_dir in root.parents:
            return f"a folder above the checkout {root}"
    if out_dir == cwd or out_dir in cwd.parents:
        return f"the current folder {cwd}" if out_dir == cwd else f"a folder above the current folder {cwd}"
    if out_dir == home or out_dir in home.parents:
        return "your home folder" if out_dir == home else "a folder above your home folder"
    if roots:
        root = roots[0]
        for name in ("book", "parameters"):
            if _within(out_dir, root / name):
                return (f"the {name}/ folder of {root}" if out_dir == root / name
                        else f"inside {root / name}, the chapters' sources" if name == "book"
                        else f"inside {root / name}, the parameter files")
        runs = root / "_runs"
        if out_dir == runs:
            return f"{runs}, the folder of every run"
        if out_dir.parent == runs:
            return f"{out_dir}, the folder of many runs (a run goes one level deeper, e.g. {out_dir / 'lab'})"
    return None


def _names(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def run_folder_problem(folder: Path, study: str) -> str | None:
    """Why ``folder`` is not an earlier run of ``study``; ``None`` when it is one, is empty or does not exist.

    Parameters
    ----------
    folder : Path
        A candidate output folder.
    study : str
        The study about to run into it.

    Returns
    -------
    str or None
        A phrase naming what was found, e.g. ``"it holds thesis.tex, data, which the runner did not write"``.
    """
    if not folder.is_dir():
        return None
    entries = sorted(p.name for p in folder.iterdir())
    if not entries:
        return None
    allowed = RUN_ENTRIES | {f"{study}.ipynb"}
    foreign = [n for n in entries if n not in allowed and not n.startswith(PARTIAL_PREFIX)]
    if foreign:
        return f"it holds {_names(foreign)}, which the runner did not write"
    prov = folder / "provenance.json"
    if prov.is_file():
        try:
            record = json.loads(prov.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            return "its provenance.json is not a run record (not JSON)"
        recorded = record.get("study") if isinstance(record, dict) else None
        if recorded != study:
            return f"its provenance.json records a run of study {recorded!r}, not {study!r}"
        return None
    if {"run.key", "kernel.log"} & set(entries) or (entries == ["figures"] and not any((folder / "figures").iterdir())):
        return None
    return f"it holds {_names(entries)} but no provenance.json, run.key or kernel.log of a run"


def finished_ok(folder: Path, study: str) -> bool:
    """Whether ``folder`` holds a run of ``study`` that ended with status ``ok``."""
    try:
        record = json.loads((folder / "provenance.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(record, dict) and record.get("study") == study and record.get("status") == "ok"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def install(tmp: Path, out_dir: Path, *, study: str, status: str) -> Path:
    """Put the run folder ``tmp`` in place and return where it landed.

    A run with status ``ok``, or any run into a folder without a finished run, replaces ``out_dir``
    whole (nothing of the older run survives beside it). A ``failed``, ``timeout`` or ``interrupted``
    run into the folder of a finished (``ok``) run of the study goes to ``<out_dir>/.partial-<status>/``
    instead, replacing any partial run kept there before, and the finished run stays untouched.

    Parameters
    ----------
    tmp : Path
        The complete run folder (a sibling of ``out_dir``, so that renaming it is atomic).
    out_dir : Path
        The output folder (normalised; checked with :func:`run_folder_problem` before the run).
    study : str
        The study that ran.
    status : str
        ``ok``, ``failed``, ``timeout`` or ``interrupted``.

    Returns
    -------
    Path
        ``out_dir``, or the ``.partial-<status>`` folder inside it.
    """
    if status != "ok" and finished_ok(out_dir, study):
        for old in out_dir.glob(f"{PARTIAL_PREFIX}*"):
            _remove(old)
        dest = out_dir / f"{PARTIAL_PREFIX}{status}"
        tmp.rename(dest)
        return dest
    old = None
    if out_dir.exists() or out_dir.is_symlink():
        old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
        if old.exists() or old.is_symlink():
            _remove(old)
        out_dir.rename(old)
    tmp.rename(out_dir)
    if old is not None:
        _remove(old)
    return out_dir
