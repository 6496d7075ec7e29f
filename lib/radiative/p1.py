"""Batched 2D finite-volume solver for the grey P1 model coupled to matter.

The model (units of the original work: x in cm, t in shakes, T in keV, c = 299 cm/sh)::

    dE/dt + c div F       = c sigma_a (a T^4 - E)
    dF/dt + kappa c grad E = -c sigma_c F
    rho C dT/dt           = c sigma_a (E - a T^4)

is advanced with the splitting scheme of Ngueguin/Nzoyem (MOCO 2020/21) after E. Franck (2012):

* **step 1** -- per cell, implicit Euler on the matter/radiation exchange, solved with a fixed point on
  ``(E, Theta = a T^4)``;
* **step 2** -- an asymptotic-preserving (AP) hyperbolic step, upwind fluxes weighted by
  ``M_kl = 2 / (2 + dx sigma_kl)``, E explicit and the flux relaxation semi-implicit.

Two modes are provided through :class:`P1Config`:

``faithful``
    reproduces the original C++ program bit for bit up to round-off, quirks included: effective heat
    capacity ``a C_v`` (the ``1/a`` is missing in the code), flux damping ``sum over the 4 faces of
    M_kl sigma_kl``, no Eddington factor (kappa = 1), ghost density 0 for array densities, the
    fixed-point stopping rule that stops as soon as *either* increment is small and keeps the
    *previous* iterate, signals exported *before* each step, and the source ghost value built from the
    ghost temperature before it is refilled.
``physical``
    the equations as written: heat capacity ``C_v``, per-direction damping ``(M sigma)`` averaged over
    the two faces normal to each flux component, optional Eddington factor ``kappa = 1/3`` (the AP weight
    becomes ``M = 2 sqrt(kappa) / (2 sqrt(kappa) + dx sigma)`` so that the diffusion limit is
    ``D = kappa c / sigma``), zero-gradient ghost density, a fixed point iterated to convergence of both
    unknowns, and signals recorded *after* each step.

Backends: ``simulate(..., backend="numba")`` runs a fused, compiled kernel (:mod:`lib.radiative.p1_kernel`:
the whole time loop of each simulation in one function, step 1 cell by cell, the batch spread over threads),
the fastest on a CPU; it needs :class:`PowerOpacity` opacities. ``backend="numpy"`` and ``backend="torch"``
(with a ``device``; float64 on CUDA for large batches) run the same vectorised code and accept any
opacity callable. ``backend="auto"`` (default) takes Numba when it can and NumPy otherwise (the reason is
recorded in ``P1Result.backend_reason``). All backends agree to round-off
(``benchmarks/radiative_solver.py`` measures them).

Array convention: fields are ``(B, M, N)`` with row ``j`` = y index (**y increases with the row**,
row 0 = bottom, i.e. ``numpy.flipud`` of an image) and column ``i`` = x index. Edges are ordered
``("up", "down", "left", "right")`` = (y = y_max, y = 0, x = 0, x = 1) as in the original export.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Union

import numpy as np

__all__ = [
    "EDGES",
    "CHANNELS",
    "Neumann",
    "Dirichlet",
    "Ponctuel",
    "PowerOpacity",
    "P1Config",
    "P1Result",
    "BACKENDS",
    "numba_unsupported_reason",
    "source_boundaries",
    "step_count",
    "simulate",
    "rotate_density",
    "equilibrium_temperature_0d",
]

EDGES: tuple[str, ...] = ("up", "down", "left", "right")
"""Edge order used for boundaries and exported signals (as in the original SDS export)."""

CHANNELS: tuple[str, ...] = ("E", "|F|", "T")
"""Channels of the exported boundary signals."""

SigmaFn = Callable[[np.ndarray, np.ndarray], np.ndarray | float]
EdgeValue = Union[float, Callable[[float, np.ndarray], np.ndarray | float]]


# ------------------------------------------------------------------------------------- opacities
@dataclass(frozen=True)
class PowerOpacity:
    """Opacity law ``sigma = coef * (scale rho)^p * T^q`` (1/cm), a callable ``f(rho, T)``.

    The default ``PowerOpacity()`` is the programs' ``sigma = rho T``; ``PowerOpacity(scale=10, p=3)`` is
    the M1 internship's ``T (10 rho)^3``; ``PowerOpacity(coef=s, p=0, q=0)`` a constant. Powers are
    evaluated by repeated products, identically by every backend, so the Numba backend (which runs these
    laws inside its compiled kernel) agrees with the NumPy one to the last bit of the opacity.

    Parameters
    ----------
    coef : float
        Prefactor (1/cm in the programs' units).
    scale : float
        Density scale inside the power.
    p, q : int
        Non-negative integer powers of the scaled density and of the temperature.
    """

    coef: float = 1.0
    scale: float = 1.0
    p: int = 1
    q: int = 1

    def __post_init__(self) -> None:
        for name in ("coef", "scale"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"PowerOpacity.{name} must be a finite number >= 0, got {v!r}.")
        for name in ("p", "q"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= 16:
                raise ValueError(f"PowerOpacity.{name} must be an integer in [0, 16], got {v!r}.")

    def __call__(self, rho, T):
        """``coef * (T^q * (scale rho)^p)``; arrays (NumPy or torch) or floats in, same type out."""
        r = rho if self.scale == 1.0 else self.scale * rho
        rp = None
        for _ in range(self.p):
            rp = r if rp is None else rp * r
        tq = None
        for _ in range(self.q):
            tq = T if tq is None else tq * T
        if rp is None and tq is None:
            return float(self.coef)
        prod = rp if tq is None else (tq if rp is None else tq * rp)
        return prod if self.coef == 1.0 else self.coef * prod

    def as_array(self) -> np.ndarray:
        """``(coef, scale, p, q)`` as float64, the form the Numba kernel takes."""
        return np.array([self.coef, self.scale, self.p, self.q], dtype=np.float64)


# --------------------------------------------------------------------------------------------- BCs
@dataclass(frozen=True)
class Neumann:
    """Outflow boundary: the ghost cell copies E, F and T of the adjacent interior cell."""


@dataclass(frozen=True)
class Dirichlet:
    """Fixed ghost values, numbers or callables ``f(t, s)`` of time (sh) and edge coordinate ``s`` (cm).

    Parameters
    ----------
    E, T : float or callable
        Ghost radiative energy and temperature (keV).
    Fx, Fy : float or callable
        Ghost radiative flux components.
    """

    E: EdgeValue
    T: EdgeValue
    Fx: EdgeValue = 0.0
    Fy: EdgeValue = 0.0


@dataclass(frozen=True)
class Ponctuel:
    """The authors' oscillating source ``ponctuel(start, end)``.

    Ghost cells whose centre coordinate along the edge lies in ``[start, end]`` hold
    ``E = a T_g^4 + amplitude sin(2 pi frequency t)``; the other ghost cells of the edge hold
    ``E = a T_g^4``. ``T_g`` is the ghost temperature *before* it is refilled (this equals ``T``
    after the first step). Ghost F is ``(Fx, Fy)`` and ghost T is ``T``.

    ``Ponctuel(0, 1)`` covers the whole unit edge (the V-Net configuration); the M1 internship used
    ``Ponctuel(p, p + 0.2)``, p in {0.1, 0.3, 0.5, 0.7}.
    """

    start: float = 0.0
    end: float = 1.0
    amplitude: float = 5.0
    frequency: float = 500.0
    T: float = 5.0
    Fx: float = 0.0
    Fy: float = 0.0

    def __post_init__(self) -> None:
        if not self.start <= self.end:
            raise ValueError(f"Ponctuel needs start <= end, got start={self.start}, end={self.end}.")


Boundary = Union[Neumann, Dirichlet, Ponctuel]


def source_boundaries(edge: str, start: float = 0.0, end: float = 1.0, **kwargs) -> dict[str, Boundary]:
    """Boundaries of the V-Net configuration: a ``Ponctuel`` source on ``edge``, Neumann elsewhere.

    Parameters
    ----------
    edge : {"up", "down", "left", "right"}
        Edge that carries the source.
    start, end : float
        Extent of the source along the edge (cm).
    **kwargs
        Forwarded to :class:`Ponctuel` (amplitude, frequency, T).
    """
    if edge not in EDGES:
        raise ValueError(f"Unknown edge {edge!r}; use one of {EDGES}.")
    bcs: dict[str, Boundary] = {e: Neumann() for e in EDGES}
    bcs[edge] = Ponctuel(start, end, **kwargs)
    return bcs


# ------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class P1Config:
    """Physical constants and scheme switches.

    Use :meth:`faithful` or :meth:`physical` (keyword overrides allowed) rather than setting the
    switches one by one.

    Attributes
    ----------
    c, a, C_v : float
        Speed of light (cm/sh), radiation constant, heat capacity.
    cfl : float
        ``dt = cfl * dx / c``.
    t_f : float
        Final time (sh); the number of steps is ``ceil(t_f / dt)``.
    precision : float
        Absolute tolerance of the step-1 fixed point.
    sigma_a, sigma_c : callable
        Opacities ``f(rho, T)`` (1/cm), vectorised over arrays; default :class:`PowerOpacity` ``rho T``.
        Only :class:`PowerOpacity` laws run in the Numba backend (other callables run with NumPy).
    heat_capacity : {"aCv", "Cv"}
        ``"aCv"`` is the coded material equation ``rho a C_v dT/dt = ...``; ``"Cv"`` the written one.
    damping : {"sum4", "per_direction"}
        Flux relaxation ``sum_4faces M sigma`` (code) or the mean of ``M sigma`` over the two faces
        normal to each flux component.
    eddington : float
        kappa in ``dF/dt + kappa c grad E``; 1 in the code, 1/3 for standard P1.
    ghost_rho : {"zero", "copy"}
        Density in ghost cells: 0 (code with an array density) or a copy of the adjacent cell.
    fixed_point : {"previous", "converged"}
        Step-1 stopping rule: stop when either increment is <= precision and keep the previous iterate
        (code), or iterate until both are and keep the last iterate.
    record : {"before", "after"}
        Signals at step n are the state before step n (code, row 0 = initial state) or after it.
    max_iter : int
        Safety cap on fixed-point iterations.
    """

    c: float = 299.0
    a: float = 0.01372
    C_v: float = 0.14361
    cfl: float = 0.5
    t_f: float = 0.01
    precision: float = 1e-6
    sigma_a: SigmaFn = PowerOpacity()
    sigma_c: SigmaFn = PowerOpacity()
    heat_capacity: Literal["aCv", "Cv"] = "aCv"
    damping: Literal["sum4", "per_direction"] = "sum4"
    eddington: float = 1.0
    ghost_rho: Literal["zero", "copy"] = "zero"
    fixed_point: Literal["previous", "converged"] = "previous"
    record: Literal["before", "after"] = "before"
    max_iter: int = 200
    mode: str = field(default="faithful", compare=False)

    def __post_init__(self) -> None:
        for name in ("c", "a", "C_v", "cfl", "t_f", "precision"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"P1Config.{name} must be a positive finite number, got {v!r}.")
        choices = {
            "heat_capacity": ("aCv", "Cv"),
            "damping": ("sum4", "per_direction"),
            "ghost_rho": ("zero", "copy"),
            "fixed_point": ("previous", "converged"),
            "record": ("before", "after"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"P1Config.{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        if not 0 < self.eddington <= 1:
            raise ValueError(f"P1Config.eddington must be in (0, 1], got {self.eddington!r} (use 1 or 1/3).")
        if not callable(self.sigma_a) or not callable(self.sigma_c):
            raise TypeError("P1Config.sigma_a and sigma_c must be callables f(rho, T) -> array.")

    @property
    def E0(self) -> float:
        """Equilibrium radiative energy ``a T0^4`` at T0 = 5 keV (8.575)."""
        return self.a * 5.0**4

    @classmethod
    def faithful(cls, **overrides) -> P1Config:
        """Switches reproducing the original C++ program (quirks included)."""
        return cls(mode="faithful", **overrides)

    @classmethod
    def physical(cls, eddington: float = 1.0, **overrides) -> P1Config:
        """Switches implementing the equations as written (``eddington=1/3`` for standard P1)."""
        base = dict(
            heat_capacity="Cv", damping="per_direction", eddington=eddington, ghost_rho="copy",
            fixed_point="converged", record="after", mode="physical",
        )
        base.update(overrides)
        return cls(**base)

    @classmethod
    def from_mode(cls, mode: str, **overrides) -> P1Config:
        """``"faithful"`` or ``"physical"`` -> config."""
        if mode == "faithful":
            return cls.faithful(**overrides)
        if mode == "physical":
            return cls.physical(**overrides)
        raise ValueError(f"Unknown P1 mode {mode!r}; use 'faithful' or 'physical'.")


def step_count(n: int, config: P1Config | None = None) -> int:
    """Number of time steps ``ceil(t_f / dt)`` of the original program for an ``n``-cell-wide grid.

    >>> step_count(64), step_count(16), step_count(32)
    (383, 96, 192)
    """
    cfg = config or P1Config()
    dt = cfg.cfl * (1.0 / n) / cfg.c
    ratio = cfg.t_f / dt
    return int(ratio) if ratio == int(ratio) else int(ratio) + 1


# ------------------------------------------------------------------------------------------ result
@dataclass
class P1Result:
    """Output of :func:`simulate`.

    Attributes
    ----------
    edge_signals : dict[str, ndarray]
        Per edge, ``(B, 3, S, L)``: channels (E, |F|, T) in the first interior cells along the edge, at
        every recorded step; ``L = N`` for up/down and ``M`` for left/right.
    times : ndarray, shape (S,)
        Time (sh) of each recorded step.
    final : dict[str, ndarray]
        ``E, Fx, Fy, T`` after the last step, each ``(B, M, N)``.
    frames : ndarray or None
        ``(B, n_frames, 4, M, N)`` full fields (E, Fx, Fy, T) at ``frame_steps``.
    frame_steps : ndarray
        Recorded step indices of ``frames``.
    dt : float
        Time step (sh).
    config : P1Config
    backend : str
        Backend that ran (``"numba"``, ``"numpy"`` or ``"torch"``; ``"auto"`` resolved).
    backend_reason : str
        Why ``backend="auto"`` did not pick Numba (empty when it did, or when the backend was explicit).
    """

    edge_signals: dict[str, np.ndarray]
    times: np.ndarray
    final: dict[str, np.ndarray]
    frames: np.ndarray | None
    frame_steps: np.ndarray
    dt: float
    config: P1Config
    backend: str = "numpy"
    backend_reason: str = ""

    @property
    def signals(self) -> np.ndarray:
        """``(B, 4, 3, S, L)`` stacked signals ``[batch, measured_edge, channel, step, position]`` (square grids)."""
        shapes = {v.shape for v in self.edge_signals.values()}
        if len(shapes) != 1:
            raise ValueError("Stacked signals need a square grid (M == N); use .edge_signals instead.")
        return np.stack([self.edge_signals[e] for e in EDGES], axis=1)


# -------------------------------------------------------------------------------------------- core
def _as_batch(x: np.ndarray | float, shape: tuple[int, int, int], name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    try:
        return np.broadcast_to(arr, shape).copy()
    except ValueError:
        raise ValueError(f"{name} of shape {arr.shape} cannot be broadcast to the batch shape {shape}.") from None


def _pad_edge(x: np.ndarray) -> np.ndarray:
    return np.pad(x, ((0, 0), (1, 1), (1, 1)), mode="edge")


class _NumpyOps:
    """Array operations of the NumPy backend (float64 on the CPU)."""

    name = "numpy"
    sqrt = staticmethod(np.sqrt)
    abs = staticmethod(np.abs)

    def asarray(self, x, dtype=np.float64):
        return np.asarray(x, dtype=dtype)

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def arange(self, n):
        return np.arange(n)

    def any(self, x) -> bool:
        return bool(x.any())

    def flat_copy(self, x):
        return x.reshape(-1).copy()

    def copy(self, x):
        return x.copy()

    def numpy(self, x):
        return x

    def sigma(self, fn: SigmaFn, rho, T):
        return np.broadcast_to(np.asarray(fn(rho, T), dtype=np.float64), rho.shape)


class _TorchOps:
    """Array operations of the PyTorch backend (float64 on ``device``, CPU or GPU)."""

    name = "torch"

    def __init__(self, device) -> None:
        import torch

        self.torch = torch
        self.device = device
        self.sqrt = torch.sqrt
        self.abs = torch.abs

    def _dtype(self, dtype):
        t = self.torch
        return {np.dtype(np.float64): t.float64, np.dtype(np.float32): t.float32}[np.dtype(dtype)]

    def asarray(self, x, dtype=np.float64):
        return self.torch.as_tensor(np.ascontiguousarray(x), dtype=self._dtype(dtype), device=self.device)

    def empty(self, shape, dtype):
        return self.torch.empty(shape, dtype=self._dtype(dtype), device=self.device)

    def arange(self, n):
        return self.torch.arange(n, device=self.device)

    def any(self, x) -> bool:
        return bool(x.any())

    def flat_copy(self, x):
        return x.reshape(-1).clone()

    def copy(self, x):
        return x.clone()

    def numpy(self, x):
        return x.detach().cpu().numpy()

    def sigma(self, fn: SigmaFn, rho, T):
        out = fn(rho, T)
        if not isinstance(out, self.torch.Tensor):
            out = self.torch.as_tensor(out, dtype=self.torch.float64, device=self.device)
        return out.expand(rho.shape)


BACKENDS: tuple[str, ...] = ("auto", "numba", "numpy", "torch")
"""Values of ``simulate(..., backend=...)``; ``"auto"`` = Numba when :func:`numba_unsupported_reason` is None,
else NumPy."""


def numba_unsupported_reason(config: P1Config) -> str | None:
    """Why ``config`` cannot run in the Numba backend, or None if it can.

    The fused kernel evaluates opacities itself, so ``sigma_a`` and ``sigma_c`` must be
    :class:`PowerOpacity` laws; any other Python callable needs the NumPy (or torch) backend.
    """
    bad = [name for name in ("sigma_a", "sigma_c") if not isinstance(getattr(config, name), PowerOpacity)]
    if bad:
        kinds = ", ".join(f"{n}={type(getattr(config, n)).__name__}" for n in bad)
        return (f"the Numba kernel evaluates only PowerOpacity laws, got {kinds}; write the opacity as "
                "PowerOpacity(coef, scale, p, q) or use backend='numpy'")
    try:
        import numba  # noqa: F401
    except ImportError as err:  # pragma: no cover - numba is a dependency
        return f"numba is not importable ({err}); install it (requirements/lock.txt) or use backend='numpy'"
    return None


def _resolve_backend(backend: str, device, cfg: P1Config) -> tuple[str, str]:
    """``(backend that runs, reason auto did not pick numba)``; clear errors for bad combinations."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
    if backend != "torch" and device not in (None, "auto", "cpu"):
        raise ValueError(f"the {backend} backend runs on the CPU only; got device={device!r} (use backend='torch').")
    if backend in ("numpy", "torch"):
        return backend, ""
    reason = numba_unsupported_reason(cfg)
    if reason is None:
        return "numba", ""
    if backend == "numba":
        raise TypeError(f"backend='numba' cannot run this configuration: {reason} (or backend='auto', which falls back).")
    return "numpy", reason


def _make_ops(backend: str, device) -> _NumpyOps | _TorchOps:
    if backend == "numpy":
        return _NumpyOps()
    from lib.core.repro import resolve_device

    return _TorchOps(resolve_device("auto" if device is None else device))


def _step1(E, T, rho, cfg: P1Config, dt: float, xp) -> tuple:
    """Matter-radiation exchange on flattened interior cells; returns new (E, T) (same shape)."""
    a, c, prec = cfg.a, cfg.c, cfg.precision
    cv = cfg.C_v if cfg.heat_capacity == "aCv" else cfg.C_v / a
    shape = E.shape
    En = xp.flat_copy(E)
    Tn = xp.flat_copy(T)
    rr = xp.flat_copy(rho)
    Tn2 = Tn * Tn
    Thn = a * (Tn2 * Tn2)
    Tn3 = Tn2 * Tn
    E_out = xp.copy(En)
    T_out = xp.copy(Tn)
    ia = xp.arange(En.shape[0])
    e_q, th_q = xp.copy(En), xp.copy(Thn)
    faithful_stop = cfg.fixed_point == "previous"
    inv_dt = 1.0 / dt
    for _ in range(cfg.max_iter):
        t_q = xp.sqrt(xp.sqrt(th_q / a))  # (Theta / a)^(1/4)
        if faithful_stop:
            E_out[ia] = e_q
            T_out[ia] = t_q
        t2 = t_q * t_q
        mu = 1.0 / (Tn3 + Tn * t2 + t_q * Tn2 + t2 * t_q)
        csa = c * xp.sigma(cfg.sigma_a, rr, t_q)
        alpha = inv_dt / (inv_dt + csa)
        beta = csa / (inv_dt + csa)
        rcm = rr * cv * mu * inv_dt
        gamma = rcm / (rcm + csa)
        delta = csa / (rcm + csa)
        den = 1.0 - beta * delta
        e_next = (alpha * En + gamma * beta * Thn) / den
        th_next = (gamma * Thn + alpha * delta * En) / den
        de, dth = xp.abs(e_next - e_q), xp.abs(th_next - th_q)
        if faithful_stop:
            cont = (de > prec) & (dth > prec)
        else:
            E_out[ia] = e_next
            T_out[ia] = xp.sqrt(xp.sqrt(th_next / a))
            cont = (de > prec) | (dth > prec)
        if not xp.any(cont):
            break
        ia = ia[cont]
        e_q, th_q = e_next[cont], th_next[cont]
        En, Tn, Tn2, Tn3, Thn, rr = En[cont], Tn[cont], Tn2[cont], Tn3[cont], Thn[cont], rr[cont]
    else:  # pragma: no cover - guards against pathological opacities
        raise RuntimeError(
            f"Step-1 fixed point did not converge in {cfg.max_iter} iterations; lower dt (cfl) or check sigma_a."
        )
    return E_out.reshape(shape), T_out.reshape(shape)


def _edge_coords(n: int, d: float, lo: float) -> np.ndarray:
    return lo + np.arange(n) * d + d / 2.0


def _fill_ghosts(E, Fx, Fy, T, bcs: Mapping[str, Boundary], t: float, coords: Mapping[str, object],
                 profiles: Mapping[str, object], a: float) -> None:
    """Fill the ghost layer in place (corners untouched), at time ``t``.

    ``coords[edge]`` are the cell-centre coordinates along the edge and ``profiles[edge]`` the 0/1 mask of
    a ``Ponctuel`` source, both as backend arrays.
    """
    sl_int = slice(1, -1)
    spec = {
        "up": ((slice(None), -1, sl_int), (slice(None), -2, sl_int)),
        "down": ((slice(None), 0, sl_int), (slice(None), 1, sl_int)),
        "left": ((slice(None), sl_int, 0), (slice(None), sl_int, 1)),
        "right": ((slice(None), sl_int, -1), (slice(None), sl_int, -2)),
    }
    for edge in EDGES:
        bc = bcs[edge]
        g, k = spec[edge]
        if isinstance(bc, Neumann):
            for f in (E, Fx, Fy, T):
                f[g] = f[k]
        elif isinstance(bc, Ponctuel):
            base = a * T[g] ** 4  # ghost T before refill (original program)
            E[g] = base + profiles[edge] * (bc.amplitude * math.sin(2 * bc.frequency * math.pi * t))
            Fx[g] = bc.Fx
            Fy[g] = bc.Fy
            T[g] = bc.T
        elif isinstance(bc, Dirichlet):
            for f, v in ((E, bc.E), (Fx, bc.Fx), (Fy, bc.Fy), (T, bc.T)):
                f[g] = v(t, coords[edge]) if callable(v) else v
        else:
            raise TypeError(f"Boundary for edge {edge!r} must be Neumann, Dirichlet or Ponctuel, got {type(bc).__name__}.")


def _step2(
    E: np.ndarray, Fx: np.ndarray, Fy: np.ndarray, T: np.ndarray, rho_full: np.ndarray,
    cfg: P1Config, dt: float, dx: float, dy: float, xp,
) -> tuple:
    """AP hyperbolic step on the interior; inputs have ghosts, outputs are interior ``(B, M, N)``."""
    c = cfg.c
    kap = cfg.eddington
    s = math.sqrt(kap)
    sig = xp.sigma(cfg.sigma_c, rho_full, T)
    I = (slice(None), slice(1, -1), slice(1, -1))
    U = (slice(None), slice(2, None), slice(1, -1))
    D = (slice(None), slice(None, -2), slice(1, -1))
    L = (slice(None), slice(1, -1), slice(None, -2))
    R = (slice(None), slice(1, -1), slice(2, None))
    Ek, Fxk, Fyk, sk = E[I], Fx[I], Fy[I], sig[I]

    def m_of(sl):
        skl = 0.5 * (sk + sig[sl])
        if kap == 1.0:
            return 2.0 / (2.0 + dx * skl), skl
        return 2.0 * s / (2.0 * s + dx * skl), skl

    Mu, su = m_of(U)
    Md, sd = m_of(D)
    Ml, sl_ = m_of(L)
    Mr, sr = m_of(R)
    Eu, Ed, El, Er = E[U], E[D], E[L], E[R]
    # F.n on both sides of each face (n = (0,1), (0,-1), (-1,0), (1,0))
    fn_ku, fn_u = Fyk, Fy[U]
    fn_kd, fn_d = -Fyk, -Fy[D]
    fn_kl, fn_l = -Fxk, -Fx[L]
    fn_kr, fn_r = Fxk, Fx[R]
    # scalar fluxes for E (FluxF), l_kl = dy for up/down and dx for left/right (as coded)
    FF_u = dy * Mu * (0.5 * (fn_ku + fn_u) - s * 0.5 * (Eu - Ek))
    FF_d = dy * Md * (0.5 * (fn_kd + fn_d) - s * 0.5 * (Ed - Ek))
    FF_l = dx * Ml * (0.5 * (fn_kl + fn_l) - s * 0.5 * (El - Ek))
    FF_r = dx * Mr * (0.5 * (fn_kr + fn_r) - s * 0.5 * (Er - Ek))
    sum_FF = FF_u + FF_d + FF_l + FF_r
    # vector fluxes for F: scalar part times n
    FE_u = dy * Mu * (kap * 0.5 * (Ek + Eu) - s * 0.5 * (fn_u - fn_ku))
    FE_d = dy * Md * (kap * 0.5 * (Ek + Ed) - s * 0.5 * (fn_d - fn_kd))
    FE_l = dx * Ml * (kap * 0.5 * (Ek + El) - s * 0.5 * (fn_l - fn_kl))
    FE_r = dx * Mr * (kap * 0.5 * (Ek + Er) - s * 0.5 * (fn_r - fn_kr))
    sumFE_x = FE_r - FE_l
    sumFE_y = FE_u - FE_d
    slmn_x = dx * Mr - dx * Ml
    slmn_y = dy * Mu - dy * Md
    omega = dx * dy
    E_new = Ek + (-c * dt / omega) * sum_FF
    if cfg.damping == "sum4":
        tmp = (1.0 / dt) + c * (Mu * su + Md * sd + Ml * sl_ + Mr * sr)
        tmp_x = tmp_y = tmp
    else:
        tmp_x = (1.0 / dt) + c * 0.5 * (Ml * sl_ + Mr * sr)
        tmp_y = (1.0 / dt) + c * 0.5 * (Mu * su + Md * sd)
    Fx_new = (1.0 / dt / tmp_x) * Fxk + Ek * kap * ((c / omega / tmp_x) * slmn_x) + (-c / omega / tmp_x) * sumFE_x
    Fy_new = (1.0 / dt / tmp_y) * Fyk + Ek * kap * ((c / omega / tmp_y) * slmn_y) + (-c / omega / tmp_y) * sumFE_y
    return E_new, Fx_new, Fy_new


def _record(sig: dict, n: int, E, Fx, Fy, T, xp) -> None:
    Fn = xp.sqrt(Fx * Fx + Fy * Fy)
    rows = {"up": (slice(None), -2, slice(1, -1)), "down": (slice(None), 1, slice(1, -1)),
            "left": (slice(None), slice(1, -1), 1), "right": (slice(None), slice(1, -1), -2)}
    for edge, r in rows.items():
        out = sig[edge]
        out[:, 0, n] = E[r]
        out[:, 1, n] = Fn[r]
        out[:, 2, n] = T[r]


def simulate(
    rho: np.ndarray,
    boundaries: Mapping[str, Boundary] | str | None = None,
    *,
    config: P1Config | None = None,
    mode: str | None = None,
    n_steps: int | None = None,
    E0: np.ndarray | float | None = None,
    T0: np.ndarray | float = 5.0,
    F0: tuple[np.ndarray | float, np.ndarray | float] = (0.0, 0.0),
    frames: Iterable[int] | Literal["all"] | None = None,
    x_max: float = 1.0,
    signal_dtype: np.dtype | type = np.float64,
    progress: bool = False,
    backend: Literal["auto", "numba", "numpy", "torch"] = "auto",
    device: str | None = None,
) -> P1Result:
    """Run the P1 + matter solver on a batch of densities.

    Parameters
    ----------
    rho : ndarray, shape (B, M, N) or (M, N)
        Density (g/cm^3) per cell, **y-up rows** (row 0 = bottom; ``numpy.flipud`` of an image such as
        the original program's ``.npy`` input). The domain is ``[0, x_max] x [0, x_max M/N]`` and
        ``dx = dy = x_max / N``.
    boundaries : mapping edge -> boundary, edge name, or None
        ``{"up": Neumann(), "left": Ponctuel(0, 1), ...}`` (missing edges are Neumann). A string
        ``"left"`` is shorthand for :func:`source_boundaries` on that edge. None = all Neumann.
    config : P1Config, optional
        Constants and switches; default ``P1Config.faithful()``.
    mode : {"faithful", "physical"}, optional
        Shorthand for ``P1Config.from_mode(mode)`` (ignored if ``config`` is given).
    n_steps : int, optional
        Number of steps; default ``ceil(t_f / dt)`` as in the original program (383 at N = 64).
    E0, T0, F0 : float or array broadcastable to (B, M, N)
        Initial radiative energy (default ``a T0^4``), temperature (keV), flux components.
    frames : iterable of int, "all" or None
        Recorded step indices at which to keep the full fields.
    x_max : float
        Domain width (cm).
    signal_dtype : dtype
        Storage dtype of the signals (computation is float64).
    progress : bool
        Show a tqdm bar over time steps (NumPy/torch backends; the Numba kernel runs all steps in one call).
    backend : {"auto", "numba", "numpy", "torch"}
        ``"numba"``: the fused, compiled kernel (:mod:`lib.radiative.p1_kernel`), fastest on a CPU, the
        batch spread over ``numba.set_num_threads`` threads; its opacities must be :class:`PowerOpacity`
        laws (a ``TypeError`` names the fix otherwise). ``"numpy"``/``"torch"``: the vectorised code;
        ``"torch"`` runs in float64 on ``device`` (``"auto"`` = CUDA if present) and user callables
        (opacities, Dirichlet values) receive tensors. ``"auto"`` (default): Numba when the configuration
        allows it, else NumPy, with the reason in ``P1Result.backend_reason``. All agree to round-off.
    device : str, optional
        Torch device for the torch backend.

    Returns
    -------
    P1Result
    """
    if config is None:
        config = P1Config.from_mode(mode) if mode is not None else P1Config.faithful()
    elif not isinstance(config, P1Config):
        raise TypeError(f"config must be a P1Config, got {type(config).__name__}.")
    cfg = config
    rho = np.asarray(rho, dtype=np.float64)
    if rho.ndim == 2:
        rho = rho[None]
    if rho.ndim != 3 or min(rho.shape[1:]) < 2:
        raise ValueError(f"rho must have shape (B, M, N) or (M, N) with M, N >= 2, got {rho.shape}.")
    if not np.all(np.isfinite(rho)) or np.any(rho < 0):
        raise ValueError("rho must be finite and non-negative (g/cm^3).")
    B, M, N = rho.shape
    if boundaries is None:
        bcs: dict[str, Boundary] = {e: Neumann() for e in EDGES}
    elif isinstance(boundaries, str):
        bcs = source_boundaries(boundaries)
    else:
        unknown = set(boundaries) - set(EDGES)
        if unknown:
            raise ValueError(f"Unknown edge names {sorted(unknown)}; use {EDGES}.")
        bcs = {e: boundaries.get(e, Neumann()) for e in EDGES}
    dx = x_max / N
    dy = dx
    dt = cfg.cfl * dx / cfg.c
    S = step_count(N, dataclasses.replace(cfg, t_f=cfg.t_f / x_max)) if n_steps is None else int(n_steps)
    if S < 1:
        raise ValueError(f"n_steps must be >= 1, got {S}.")
    xs = _edge_coords(N, dx, 0.0)
    ys = _edge_coords(M, dy, 0.0)
    for edge, bc in bcs.items():
        if not isinstance(bc, (Neumann, Dirichlet, Ponctuel)):
            raise TypeError(f"Boundary for edge {edge!r} must be Neumann, Dirichlet or Ponctuel, got {type(bc).__name__}.")
    frame_steps = _frame_steps(frames, S)
    ran, reason = _resolve_backend(backend, device, cfg)
    if ran == "numba":
        return _simulate_numba(rho, bcs, cfg, S, dt, dx, dy, xs, ys, E0, T0, F0, frame_steps, signal_dtype)

    xp = _make_ops(ran, device)
    shape = (B, M, N)
    T_int = _as_batch(T0, shape, "T0")
    E_int = _as_batch(cfg.a * T_int**4 if E0 is None else E0, shape, "E0")
    E = xp.asarray(_pad_edge(E_int))
    T = xp.asarray(_pad_edge(T_int))
    Fx = xp.asarray(_pad_edge(_as_batch(F0[0], shape, "F0[0]")))
    Fy = xp.asarray(_pad_edge(_as_batch(F0[1], shape, "F0[1]")))
    if cfg.ghost_rho == "zero":
        rho_full = np.pad(rho, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=0.0)
    else:
        rho_full = _pad_edge(rho)
    rho_full = xp.asarray(rho_full)
    rho_int = xp.asarray(rho)
    coords_np = {"up": xs, "down": xs, "left": ys, "right": ys}
    coords = {e: xp.asarray(c) for e, c in coords_np.items()}
    profiles = {
        e: xp.asarray(((bc.start <= coords_np[e]) & (coords_np[e] <= bc.end)).astype(np.float64))
        for e, bc in bcs.items() if isinstance(bc, Ponctuel)
    }

    frame_pos = {int(s): i for i, s in enumerate(frame_steps)}
    frame_arr = xp.empty((B, len(frame_steps), 4, M, N), signal_dtype) if len(frame_steps) else None

    sig = {e: xp.empty((B, 3, S, N if e in ("up", "down") else M), signal_dtype) for e in EDGES}
    times = np.empty(S)
    before = cfg.record == "before"
    it: Iterable[int] = range(S)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"P1 {B}x{M}x{N}", leave=False)

    def store(n: int, t_rec: float) -> None:
        _record(sig, n, E, Fx, Fy, T, xp)
        times[n] = t_rec
        if n in frame_pos:
            for ch, f in enumerate((E, Fx, Fy, T)):
                frame_arr[:, frame_pos[n], ch] = f[:, 1:-1, 1:-1]

    t = 0.0
    inner = (slice(None), slice(1, -1), slice(1, -1))
    for n in it:
        if before:
            store(n, t)
        En, Tn = _step1(E[inner], T[inner], rho_int, cfg, dt, xp)
        E[inner] = En
        T[inner] = Tn
        _fill_ghosts(E, Fx, Fy, T, bcs, t, coords, profiles, cfg.a)
        En, Fxn, Fyn = _step2(E, Fx, Fy, T, rho_full, cfg, dt, dx, dy, xp)
        E[inner], Fx[inner], Fy[inner] = En, Fxn, Fyn
        t += dt  # accumulated as in the original program
        if not before:
            store(n, t)

    final = {k: np.array(xp.numpy(f[inner])) for k, f in (("E", E), ("Fx", Fx), ("Fy", Fy), ("T", T))}
    sig = {e: xp.numpy(v) for e, v in sig.items()}
    frame_arr = None if frame_arr is None else xp.numpy(frame_arr)
    return P1Result(sig, times, final, frame_arr, frame_steps, dt, cfg, backend=ran, backend_reason=reason)


