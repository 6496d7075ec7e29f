"""Shared test configuration.

* ``STUDIES_DATA_MIRROR`` points at ``../shared/data`` when that mirror exists beside the
  checkout (as in CI) and the variable is not already set.
* Under ``pytest -n N`` (``make test``: two workers on two cores) each worker, and every chapter it runs, gets
  ``OMP_NUM_THREADS=1`` unless the variable is set: with one OpenMP thread per core in each worker, the
  workers' threads spun against each other and a ci chapter took 650 s instead of 30 s.
* ``minibook`` is a throw-away copy of a tiny study collection (one fixture chapter) for
  runner and book tests.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("MPLBACKEND", "Agg")
if os.environ.get("PYTEST_XDIST_WORKER") and "OMP_NUM_THREADS" not in os.environ:
    os.environ["OMP_NUM_THREADS"] = "1"  # torch and BLAS here; the runner passes it on to the kernels' Numba
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
_shared = REPO.parent / "shared" / "data"
if "STUDIES_DATA_MIRROR" not in os.environ and _shared.is_dir():
    os.environ["STUDIES_DATA_MIRROR"] = str(_shared)


@pytest.fixture
def minibook(tmp_path: Path) -> Path:
    """A copy of ``tests/fixtures/minibook`` (book/, parameters/, _toc.yml) with the real ``_config.yml``."""
    dest = tmp_path / "minibook"
    shutil.copytree(FIXTURES / "minibook", dest)
    # the book's real configuration and bibliography, so the tests check them too
    shutil.copy2(REPO / "_config.yml", dest / "_config.yml")
    for name in ("references.bib", "references.md"):
        shutil.copy2(REPO / "book" / name, dest / "book" / name)
    return dest
