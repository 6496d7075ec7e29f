"""Command-line entry points that do not execute notebooks."""

import subprocess
import sys

import pytest

from lib.cli import main
from lib.core import registry


def test_python_dash_m_lib_help():
    out = subprocess.run([sys.executable, "-m", "lib", "--help"], capture_output=True, text=True, check=True).stdout
    for cmd in ("run", "list", "params", "book", "data"):
        assert cmd in out


def test_data_list(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    assert "nist-pgaa" in out and "dsb2018" in out


def test_data_verify_needs_a_name(capsys):
    assert main(["data", "verify"]) == 2
    assert "needs a dataset name" in capsys.readouterr().err


def test_data_verify_unavailable_is_an_error(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv(registry.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(registry.MIRROR_ENV, raising=False)
    assert main(["data", "verify", "unitobrain-samples"]) == 1
    err = capsys.readouterr().err
    assert "not available" in err and registry.MIRROR_ENV in err


def test_data_verify_mirror(capsys):
    mirror = registry.mirror_dir()
    if mirror is None or not (mirror / "perfusion/unitobrain-samples").is_dir():
        pytest.skip("no local data mirror")
    assert main(["data", "verify", "unitobrain-samples"]) == 0
    assert "all 3 files verified" in capsys.readouterr().out
