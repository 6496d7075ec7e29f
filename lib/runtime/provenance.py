"""Provenance of a run: git state, package versions, platform, device, seed and parameters.

:func:`provenance` makes the record that the runner writes as ``provenance.json`` beside every
executed notebook and shows in the notebook's first (collapsed) cell.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from lib.core.repro import device_info

__all__ = ["git_state", "package_versions", "provenance", "PROVENANCE_PACKAGES"]

#: Packages whose versions every provenance record lists.
PROVENANCE_PACKAGES: tuple[str, ...] = (
    "torch",
    "numpy",
    "scipy",
    "SimpleITK",
    "pandas",
    "seaborn",
    "scikit-learn",
    "matplotlib",
    "jupyter-book",
    "papermill",
    "jupytext",
)


def git_state(repo: str | Path | None = None) -> dict[str, Any]:
    """Commit hash and dirty flag of the repository containing ``repo`` (default: this checkout).

    Returns ``{"commit": None, "dirty": None, "error": "..."}`` when there is no git
    checkout (a zip download, a Binder image) or no ``git`` executable.
    """
    where = Path(repo) if repo is not None else Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        return {"commit": commit, "dirty": bool(status.strip())}
    except (OSError, subprocess.SubprocessError) as err:
        return {"commit": None, "dirty": None, "error": f"no git checkout: {type(err).__name__}"}


def package_versions(packages: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str | None]:
    """Installed distribution versions (``None`` for a package that is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def provenance(
    *,
    seed: int | None = None,
    profile: str | None = None,
    params_sha256: str | None = None,
    parameters: dict[str, Any] | None = None,
    device: Any = "auto",
    study: str | None = None,
) -> dict[str, Any]:
    """A provenance record: git state, versions, device, seed, profile and parameter hash.

    The result is JSON-serialisable; it is written next to every executed notebook as
    ``provenance.json`` and shown in the notebook's first (collapsed) cell.
    """
    record: dict[str, Any] = {
        "study": study,
        "profile": profile,
        "seed": seed,
        "params_sha256": params_sha256,
        "parameters": parameters,
        "git": git_state(),
        "versions": package_versions(),
        "platform": {"system": platform.platform(), "machine": platform.machine(), "cpus": os.cpu_count()},
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }
    try:
        record["device"] = device_info(device)
    except (RuntimeError, ValueError, TypeError) as err:
        record["device"] = {"device": str(device), "error": str(err)}
    return record
