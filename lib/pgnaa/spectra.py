"""Gamma-ray spectrum files: CSV and ORTEC/IAEA ``.SPE`` readers, energy calibration and rebinning.

A spectrum is a vector of integer counts per detector channel together with an energy
calibration ``E(ch) = offset + gain * ch + quad * ch**2`` (keV, ``ch`` = 0-based channel index,
energy of the channel centre). Spectra recorded with different gains must be put on a
common energy grid before they are compared, otherwise a classifier can learn the gain
instead of the material (:func:`rebin`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = [
    "Spectrum",
    "Calibration",
    "read_csv",
    "write_csv",
    "read_spe",
    "read_spectrum",
    "channel_edges",
    "energy_grid",
    "rebin",
    "CSV_ENERGY_COLUMN",
    "CSV_COUNTS_COLUMN",
]

CSV_ENERGY_COLUMN = "Energy (keV)"
CSV_COUNTS_COLUMN = "Counts"
#: Largest count per channel a file may hold: 2**53 is the last integer float64 represents exactly (int64 ends
#: at 2**63 - 1); no detector channel records that many events, so a larger value means a corrupt file.
_MAX_COUNT = 2**53


@dataclass(frozen=True)
class Calibration:
    """Polynomial energy calibration ``E(ch) = offset + gain*ch + quad*ch**2`` in keV.

    Parameters
    ----------
    offset : float
        Energy of channel 0 (keV).
    gain : float
        keV per channel (must be positive).
    quad : float
        Quadratic term (keV per channel²).
    """

    offset: float
    gain: float
    quad: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite([self.offset, self.gain, self.quad]).all():
            raise ValueError(f"calibration coefficients must be finite, got {self}")
        if self.gain <= 0:
            raise ValueError(f"calibration gain must be positive (keV/channel), got {self.gain}")

    def energy(self, channels: np.ndarray | int) -> np.ndarray:
        """Energy (keV) of channel centres ``channels`` (any shape)."""
        ch = np.asarray(channels, dtype=float)
        return self.offset + self.gain * ch + self.quad * ch**2

    @classmethod
    def from_two_points(cls, ch1: float, e1: float, ch2: float, e2: float) -> Calibration:
        """Linear calibration through two (channel, energy keV) points."""
        if ch1 == ch2:
            raise ValueError("the two calibration points need different channels")
        gain = (e2 - e1) / (ch2 - ch1)
        return cls(offset=e1 - gain * ch1, gain=gain)


@dataclass
class Spectrum:
    """One measured or simulated spectrum.

    Attributes
    ----------
    counts : numpy.ndarray, shape (n_channels,)
        Counts per channel (integers for a measurement, floats after rebinning to a grid
        whose edges do not coincide with channel edges).
    energy : numpy.ndarray, shape (n_channels,)
        Channel-centre energies (keV), strictly increasing.
    live_time : float or None
        Live time (s), if known.
    real_time : float or None
        Real time (s), if known.
    label : str or None
        Class or sample name.
    meta : dict
        Free-form header information.
    """

    counts: np.ndarray
    energy: np.ndarray
    live_time: float | None = None
    real_time: float | None = None
    label: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.counts = np.asarray(self.counts)
        self.energy = np.asarray(self.energy, dtype=float)
        if self.counts.ndim != 1 or self.energy.shape != self.counts.shape:
            raise ValueError(
                f"counts and energy must be 1-D of equal length, got {self.counts.shape} and {self.energy.shape}"
            )
        _check_energy(self.energy, "energy")
        _check_counts(self.counts, "counts", integer=False)

    @property
    def n_channels(self) -> int:
        return int(self.counts.shape[0])

    @property
    def total(self) -> float:
        """Total number of counts."""
        return float(self.counts.sum())

    @property
    def edges(self) -> np.ndarray:
        """Channel edges (keV), shape (n_channels + 1,)."""
        return channel_edges(self.energy)

    def rebin(self, edges: np.ndarray, *, integer: bool | None = None) -> Spectrum:
        """This spectrum on new energy bin ``edges`` (keV); see :func:`rebin`."""
        c = rebin(self.counts, self.edges, edges, integer=integer)
        centres = 0.5 * (np.asarray(edges)[1:] + np.asarray(edges)[:-1])
        return Spectrum(c, centres, self.live_time, self.real_time, self.label, dict(self.meta))


def _check_energy(energy: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(energy)):
        raise ValueError(f"{what}: energies must be finite (found NaN/inf)")
    if energy.size > 1 and not np.all(np.diff(energy) > 0):
        bad = int(np.argmin(np.diff(energy) > 0))
        raise ValueError(
            f"{what}: energies must be strictly increasing, but entry {bad + 1} ({energy[bad + 1]!r} keV) "
            f"does not exceed entry {bad} ({energy[bad]!r} keV); sort the file by energy or fix the calibration"
        )


def _check_counts(counts: np.ndarray, what: str, *, integer: bool) -> None:
    if not np.issubdtype(counts.dtype, np.number):
        raise TypeError(f"{what}: counts must be numeric, got dtype {counts.dtype}")
    if not np.all(np.isfinite(counts)):
        raise ValueError(f"{what}: counts must be finite (found NaN/inf)")
    if np.any(counts < 0):
        i = int(np.argmax(counts < 0))
        raise ValueError(f"{what}: counts must be non-negative, channel {i} has {counts[i]!r}")
    if integer and not np.all(counts == np.round(counts)):
        i = int(np.argmax(counts != np.round(counts)))
        raise ValueError(
            f"{what}: counts must be integers (raw event counts), channel {i} has {counts[i]!r}; "
            "pass a raw measurement, not a normalised or background-subtracted spectrum"
        )


def read_csv(path: str | Path, *, label: str | None = None) -> Spectrum:
    """Read a spectrum CSV with columns ``Energy (keV)`` and ``Counts`` (the paper's format).

    Parameters
    ----------
    path : str or Path
        CSV file; one header row, then one row per channel.
    label : str, optional
        Class name stored on the result (default: the file stem).

    Returns
    -------
    Spectrum
        Integer counts (int64) and channel energies (keV).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        On missing columns, non-numeric cells, non-increasing energies, negative or
        non-integer counts, or a count above 2**53 (which int64 could not hold or float64 not exactly).
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectrum CSV not found: {path}")
    df = pd.read_csv(path)
    missing = [c for c in (CSV_ENERGY_COLUMN, CSV_COUNTS_COLUMN) if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; expected header '{CSV_ENERGY_COLUMN},{CSV_COUNTS_COLUMN}', "
            f"found {list(df.columns)}"
        )
    if len(df) == 0:
        raise ValueError(f"{path}: no data rows")
    try:
        energy = pd.to_numeric(df[CSV_ENERGY_COLUMN], errors="raise").to_numpy(float)
        counts = pd.to_numeric(df[CSV_COUNTS_COLUMN], errors="raise").to_numpy(float)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path}: non-numeric value in the spectrum columns ({err})") from None
    _check_energy(energy, str(path))
    _check_counts(counts, str(path), integer=True)
    if counts.size and counts.max() > _MAX_COUNT:
        i = int(np.argmax(counts))
        raise ValueError(
            f"{path}: data row {i + 1} (channel {i}): the count {df[CSV_COUNTS_COLUMN].iloc[i]!r} exceeds 2**53 = "
            f"{_MAX_COUNT}, the largest count a spectrum holds exactly; no detector channel records that many "
            "events, so the file is corrupt or not a count spectrum. Fix that line or re-export the spectrum."
        )
    return Spectrum(counts.astype(np.int64), energy, label=label if label is not None else path.stem,
                    meta={"path": str(path)})


