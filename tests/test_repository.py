"""Guards on what the repository tracks: no executed notebooks, build output, data or weights."""

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FORBIDDEN_SUFFIXES = {".ipynb", ".pt", ".pth", ".ckpt", ".npz", ".npy", ".h5", ".sds", ".spe", ".dcm", ".png",
                      ".jpg", ".tif", ".tiff", ".zip", ".tar", ".gz"}
FORBIDDEN_DIRS = {"_build", "_runs", ".venv", "results", ".snakemake", "data"}


def _shipped_data() -> set[str]:
    """The one dataset that ships with the project, file by file: the rt-reference test oracle (2.3 MB)."""
    from lib.core import registry

    root = registry.RT_REFERENCE_SHIPPED.relative_to(REPO).as_posix()
    return {f"{root}/{f.path}" for f in registry.get("rt-reference").files}


def _tracked() -> list[str]:
    try:
        out = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return out.splitlines()


def test_no_build_output_data_or_weights_tracked():
    bad = []
    shipped = _shipped_data()
    for path in _tracked():
        p = Path(path)
        if path in shipped:
            continue
        if p.suffix.lower() in FORBIDDEN_SUFFIXES or (p.parts and p.parts[0] in FORBIDDEN_DIRS):
            bad.append(path)
    assert not bad, f"tracked files that belong to builds, data or weights: {bad[:10]}"


def test_no_large_files_tracked():
    shipped = _shipped_data()  # case32/signals.npy of the shipped oracle is 1.2 MB
    big = [p for p in _tracked() if p not in shipped and (REPO / p).is_file() and (REPO / p).stat().st_size > 1_000_000]
    assert not big, f"files over 1 MB are tracked: {big}"


def test_every_study_has_ci_lab_and_paper_profiles():
    from lib.runtime.run import list_studies

    for st in list_studies(REPO):
        assert {"ci", "lab", "paper"} <= set(st.profiles), f"{st.name} lacks a standard profile"
