"""Shared test configuration.

* ``STUDIES_DATA_MIRROR`` points at ``../shared/data`` when that mirror exists beside the
  checkout (as in CI) and the variable is not already set.
* ``minibook`` is a throw-away copy of a tiny study collection (one fixture chapter) for
  runner and book tests.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("MPLBACKEND", "Agg")
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