def write_csv(spectrum: Spectrum, path: str | Path) -> Path:
    """Write ``spectrum`` as the paper's two-column CSV (``Energy (keV)``, ``Counts``)."""
    import pandas as pd

    path = Path(path)
    pd.DataFrame({CSV_ENERGY_COLUMN: np.round(spectrum.energy, 4), CSV_COUNTS_COLUMN: spectrum.counts}).to_csv(
        path, index=False
    )
    return path


_SECTION = re.compile(r"^\$([A-Z_]+):\s*$")


def read_spe(path: str | Path, *, calibration: Calibration | None = None, label: str | None = None) -> Spectrum:
    """Read an ORTEC/IAEA ASCII ``.SPE`` spectrum.

    Sections used: ``$DATA:`` (first and last channel, then one or more integers per line),
    ``$MEAS_TIM:`` (live and real time, s), ``$ENER_FIT:`` (offset, gain[, quad]) or
    ``$MCA_CAL:`` (number of coefficients, then the coefficients).

    Parameters
    ----------
    path : str or Path
        The ``.SPE`` file.
    calibration : Calibration, optional
        Overrides the file's calibration (required if the file has none).
    label : str, optional
        Stored on the result (default: the parent folder name).

    Returns
    -------
    Spectrum
        Integer counts (int64), channel-centre energies (keV), live/real time;
        ``meta['calibration']`` holds the :class:`Calibration` used.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file; missing ``$DATA``; wrong number of channels; a count that is not a number,
        negative, non-integer or above 2**53 (an overflowing count would otherwise wrap around to
        a negative int64); a ``$MEAS_TIM`` line that is not two finite times with
        ``0 <= live <= real``; no calibration in the file and none given. Each message names the
        file and, for a bad line, its line number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SPE file not found: {path}")
    lines = path.read_text(errors="replace").splitlines()
    sections: dict[str, list[tuple[int, str]]] = {}  # section -> [(1-based line number, stripped text)]
    current = None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        m = _SECTION.match(line)
        if m:
            current = m.group(1)
            sections.setdefault(current, [])
        elif current is not None and line:
            sections[current].append((number, line))
    if "DATA" not in sections or not sections["DATA"]:
        raise ValueError(f"{path}: no $DATA section; not an ORTEC/IAEA SPE spectrum")
    data = sections["DATA"]
    try:
        first, last = (int(t) for t in data[0][1].split()[:2])
    except ValueError as err:
        raise ValueError(
            f"{path}: line {data[0][0]}: malformed $DATA header {data[0][1]!r} ({err}); it must hold the first "
            "and last channel numbers, e.g. '0 16383'"
        ) from None
    tokens = [(number, t) for number, row in data[1:] for t in row.split()]
    try:  # the usual file: integer counts that int64 holds and float64 represents exactly
        values = np.array([int(t) for _, t in tokens], dtype=np.int64)
        exact = values.size == 0 or int(np.abs(values).max()) <= _MAX_COUNT
    except (ValueError, OverflowError):
        exact = False
    if not exact:  # token by token, to name the line of a count that is not a number or overflows
        values = np.array([_spe_count(t, number, path) for number, t in tokens], dtype=float)
    n = last - first + 1
    if n <= 0 or values.size != n:
        raise ValueError(
            f"{path}: $DATA header announces channels {first}..{last} ({n} values) but {values.size} were found"
        )
    _check_counts(values, str(path), integer=True)
    live = real = None
    if sections.get("MEAS_TIM"):
        live, real = _spe_times(*sections["MEAS_TIM"][0], path)
    if calibration is None:
        calibration = _spe_calibration(sections, path)
    energy = calibration.energy(np.arange(first, last + 1))
    _check_energy(energy, str(path))
    return Spectrum(
        values.astype(np.int64),
        energy,
        live_time=live,
        real_time=real,
        label=label if label is not None else path.parent.name,
        meta={"path": str(path), "calibration": calibration, "first_channel": first},
    )


def _spe_count(token: str, line: int, path: Path) -> float:
    """One ``$DATA`` count, refused with the file, line and fix when it is not a number or overflows."""
    digits = token.lstrip("+-")
    if digits.isascii() and digits.isdigit():  # an integer: compared exactly (float() rounds 2**53 + 1 down)
        magnitude = int(digits) if len(digits) <= 17 else None  # longer ones overflow (and int() caps digits)
        value = math.inf if magnitude is None or magnitude > _MAX_COUNT else float(int(token))
    else:
        try:
            value = float(token)  # a mantissa too long for a float parses as inf, refused below
        except ValueError:
            value = math.nan
    if math.isnan(value):
        raise ValueError(
            f"{path}: line {line}: the $DATA count {token!r} is not a number; the $DATA section holds the channel "
            "range, then one integer count per channel. Fix that line or re-export the spectrum."
        )
    if abs(value) > _MAX_COUNT:
        raise ValueError(
            f"{path}: line {line}: the $DATA count {token[:30]}{'...' if len(token) > 30 else ''} exceeds "
            f"2**53 = {_MAX_COUNT}, the largest count a "
            "spectrum holds exactly (int64 overflows at 2**63); no detector channel records that many events, so "
            "the file is corrupt or not a count spectrum. Fix that line or re-export the spectrum."
        )
    return value


def _spe_times(line: int, text: str, path: Path) -> tuple[float, float]:
    """``(live, real)`` seconds from a ``$MEAS_TIM`` line, refused with the file, line and fix when malformed."""
    fix = (
        f"{path}: line {line}: $MEAS_TIM must hold the live and the real time in seconds, live <= real, "
        f"e.g. '7650.64 7804.39'; found {text!r}"
    )
    tokens = text.split()
    try:
        live, real = float(tokens[0]), float(tokens[1])
    except (ValueError, IndexError):
        raise ValueError(f"{fix}. Fix that line (or delete the section if the times are unknown).") from None
    if not (np.isfinite([live, real]).all() and 0 <= live <= real):
        raise ValueError(
            f"{fix}, which is not a finite pair with 0 <= live <= real. Fix that line (or delete the section if "
            "the times are unknown)."
        )
    return live, real


def _spe_calibration(sections: dict[str, list[tuple[int, str]]], path: Path) -> Calibration:
    try:
        if sections.get("ENER_FIT"):
            c = [float(t) for t in sections["ENER_FIT"][0][1].split()]
            return Calibration(c[0], c[1], c[2] if len(c) > 2 else 0.0)
        if sections.get("MCA_CAL") and len(sections["MCA_CAL"]) >= 2:
            count = int(sections["MCA_CAL"][0][1].split()[0])
            c = [float(t) for t in sections["MCA_CAL"][1][1].split()[:count]]
            return Calibration(c[0], c[1], c[2] if len(c) > 2 else 0.0)
    except (ValueError, IndexError) as err:
        raise ValueError(f"{path}: malformed energy calibration ({err})") from None
    raise ValueError(
        f"{path}: no energy calibration ($ENER_FIT or $MCA_CAL); pass calibration=Calibration(offset, gain)"
    )


def read_spectrum(path: str | Path, **kwargs) -> Spectrum:
    """Read a ``.csv`` or ``.spe`` spectrum by file extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".csv":
        return read_csv(path, **kwargs)
    if suffix == ".spe":
        return read_spe(path, **kwargs)
    raise ValueError(f"{path}: unknown spectrum format '{suffix}' (expected .csv or .spe)")


