"""Readers and writers for the original radiative-transfer program's exports.

Two formats (Ngueguin/Nzoyem, ``src/exporter.cpp``):

**SDS binary** (little endian). Header: magic ``b"sds02"`` (V-Net repository) or ``b"sds01"`` (M1
repository), uint16 ``n_sim``, uint16 ``N``, uint16 ``M``, uint16 ``step_count``, byte ``0x0A``. Then, per
simulation: int8 ``source_edge`` (0 up, 1 down, 2 left, 3 right, -1 none), int8 ``source_pos`` (0..3 for a
source starting at 0.1/0.3/0.5/0.7, else -1); v02: float32 density ``M*N`` (rows y ascending); v01: four
float32 crenau attributes (x, y, min, max); then 12 float32 blocks ``(step_count, L)``: E, |F|, T for up,
down (L = N), left, right (L = M); then ``0x0A``.

**CSV "dataframe"** (``export_mode dataframe``): one row per simulation with the parameters, the
expressions, ``rho_attr``, the spatial fields ``rho, E_f, F_f_x, F_f_y, T_f`` as nested lists ``[j][i]``
(y ascending) and the signals ``E_u, F_u, T_u, E_d, ..., T_r`` as ``[n][position]``.
"""

from __future__ import annotations

import ast
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "SDSData",
    "read_sds",
    "write_sds",
    "DATAFRAME_COLUMNS",
    "SPATIAL_COLUMNS",
    "TEMPORAL_COLUMNS",
    "read_dataframe",
    "write_dataframe",
]

_HEADER = struct.Struct("<5sHHHHB")
_EDGE_CODES = {"up": 0, "down": 1, "left": 2, "right": 3, None: -1}

SPATIAL_COLUMNS: tuple[str, ...] = ("rho", "E_f", "F_f_x", "F_f_y", "T_f")
TEMPORAL_COLUMNS: tuple[str, ...] = tuple(f"{q}_{e}" for e in "udlr" for q in ("E", "F", "T"))
_PARAM_COLUMNS = ("x_min", "x_max", "y_min", "y_max", "N", "M", "c", "a", "C_v", "CFL", "precision", "t_0", "t_f", "step_count")

def _expr_columns() -> tuple[str, ...]:
    cols = ["rho_expr", "sigma_a_expr", "sigma_c_expr", "E_0_expr", "F_0_x_expr", "F_0_y_expr", "T_0_expr"]
    for e in "udlr":
        cols += [f"E_{e}_expr", f"F_{e}_x_expr", f"F_{e}_y_expr", f"T_{e}_expr"]
    return tuple(cols)


DATAFRAME_COLUMNS: tuple[str, ...] = _PARAM_COLUMNS + _expr_columns() + ("rho_attr",) + SPATIAL_COLUMNS + TEMPORAL_COLUMNS
"""Column order of the original CSV export."""


@dataclass
class SDSData:
    """Contents of an SDS file.

    Attributes
    ----------
    version : int
        1 or 2.
    N, M, step_count : int
        Grid width, height and number of recorded steps.
    source_edge, source_pos : ndarray of int8, shape (n_sim,)
        Source edge code (0 up, 1 down, 2 left, 3 right, -1 none) and source position code.
    density : ndarray, shape (n_sim, M, N), float32, or None
        Density with rows y ascending (v02 only; ``numpy.flipud`` of the program's ``.npy`` input).
    rho_attr : ndarray, shape (n_sim, 4), float32, or None
        Crenau attributes (x, y, min, max) (v01 only).
    edge_signals : dict[str, ndarray]
        Per edge ``(n_sim, 3, step_count, L)`` float32, channels (E, |F|, T).
    """

    version: int
    N: int
    M: int
    step_count: int
    source_edge: np.ndarray
    source_pos: np.ndarray
    density: np.ndarray | None
    rho_attr: np.ndarray | None
    edge_signals: dict[str, np.ndarray]

    @property
    def n_sim(self) -> int:
        return int(self.source_edge.shape[0])

    @property
    def signals(self) -> np.ndarray:
        """``(n_sim, 4, 3, step_count, N)`` stacked signals ``[sim, measured_edge, channel, step, pos]`` (N == M)."""
        if self.N != self.M:
            raise ValueError(f"stacked signals need N == M, got N={self.N}, M={self.M}; use edge_signals.")
        return np.stack([self.edge_signals[e] for e in ("up", "down", "left", "right")], axis=1)


def _sim_size(version: int, N: int, M: int, S: int) -> int:
    body = 4 * M * N if version == 2 else 16
    return 2 + body + 4 * 3 * S * (2 * N + 2 * M) + 1


