"""Tests of the SDS binary and CSV dataframe readers/writers."""

from __future__ import annotations

import numpy as np
import pytest

from lib.core import registry
from lib.radiative.p1 import simulate
from lib.radiative.sds import read_dataframe, read_sds, write_dataframe, write_sds


def _rt_root():
    try:
        return registry.fetch("rt-reference", download=False)
    except registry.DataUnavailableError as err:  # pragma: no cover - depends on the machine
        pytest.skip(f"reference outputs of the original C++ solver are not available: {err}")


def test_shipped_sds_file_matches_npy_exports():
    root = _rt_root()
    sds = read_sds(root / "case16" / "rho_16.sds")
    assert (sds.version, sds.n_sim, sds.N, sds.M, sds.step_count) == (2, 4, 16, 16, 96)
    np.testing.assert_array_equal(sds.source_edge, [0, 1, 2, 3])
    np.testing.assert_array_equal(sds.source_pos, [-1, -1, -1, -1])
    rho = np.flipud(np.load(root / "case16" / "rho_input.npy"))
    for s in range(4):
        np.testing.assert_array_equal(sds.density[s], rho.astype(np.float32))
    np.testing.assert_array_equal(sds.signals, np.load(root / "case16" / "signals.npy"))


def test_sds_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rho = rng.uniform(1, 10, (2, 6, 6))
    res = simulate(rho, "down", n_steps=7)
    path = write_sds(tmp_path / "x.sds", res.signals, density=rho, source_edge=["down", "down"])
    back = read_sds(path)
    assert path.stat().st_size == 14 + 2 * (2 + 4 * 36 + 48 * 7 * 6 + 1)
    np.testing.assert_array_equal(back.signals, res.signals.astype(np.float32))
    np.testing.assert_array_equal(back.density, rho.astype(np.float32))
    np.testing.assert_array_equal(back.source_edge, [1, 1])
    v1 = read_sds(write_sds(tmp_path / "y.sds", res.signals, rho_attr=np.ones((2, 4))))
    assert v1.version == 1 and v1.density is None and v1.rho_attr.shape == (2, 4)


def test_sds_malformed_files_raise(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_sds(tmp_path / "nope.sds")
    bad = tmp_path / "bad.sds"
    bad.write_bytes(b"hello world, not sds")
    with pytest.raises(ValueError, match="magic"):
        read_sds(bad)
    res = simulate(np.ones((4, 4)), "left", n_steps=3)
    good = write_sds(tmp_path / "g.sds", res.signals, density=np.ones((1, 4, 4)))
    raw = good.read_bytes()
    (tmp_path / "trunc.sds").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        read_sds(tmp_path / "trunc.sds")
    (tmp_path / "sep.sds").write_bytes(raw[:-1] + b"X")
    with pytest.raises(ValueError, match="0x0A"):
        read_sds(tmp_path / "sep.sds")
    with pytest.raises(ValueError, match="exactly one"):
        write_sds(tmp_path / "z.sds", res.signals)


def test_dataframe_round_trip(tmp_path):
    rho = np.random.default_rng(1).uniform(1, 5, (2, 5, 5))
    res = simulate(rho, "left", n_steps=4)
    path = write_dataframe(tmp_path / "df.csv", rho=rho, final=res.final, signals=res.signals, params={"c": 299})
    write_dataframe(path, rho=rho[:1], final={k: v[:1] for k, v in res.final.items()}, signals=res.signals[:1], append=True)
    df = read_dataframe(path)
    assert len(df) == 3
    np.testing.assert_allclose(df.loc[0, "E_f"], res.final["E"][0], rtol=1e-5)
    np.testing.assert_allclose(df.loc[1, "T_l"], res.signals[1, 2, 2], rtol=1e-5)
    np.testing.assert_allclose(df.loc[2, "rho"], rho[0], rtol=1e-5)


def test_dataframe_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_dataframe(tmp_path / "none.csv")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="missing column"):
        read_dataframe(tmp_path / "x.csv")