def channel_edges(energy: np.ndarray) -> np.ndarray:
    """Bin edges (keV) from channel-centre energies, shape (n,) -> (n + 1,).

    Interior edges are midpoints; the outer edges are extrapolated by half a channel.
    """
    e = np.asarray(energy, dtype=float)
    if e.ndim != 1 or e.size < 2:
        raise ValueError("need at least two channel energies to build bin edges")
    mid = 0.5 * (e[1:] + e[:-1])
    return np.concatenate([[e[0] - (mid[0] - e[0])], mid, [e[-1] + (e[-1] - mid[-1])]])


def energy_grid(e_min: float, e_max: float, width: float) -> np.ndarray:
    """Uniform bin edges (keV) from ``e_min`` to (about) ``e_max`` with bin ``width`` keV."""
    if not (e_max > e_min and width > 0):
        raise ValueError(f"need e_max > e_min and width > 0, got {e_min}, {e_max}, {width}")
    n = int(np.floor((e_max - e_min) / width + 1e-9))
    return e_min + width * np.arange(n + 1)


def rebin(counts: np.ndarray, src_edges: np.ndarray, dst_edges: np.ndarray, *, integer: bool | None = None
          ) -> np.ndarray:
    """Redistribute counts from source bins onto destination bins (counts are conserved).

    The cumulative count is interpolated linearly at the destination edges (counts are
    assumed uniform within a source bin); outside the source range the destination bins
    get zero. With ``integer=True`` the cumulative sum is rounded first, so the result is
    integral and still sums to the counts inside the destination range.

    Parameters
    ----------
    counts : numpy.ndarray, shape (..., n)
        Counts per source bin (batched over leading axes).
    src_edges : numpy.ndarray, shape (n + 1,)
        Source bin edges (keV), strictly increasing.
    dst_edges : numpy.ndarray, shape (m + 1,)
        Destination bin edges (keV), strictly increasing.
    integer : bool, optional
        Round to integral counts (default: True when ``counts`` has an integer dtype).

    Returns
    -------
    numpy.ndarray, shape (..., m)
        int64 if ``integer`` else float64.
    """
    counts = np.asarray(counts)
    src = np.asarray(src_edges, dtype=float)
    dst = np.asarray(dst_edges, dtype=float)
    if counts.shape[-1] + 1 != src.shape[0]:
        raise ValueError(f"src_edges must have n+1={counts.shape[-1] + 1} entries, got {src.shape[0]}")
    _check_energy(src, "src_edges")
    _check_energy(dst, "dst_edges")
    if integer is None:
        integer = np.issubdtype(counts.dtype, np.integer)
    cum = np.concatenate([np.zeros(counts.shape[:-1] + (1,)), np.cumsum(counts, axis=-1, dtype=float)], axis=-1)
    flat = cum.reshape(-1, cum.shape[-1])
    # linear interpolation of each row at dst (vectorised via shared indices)
    idx = np.clip(np.searchsorted(src, dst, side="right") - 1, 0, src.size - 2)
    t = np.clip((dst - src[idx]) / (src[idx + 1] - src[idx]), 0.0, 1.0)
    at = flat[:, idx] * (1 - t) + flat[:, idx + 1] * t
    if integer:
        at = np.round(at)
    out = np.diff(at, axis=-1).reshape(counts.shape[:-1] + (dst.size - 1,))
    return out.astype(np.int64) if integer else out