def read_sds(path: str | Path) -> SDSData:
    """Read an SDS v01/v02 file written by the original program (or :func:`write_sds`).

    Raises
    ------
    FileNotFoundError
        The file does not exist.
    ValueError
        Bad magic, truncated file, wrong size or missing record separators.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDS file {path} does not exist.")
    raw = path.read_bytes()
    if len(raw) < _HEADER.size:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an SDS header ({_HEADER.size} bytes).")
    magic, n_sim, N, M, S, nl = _HEADER.unpack_from(raw, 0)
    if magic not in (b"sds01", b"sds02"):
        raise ValueError(f"{path}: magic {magic!r} is not b'sds01' or b'sds02'; this is not an SDS file.")
    if nl != 0x0A:
        raise ValueError(f"{path}: header must end with byte 0x0A, found {nl:#04x}; the file is corrupt.")
    version = int(magic[-1:])
    if min(n_sim, N, M, S) == 0:
        raise ValueError(f"{path}: header has a zero size (n_sim={n_sim}, N={N}, M={M}, step_count={S}).")
    per = _sim_size(version, N, M, S)
    expected = _HEADER.size + n_sim * per
    if len(raw) != expected:
        raise ValueError(
            f"{path}: size {len(raw)} bytes differs from the {expected} bytes implied by the header "
            f"(v{version:02d}, n_sim={n_sim}, N={N}, M={M}, step_count={S}); the file is truncated or was "
            "written with append mode on top of another file."
        )
    src_edge = np.empty(n_sim, np.int8)
    src_pos = np.empty(n_sim, np.int8)
    dens = np.empty((n_sim, M, N), np.float32) if version == 2 else None
    attr = np.empty((n_sim, 4), np.float32) if version == 1 else None
    lens = {"up": N, "down": N, "left": M, "right": M}
    sig = {e: np.empty((n_sim, 3, S, L), np.float32) for e, L in lens.items()}
    off = _HEADER.size
    for s in range(n_sim):
        src_edge[s], src_pos[s] = np.frombuffer(raw, np.int8, 2, off)
        off += 2
        if version == 2:
            # the writer loops rows over (M, N) swapped; exact only for N == M, as in every dataset
            dens[s] = np.frombuffer(raw, "<f4", M * N, off).reshape(M, N)
            off += 4 * M * N
        else:
            attr[s] = np.frombuffer(raw, "<f4", 4, off)
            off += 16
        for e in ("up", "down", "left", "right"):
            L = lens[e]
            for ch in range(3):
                sig[e][s, ch] = np.frombuffer(raw, "<f4", S * L, off).reshape(S, L)
                off += 4 * S * L
        if raw[off] != 0x0A:
            raise ValueError(f"{path}: simulation {s} does not end with byte 0x0A (found {raw[off]:#04x}); corrupt file.")
        off += 1
    return SDSData(version, N, M, S, src_edge, src_pos, dens, attr, sig)


def write_sds(
    path: str | Path,
    signals: np.ndarray,
    *,
    density: np.ndarray | None = None,
    rho_attr: np.ndarray | None = None,
    source_edge: np.ndarray | list[int | str | None] | None = None,
    source_pos: np.ndarray | list[int] | None = None,
) -> Path:
    """Write signals (and densities) to an SDS file readable by the authors' notebooks.

    Parameters
    ----------
    signals : ndarray, shape (n_sim, 4, 3, S, N)
        ``[sim, measured_edge, channel, step, position]`` as returned by ``P1Result.signals``.
    density : ndarray, shape (n_sim, N, N), optional
        y-up densities -> version 02. Mutually exclusive with ``rho_attr`` (version 01).
    source_edge : sequence of edge codes or names, optional
        Default -1 (none).
    source_pos : sequence of int, optional
        Default -1 (whole edge).
    """
    sig = np.asarray(signals, dtype="<f4")
    if sig.ndim != 5 or sig.shape[1:3] != (4, 3):
        raise ValueError(f"signals must have shape (n_sim, 4, 3, step_count, N), got {sig.shape}.")
    n_sim, _, _, S, N = sig.shape
    if (density is None) == (rho_attr is None):
        raise ValueError("give exactly one of density (SDS v02) or rho_attr (SDS v01).")
    if density is not None:
        body = np.asarray(density, dtype="<f4")
        if body.shape != (n_sim, N, N):
            raise ValueError(f"density must have shape {(n_sim, N, N)}, got {body.shape}.")
        version = 2
    else:
        body = np.asarray(rho_attr, dtype="<f4")
        if body.shape != (n_sim, 4):
            raise ValueError(f"rho_attr must have shape {(n_sim, 4)}, got {body.shape}.")
        version = 1
    if max(n_sim, N, S) > 65535:
        raise ValueError("SDS sizes are uint16: n_sim, N and step_count must be <= 65535.")
    edges = [-1] * n_sim if source_edge is None else [
        _EDGE_CODES[e] if (e is None or isinstance(e, str)) else int(e) for e in source_edge
    ]
    pos = [-1] * n_sim if source_pos is None else [int(p) for p in source_pos]
    if len(edges) != n_sim or len(pos) != n_sim:
        raise ValueError(f"source_edge and source_pos need {n_sim} entries.")
    path = Path(path)
    with open(path, "wb") as fh:
        fh.write(_HEADER.pack(f"sds0{version}".encode(), n_sim, N, N, S, 0x0A))
        for s in range(n_sim):
            fh.write(np.array([edges[s], pos[s]], np.int8).tobytes())
            fh.write(body[s].tobytes())
            fh.write(np.ascontiguousarray(sig[s]).tobytes())
            fh.write(b"\n")
    return path


def _parse_nested(value: object, column: str, row: int) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        return np.asarray(json.loads(str(value)), dtype=np.float64)
    except (json.JSONDecodeError, ValueError):
        try:
            text = str(value).replace("-nan", "nan").replace("inf", "Infinity")
            return np.asarray(json.loads(text.replace("nan", "NaN")), dtype=np.float64)
        except (json.JSONDecodeError, ValueError) as err:
            raise ValueError(f"column {column!r}, row {row}: cannot parse the nested list ({err}).") from None


def read_dataframe(path: str | Path) -> pd.DataFrame:
    """Read the original CSV "dataframe" export; nested-list columns become float64 arrays.

    Spatial columns (``rho, E_f, F_f_x, F_f_y, T_f``) become ``(M, N)`` arrays with rows y ascending;
    temporal columns (``E_u, ..., T_r``) become ``(step_count, L)`` arrays; ``rho_attr`` a list of tuples.

    Raises
    ------
    FileNotFoundError, ValueError
        Missing file, missing columns, or unparsable cells.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"dataframe CSV {path} does not exist.")
    df = pd.read_csv(path)
    missing = [c for c in SPATIAL_COLUMNS + TEMPORAL_COLUMNS + ("N", "M", "step_count") if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; is this the program's 'dataframe' export?")
    for col in SPATIAL_COLUMNS + TEMPORAL_COLUMNS:
        df[col] = [_parse_nested(v, col, i) for i, v in enumerate(df[col])]
    if "rho_attr" in df.columns:
        df["rho_attr"] = [ast.literal_eval(str(v)) if isinstance(v, str) else [] for v in df["rho_attr"]]
    for i, r in df.iterrows():
        if r["rho"].shape != (r["M"], r["N"]) or r["E_u"].shape != (r["step_count"], r["N"]):
            raise ValueError(
                f"{path}: row {i} has rho {r['rho'].shape} / E_u {r['E_u'].shape}, inconsistent with "
                f"N={r['N']}, M={r['M']}, step_count={r['step_count']}."
            )
    return df


def _fmt(x: np.ndarray) -> str:
    # 6 significant digits, like the default C++ ostream precision
    return json.dumps(np.vectorize(lambda v: float(f"{v:.6g}"))(np.asarray(x, dtype=float)).tolist())


def write_dataframe(
    path: str | Path,
    *,
    rho: np.ndarray,
    final: dict[str, np.ndarray],
    signals: np.ndarray,
    params: dict[str, object] | None = None,
    expressions: dict[str, str] | None = None,
    append: bool = False,
) -> Path:
    """Append (or write) simulations to a CSV in the original "dataframe" layout.

    Parameters
    ----------
    rho : ndarray, shape (B, M, N)
        y-up densities.
    final : dict
        ``E, Fx, Fy, T`` arrays ``(B, M, N)`` (``P1Result.final``).
    signals : ndarray, shape (B, 4, 3, S, N)
    params : dict, optional
        Values for the scalar parameter columns (``c, a, C_v, CFL, ...``); missing ones are left empty.
    expressions : dict, optional
        Values for the ``*_expr`` columns.
    append : bool
        Append rows to an existing file (no header) instead of truncating.
    """
    rho = np.asarray(rho)
    if rho.ndim == 2:
        rho = rho[None]
    sig = np.asarray(signals)
    B, M, N = rho.shape
    if sig.shape[:3] != (B, 4, 3) or sig.shape[4] != N:
        raise ValueError(f"signals must have shape ({B}, 4, 3, S, {N}), got {sig.shape}.")
    params = dict(params or {})
    expressions = dict(expressions or {})
    rows = []
    for b in range(B):
        row: dict[str, object] = {c: params.get(c, "") for c in _PARAM_COLUMNS}
        row.update(N=N, M=M, step_count=sig.shape[3])
        row.update({c: expressions.get(c, "") for c in _expr_columns()})
        row["rho_attr"] = "[]"
        for col, key in zip(SPATIAL_COLUMNS, (None, "E", "Fx", "Fy", "T")):
            row[col] = _fmt(rho[b] if key is None else final[key][b])
        for e_i, e in enumerate("udlr"):
            for ch, q in enumerate("EFT"):
                row[f"{q}_{e}"] = _fmt(sig[b, e_i, ch])
        rows.append(row)
    df = pd.DataFrame(rows, columns=list(DATAFRAME_COLUMNS))
    path = Path(path)
    df.to_csv(path, mode="a" if append else "w", header=not append, index=False)
    return path