def _frame_steps(frames, S: int) -> np.ndarray:
    if frames is None:
        return np.zeros(0, dtype=int)
    if isinstance(frames, str):
        if frames != "all":
            raise ValueError(f"frames must be an iterable of step indices, 'all' or None, got {frames!r}.")
        return np.arange(S)
    frame_steps = np.unique(np.asarray(list(frames), dtype=int))
    if frame_steps.size and (frame_steps.min() < 0 or frame_steps.max() >= S):
        raise ValueError(f"frame steps must lie in [0, {S - 1}], got {frame_steps.tolist()}.")
    return frame_steps


def _step_times(S: int, dt: float) -> np.ndarray:
    """Start time of each step, accumulated ``t += dt`` as in the original program (length S + 1)."""
    out = np.empty(S + 1)
    t = 0.0
    for n in range(S + 1):
        out[n] = t
        t += dt
    return out


def _simulate_numba(rho, bcs, cfg: P1Config, S: int, dt: float, dx: float, dy: float, xs, ys, E0, T0, F0,
                    frame_steps: np.ndarray, signal_dtype) -> P1Result:
    """The ``backend="numba"`` path of :func:`simulate`: boundary data per step here, the time loop in the kernel."""
    from lib.radiative import p1_kernel

    B, M, N = rho.shape
    shape = (B, M, N)
    T_int = _as_batch(T0, shape, "T0")
    E = _pad_edge(_as_batch(cfg.a * T_int**4 if E0 is None else E0, shape, "E0"))
    T = _pad_edge(T_int)
    Fx = _pad_edge(_as_batch(F0[0], shape, "F0[0]"))
    Fy = _pad_edge(_as_batch(F0[1], shape, "F0[1]"))
    if cfg.ghost_rho == "zero":
        rho_full = np.pad(rho, ((0, 0), (1, 1), (1, 1)), mode="constant", constant_values=0.0)
    else:
        rho_full = _pad_edge(rho)
    t_start = _step_times(S, dt)
    L = max(M, N)
    coords = {"up": xs, "down": xs, "left": ys, "right": ys}
    bc_kind = np.zeros(4, dtype=np.int64)
    src = np.zeros((S, 4))
    prof = np.zeros((4, L))
    dvals = np.zeros((S, 4, 4, L))
    for e, edge in enumerate(EDGES):
        bc = bcs[edge]
        n_e = len(coords[edge])
        if isinstance(bc, Ponctuel):
            bc_kind[e] = p1_kernel.BC_PONCTUEL
            prof[e, :n_e] = (bc.start <= coords[edge]) & (coords[edge] <= bc.end)
            src[:, e] = [bc.amplitude * math.sin(2 * bc.frequency * math.pi * t) for t in t_start[:S]]
            dvals[:, e, 1:, :n_e] = np.array([bc.Fx, bc.Fy, bc.T], dtype=np.float64)[:, None]
        elif isinstance(bc, Dirichlet):
            bc_kind[e] = p1_kernel.BC_DIRICHLET
            for k, v in enumerate((bc.E, bc.Fx, bc.Fy, bc.T)):
                if callable(v):
                    for n in range(S):
                        dvals[n, e, k, :n_e] = np.broadcast_to(np.asarray(v(t_start[n], coords[edge]), dtype=np.float64),
                                                               (n_e,))
                else:
                    dvals[:, e, k, :n_e] = float(v)
    dtype = np.dtype(signal_dtype)
    kdtype = dtype if dtype in (np.dtype(np.float32), np.dtype(np.float64)) else np.dtype(np.float64)
    sig_ud = np.empty((B, 2, 3, S, N), kdtype)
    sig_lr = np.empty((B, 2, 3, S, M), kdtype)
    frame_pos = np.full(S, -1, dtype=np.int64)
    frame_pos[frame_steps] = np.arange(len(frame_steps))
    frames_arr = np.empty((B, len(frame_steps), 4, M, N), kdtype)
    cv = cfg.C_v if cfg.heat_capacity == "aCv" else cfg.C_v / cfg.a
    status = p1_kernel.run_batch(
        E, Fx, Fy, T, np.ascontiguousarray(rho), rho_full, sigma_a=cfg.sigma_a.as_array(), sigma_c=cfg.sigma_c.as_array(),
        a=cfg.a, c=cfg.c, cv=cv, precision=cfg.precision, max_iter=cfg.max_iter,
        faithful_stop=cfg.fixed_point == "previous", dt=dt, dx=dx, dy=dy, eddington=cfg.eddington,
        sum4=cfg.damping == "sum4", before=cfg.record == "before", bc_kind=bc_kind, src=src, prof=prof,
        dvals=dvals, sig_ud=sig_ud, sig_lr=sig_lr, frame_pos=frame_pos, frames=frames_arr)
    if status.any():
        raise RuntimeError(
            f"Step-1 fixed point did not converge in {cfg.max_iter} iterations (step {int(status.max()) - 1}); "
            "lower dt (cfl) or check sigma_a."
        )
    sig = {"up": sig_ud[:, 0], "down": sig_ud[:, 1], "left": sig_lr[:, 0], "right": sig_lr[:, 1]}
    sig = {k: v.astype(dtype, copy=False) if v.dtype != dtype else np.ascontiguousarray(v) for k, v in sig.items()}
    times = t_start[:S] if cfg.record == "before" else t_start[1 : S + 1]
    inner = (slice(None), slice(1, -1), slice(1, -1))
    final = {k: f[inner].copy() for k, f in (("E", E), ("Fx", Fx), ("Fy", Fy), ("T", T))}
    frame_arr = frames_arr.astype(dtype, copy=False) if len(frame_steps) else None
    return P1Result(sig, times.copy(), final, frame_arr, frame_steps, dt, cfg, backend="numba")


