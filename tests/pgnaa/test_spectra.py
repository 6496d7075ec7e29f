"""Spectrum readers (CSV, ORTEC/IAEA SPE), calibration and rebinning."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from lib.pgnaa.spectra import (
    Calibration,
    Spectrum,
    channel_edges,
    energy_grid,
    read_csv,
    read_spe,
    read_spectrum,
    rebin,
    write_csv,
)

NIST = Path(os.environ.get("STUDIES_DATA_MIRROR", "/work/shared/data")) / "pgnaa" / "nist-pgaa"

SPE = """$SPEC_ID:
test
$MEAS_TIM:
10.0 12.5
$DATA:
0 4
1
5
0
7
2
$ENER_FIT:
1.0 0.5 0.0
$ENDRECORD:
"""


def test_calibration_two_points_matches_paper():
    cal = Calibration.from_two_points(8000, 5641.92, 16384, 11552.48)
    assert cal.gain == pytest.approx(0.704981, rel=1e-5)
    assert cal.energy(8000) == pytest.approx(5641.92)
    assert cal.energy(16384) == pytest.approx(11552.48)
    with pytest.raises(ValueError, match="gain"):
        Calibration(0.0, -1.0)


def test_read_spe_minimal(tmp_path):
    p = tmp_path / "a.spe"
    p.write_text(SPE)
    sp = read_spe(p)
    np.testing.assert_array_equal(sp.counts, [1, 5, 0, 7, 2])
    np.testing.assert_allclose(sp.energy, 1.0 + 0.5 * np.arange(5))
    assert sp.live_time == 10.0 and sp.real_time == 12.5
    assert read_spectrum(p).total == 15


@pytest.mark.parametrize(
    "text, match",
    [
        (SPE.replace("$DATA:\n0 4", "$COUNTS:\n0 4"), "no \\$DATA"),
        (SPE.replace("0 4\n", "0 5\n"), "announces channels"),
        (SPE.replace("\n7\n", "\n-7\n"), "non-negative"),
        (SPE.replace("\n7\n", "\n7.5\n"), "integers"),
        (SPE.replace("$ENER_FIT:\n1.0 0.5 0.0\n", ""), "no energy calibration"),
    ],
)
def test_read_spe_malformed(tmp_path, text, match):
    p = tmp_path / "bad.spe"
    p.write_text(text)
    with pytest.raises(ValueError, match=match):
        read_spe(p)


@pytest.mark.parametrize(
    "count",
    [
        "99999999999999999999",  # parsed as 1e20, which int64 wraps to a negative count
        "9223372036854775808",  # int64 max + 1
        "9007199254740993",  # 2**53 + 1: no longer exact in float64
        "9" * 400,  # parses as inf
    ],
)
def test_read_spe_overflowing_count_names_file_and_line(tmp_path, count):
    p = tmp_path / "overflow.spe"
    p.write_text(SPE.replace("\n7\n", f"\n{count}\n"))
    with pytest.raises(ValueError) as err:
        read_spe(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}: line 10: the $DATA count {count[:30]}")
    assert "exceeds 2**53 = 9007199254740992" in msg and "Fix that line or re-export the spectrum" in msg


def test_read_spe_count_at_the_limit_is_kept_exactly(tmp_path):
    p = tmp_path / "limit.spe"
    p.write_text(SPE.replace("\n7\n", "\n9007199254740992\n"))
    assert read_spe(p).counts[3] == 2**53


@pytest.mark.parametrize("count", ["abc", "nan"])
def test_read_spe_non_numeric_count_names_file_and_line(tmp_path, count):
    p = tmp_path / "nan.spe"
    p.write_text(SPE.replace("\n7\n", f"\n{count}\n"))
    with pytest.raises(ValueError, match=rf"^{p}: line 10: the \$DATA count '{count}' is not a number"):
        read_spe(p)


@pytest.mark.parametrize(
    "times, why",
    [
        ("10.0 abc", "\\. Fix that line"),
        ("10.0", "\\. Fix that line"),
        ("-1 12.5", "not a finite pair"),
        ("12.5 10.0", "not a finite pair"),
        ("inf 12.5", "not a finite pair"),
    ],
)
def test_read_spe_bad_meas_tim_names_file_line_and_fix(tmp_path, times, why):
    p = tmp_path / "times.spe"
    p.write_text(SPE.replace("10.0 12.5", times))
    with pytest.raises(ValueError, match=rf"^{p}: line 4: \$MEAS_TIM must hold the live and the real time") as err:
        read_spe(p)
    assert f"found {times!r}" in str(err.value)
    assert re.search(why, str(err.value)) and "delete the section if the times are unknown" in str(err.value)


def test_read_csv_overflowing_count_names_file_and_row(tmp_path):
    p = tmp_path / "overflow.csv"
    p.write_text("Energy (keV),Counts\n1,1\n2,99999999999999999999\n3,4\n")
    with pytest.raises(ValueError, match=rf"^{p}: data row 2 \(channel 1\): the count .* exceeds 2\*\*53"):
        read_csv(p)


def test_read_spe_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_spe(tmp_path / "nope.spe")


def test_csv_roundtrip(tmp_path):
    sp = Spectrum(np.array([0, 3, 9, 1]), np.array([10.0, 10.7, 11.4, 12.1]))
    p = write_csv(sp, tmp_path / "s.csv")
    assert p.read_text().splitlines()[0] == "Energy (keV),Counts"
    back = read_csv(p)
    np.testing.assert_array_equal(back.counts, sp.counts)
    np.testing.assert_allclose(back.energy, sp.energy)


@pytest.mark.parametrize(
    "body, match",
    [
        ("E,Counts\n1,2\n", "missing column"),
        ("Energy (keV),Counts\n2,1\n1,2\n", "strictly increasing"),
        ("Energy (keV),Counts\n1,1\n2,-2\n", "non-negative"),
        ("Energy (keV),Counts\n1,1\n2,0.5\n", "integers"),
        ("Energy (keV),Counts\n1,1\n2,abc\n", "non-numeric"),
        ("Energy (keV),Counts\n", "no data"),
    ],
)
def test_read_csv_malformed(tmp_path, body, match):
    p = tmp_path / "bad.csv"
    p.write_text(body)
    with pytest.raises(ValueError, match=match):
        read_csv(p)


def test_rebin_conserves_counts_and_is_integral():
    rng = np.random.default_rng(0)
    counts = rng.poisson(50, size=(3, 200))
    src = channel_edges(0.3 + 0.71 * np.arange(200))
    dst = energy_grid(-1.0, 200.0, 2.8)
    out = rebin(counts, src, dst)
    assert out.dtype == np.int64 and out.shape == (3, dst.size - 1)
    np.testing.assert_array_equal(out.sum(axis=1), counts.sum(axis=1))  # dst covers src
    # identity when the grids coincide
    np.testing.assert_array_equal(rebin(counts, src, src), counts)
    # two-to-one merge is exact
    np.testing.assert_array_equal(rebin(counts, src, src[::2]), counts[:, 0::2] + counts[:, 1::2])


def test_rebin_float_mode_matches_uniform_density():
    src = np.array([0.0, 1.0, 2.0])
    out = rebin(np.array([4.0, 8.0]), src, np.array([0.5, 1.5]), integer=False)
    np.testing.assert_allclose(out, [2.0 + 4.0])


@pytest.mark.skipif(not (NIST / "manifest.csv").is_file(), reason="NIST mirror not available")
def test_read_nist_spe_matches_manifest():
    import pandas as pd

    man = pd.read_csv(NIST / "manifest.csv").iloc[[0, 100, 200]]
    for _, row in man.iterrows():
        sp = read_spe(NIST / row.path)
        assert sp.n_channels == row.n_channels == 16384
        assert sp.total == row.total_counts
        assert sp.live_time == pytest.approx(row.live_time_s)
        assert sp.meta["calibration"].gain == pytest.approx(row.ecal_gain_keV_per_ch)
