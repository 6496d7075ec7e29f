"""The ``studies`` console script of ``pyproject.toml``, installed NON-editable into a fresh virtual environment.

Every other test runs ``python -m lib`` from the checkout, which imports the checkout's ``lib/``; only an installed
copy shows whether ``[project.scripts]`` points at a module that exists and whether the package data travel with the
wheel. The wheel is built from a copy of the project (so no ``build/`` or ``*.egg-info`` lands in the checkout) and
installed into a virtual environment whose ``site-packages`` sees the project's ``.venv`` packages through a
``.pth`` line (no download, no dependency resolution). The commands then run from a folder outside the checkout,
so that ``import lib`` can only find the installed copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], *, cwd: Path, env: dict[str, str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, Path]:
    """A venv holding the project installed from a wheel; returns its ``bin`` folder and a folder outside the repo."""
    base = tmp_path_factory.mktemp("installed")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    shutil.copytree(REPO / "lib", src / "lib", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "STUDIES_ROOT", "PIP_REQUIRE_VIRTUALENV"}}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels = base / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                  "--wheel-dir", str(wheels), str(src)], cwd=base, env=env, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = next(wheels.glob("studies_lib-*.whl"))

    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    py = bin_dir / "python"
    purelib = _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                   cwd=base, env=env).stdout.strip()
    # the project's environment (torch, papermill, pip, ...) after the venv's own site-packages
    (Path(purelib) / "_project_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    inst = _run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
                cwd=base, env=env, timeout=300)
    assert inst.returncode == 0, inst.stdout + inst.stderr
    outside = base / "elsewhere"
    outside.mkdir()
    return {"bin": bin_dir, "outside": outside, "purelib": Path(purelib), "env": env}


def test_installed_copy_is_imported(installed):
    out = _run([str(installed["bin"] / "python"), "-c", "import lib.cli as m; print(m.__file__)"],
               cwd=installed["outside"], env=installed["env"])
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()).is_relative_to(installed["purelib"]), out.stdout
    assert (installed["purelib"] / "lib" / "core" / "manifests").is_dir(), "the manifests are not in the wheel"


def test_studies_help(installed):
    out = _run([str(installed["bin"] / "studies"), "--help"], cwd=installed["outside"], env=installed["env"])
    assert out.returncode == 0, out.stderr
    for cmd in ("run", "list", "params", "book", "data"):
        assert cmd in out.stdout


def test_studies_list_and_params_with_studies_root(installed):
    env = {**installed["env"], "STUDIES_ROOT": str(REPO)}
    listed = _run([str(installed["bin"] / "studies"), "list"], cwd=installed["outside"], env=env)
    assert listed.returncode == 0, listed.stderr
    rows = [line.split()[:2] for line in listed.stdout.splitlines()[1:]]
    for study in ("nuclei", "perfusion", "pgnaa", "radiative"):
        assert [study, "lab"] in rows, listed.stdout
    params = _run([str(installed["bin"] / "studies"), "params", "pgnaa"], cwd=installed["outside"], env=env)
    assert params.returncode == 0, params.stderr
    assert "n_test_per_class" in params.stdout and "(min 1)" in params.stdout, params.stdout


def test_studies_list_from_the_checkout(installed):
    """An installed copy run inside a checkout (or a folder of it) finds the chapters there."""
    out = _run([str(installed["bin"] / "studies"), "list"], cwd=REPO / "parameters", env=installed["env"])
    assert out.returncode == 0, out.stderr
    assert "pgnaa" in out.stdout


def test_studies_list_outside_a_checkout_says_what_to_do(installed):
    out = _run([str(installed["bin"] / "studies"), "list"], cwd=installed["outside"], env=installed["env"])
    assert out.returncode == 2
    assert "STUDIES_ROOT" in out.stderr and "Traceback" not in out.stderr, out.stderr