def rotate_density(rho: np.ndarray, k: int = 1) -> np.ndarray:
    """Rotate y-up density arrays by ``k * 90`` degrees counter-clockwise (last two axes).

    With y-up arrays, a +90 degree rotation is ``P[::-1, :].T``; the top source on ``rho`` then gives the
    left-source signals on ``rotate_density(rho)`` (see the reference data README).
    """
    out = np.asarray(rho)
    for _ in range(k % 4):
        out = np.swapaxes(out[..., ::-1, :], -1, -2)
    return out


def equilibrium_temperature_0d(E0: float, T0: float, rho: float, *, config: P1Config | None = None) -> float:
    """Temperature of the 0-D radiation/matter equilibrium conserving ``E + rho C_eff T``.

    ``C_eff = a C_v`` in faithful mode, ``C_v`` in physical mode; solved by Newton on
    ``a T^4 + rho C_eff T = E0 + rho C_eff T0``.
    """
    cfg = config or P1Config.faithful()
    ceff = cfg.a * cfg.C_v if cfg.heat_capacity == "aCv" else cfg.C_v
    total = E0 + rho * ceff * T0
    T = T0
    for _ in range(100):
        f = cfg.a * T**4 + rho * ceff * T - total
        T -= f / (4 * cfg.a * T**3 + rho * ceff)
        if abs(f) < 1e-14 * total:
            break
    return float(T)
