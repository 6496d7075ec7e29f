"""Fused Numba kernel of the P1 solver (the ``backend="numba"`` of :func:`lib.radiative.p1.simulate`).

One compiled function runs the whole time loop of each simulation of a batch; the batch is spread over
threads with ``numba.prange`` (``numba.set_num_threads`` picks how many). Per time step and per
simulation it does, in the order of the vectorised code of :mod:`lib.radiative.p1`:

1. record the boundary signals (``record="before"``),
2. step 1, the matter/radiation fixed point, cell by cell: each cell iterates until its own stop rule
   (the same rule and the same iterate kept as the vectorised active-set loop, so the two agree to
   round-off),
3. ghost filling (Neumann, Dirichlet with values precomputed per step, Ponctuel),
4. step 2, the AP hyperbolic step, with every expression evaluated in the order of ``_step2``,
5. record (``record="after"``) and frames.

Opacities are :class:`lib.radiative.p1.PowerOpacity` laws ``coef (scale rho)^p T^q`` passed as four
numbers, so one compiled specialisation serves every law. The jit uses ``cache=True``: the first call on
a machine compiles (a few seconds per signal dtype), later processes load the cached machine code.
Simulations are independent, so results do not depend on the number of threads.

This module is imported lazily by :mod:`lib.radiative.p1` (only when the Numba backend is used).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["run_batch", "BC_NEUMANN", "BC_PONCTUEL", "BC_DIRICHLET"]

BC_NEUMANN, BC_PONCTUEL, BC_DIRICHLET = 0, 1, 2
"""Boundary codes of ``bc_kind`` (edges ordered up, down, left, right)."""


@numba.njit(cache=True, inline="always")
def _power_law(rho, T, coef, scale, p, q):
    """``coef * (T^q * (scale rho)^p)`` with powers by repeated products (as ``PowerOpacity.__call__``)."""
    r = scale * rho
    rp = 1.0
    for _ in range(p):
        rp = rp * r
    tq = 1.0
    for _ in range(q):
        tq = tq * T
    return coef * (tq * rp)


@numba.njit(cache=True)
def _simulate_one(E, Fx, Fy, T, rho, rho_full, sa, sc, a, c, cv, prec, max_iter, faithful_stop,
                  dt, dx, dy, kap, sum4, before, bc_kind, src, prof, dvals,
                  sig_ud, sig_lr, frame_pos, frames, b):
    """Advance simulation ``b`` in place through all steps; return 0, or ``n + 1`` if step 1 failed at step n."""
    Mp, Np = E.shape[1], E.shape[2]
    M, N = Mp - 2, Np - 2
    S = src.shape[0]
    inv_dt = 1.0 / dt
    s = math.sqrt(kap)
    two_s = 2.0 * s
    s_half = s * 0.5
    kap_half = kap * 0.5
    omega = dx * dy
    e_coef = -c * dt / omega
    c_half = c * 0.5
    c_om = c / omega
    mc_om = -c / omega
    one_dt = 1.0 / dt
    sig = np.empty((Mp, Np))
    En = np.empty((M, N))
    Fxn = np.empty((M, N))
    Fyn = np.empty((M, N))
    Eb, Fxb, Fyb, Tb = E[b], Fx[b], Fy[b], T[b]
    rb, rfb = rho[b], rho_full[b]
    for n in range(S):
        if before:
            _store(Eb, Fxb, Fyb, Tb, sig_ud, sig_lr, frame_pos, frames, b, n)
        # ---------------------------------------------------------------- step 1, cell by cell
        for j in range(M):
            for i in range(N):
                En0 = Eb[j + 1, i + 1]
                Tn = Tb[j + 1, i + 1]
                rr = rb[j, i]
                Tn2 = Tn * Tn
                Thn = a * (Tn2 * Tn2)
                Tn3 = Tn2 * Tn
                E_out = En0
                T_out = Tn
                e_q = En0
                th_q = Thn
                done = False
                for _ in range(max_iter):
                    t_q = math.sqrt(math.sqrt(th_q / a))
                    if faithful_stop:
                        E_out = e_q
                        T_out = t_q
                    t2 = t_q * t_q
                    mu = 1.0 / (Tn3 + Tn * t2 + t_q * Tn2 + t2 * t_q)
                    csa = c * _power_law(rr, t_q, sa[0], sa[1], np.int64(sa[2]), np.int64(sa[3]))
                    alpha = inv_dt / (inv_dt + csa)
                    beta = csa / (inv_dt + csa)
                    rcm = rr * cv * mu * inv_dt
                    gamma = rcm / (rcm + csa)
                    delta = csa / (rcm + csa)
                    den = 1.0 - beta * delta
                    e_next = (alpha * En0 + gamma * beta * Thn) / den
                    th_next = (gamma * Thn + alpha * delta * En0) / den
                    de = abs(e_next - e_q)
                    dth = abs(th_next - th_q)
                    if faithful_stop:
                        cont = (de > prec) and (dth > prec)
                    else:
                        E_out = e_next
                        T_out = math.sqrt(math.sqrt(th_next / a))
                        cont = (de > prec) or (dth > prec)
                    if not cont:
                        done = True
                        break
                    e_q = e_next
                    th_q = th_next
                if not done:
                    return n + 1
                Eb[j + 1, i + 1] = E_out
                Tb[j + 1, i + 1] = T_out
        # ---------------------------------------------------------------- ghosts (corners untouched)
        for e in range(4):
            kind = bc_kind[e]
            L = N if e < 2 else M
            for k in range(L):
                if e == 0:
                    gj, gi, kj, ki = Mp - 1, k + 1, Mp - 2, k + 1
                elif e == 1:
                    gj, gi, kj, ki = 0, k + 1, 1, k + 1
                elif e == 2:
                    gj, gi, kj, ki = k + 1, 0, k + 1, 1
                else:
                    gj, gi, kj, ki = k + 1, Np - 1, k + 1, Np - 2
                if kind == 0:
                    Eb[gj, gi] = Eb[kj, ki]
                    Fxb[gj, gi] = Fxb[kj, ki]
                    Fyb[gj, gi] = Fyb[kj, ki]
                    Tb[gj, gi] = Tb[kj, ki]
                elif kind == 1:
                    base = a * Tb[gj, gi] ** 4.0
                    Eb[gj, gi] = base + prof[e, k] * src[n, e]
                    Fxb[gj, gi] = dvals[n, e, 1, k]
                    Fyb[gj, gi] = dvals[n, e, 2, k]
                    Tb[gj, gi] = dvals[n, e, 3, k]
                else:
                    Eb[gj, gi] = dvals[n, e, 0, k]
                    Fxb[gj, gi] = dvals[n, e, 1, k]
                    Fyb[gj, gi] = dvals[n, e, 2, k]
                    Tb[gj, gi] = dvals[n, e, 3, k]
        # ---------------------------------------------------------------- step 2 (AP hyperbolic)
        for j in range(Mp):
            for i in range(Np):
                sig[j, i] = _power_law(rfb[j, i], Tb[j, i], sc[0], sc[1], np.int64(sc[2]), np.int64(sc[3]))
        for j in range(1, Mp - 1):
            for i in range(1, Np - 1):
                sk = sig[j, i]
                Ek = Eb[j, i]
                Fxk = Fxb[j, i]
                Fyk = Fyb[j, i]
                su = 0.5 * (sk + sig[j + 1, i])
                sd = 0.5 * (sk + sig[j - 1, i])
                sl = 0.5 * (sk + sig[j, i - 1])
                sr = 0.5 * (sk + sig[j, i + 1])
                # (kappa = 1: two_s = 2.0 exactly, the 2 / (2 + dx sigma) of the code)
                Mu = two_s / (two_s + dx * su)
                Md = two_s / (two_s + dx * sd)
                Ml = two_s / (two_s + dx * sl)
                Mr = two_s / (two_s + dx * sr)
                Eu = Eb[j + 1, i]
                Ed = Eb[j - 1, i]
                El = Eb[j, i - 1]
                Er = Eb[j, i + 1]
                fn_ku = Fyk
                fn_u = Fyb[j + 1, i]
                fn_kd = -Fyk
                fn_d = -Fyb[j - 1, i]
                fn_kl = -Fxk
                fn_l = -Fxb[j, i - 1]
                fn_kr = Fxk
                fn_r = Fxb[j, i + 1]
                dyMu = dy * Mu
                dyMd = dy * Md
                dxMl = dx * Ml
                dxMr = dx * Mr
                FF_u = dyMu * (0.5 * (fn_ku + fn_u) - s_half * (Eu - Ek))
                FF_d = dyMd * (0.5 * (fn_kd + fn_d) - s_half * (Ed - Ek))
                FF_l = dxMl * (0.5 * (fn_kl + fn_l) - s_half * (El - Ek))
                FF_r = dxMr * (0.5 * (fn_kr + fn_r) - s_half * (Er - Ek))
                sum_FF = FF_u + FF_d + FF_l + FF_r
                FE_u = dyMu * (kap_half * (Ek + Eu) - s_half * (fn_u - fn_ku))
                FE_d = dyMd * (kap_half * (Ek + Ed) - s_half * (fn_d - fn_kd))
                FE_l = dxMl * (kap_half * (Ek + El) - s_half * (fn_l - fn_kl))
                FE_r = dxMr * (kap_half * (Ek + Er) - s_half * (fn_r - fn_kr))
                sumFE_x = FE_r - FE_l
                sumFE_y = FE_u - FE_d
                slmn_x = dxMr - dxMl
                slmn_y = dyMu - dyMd
                tmp_4 = one_dt + c * (Mu * su + Md * sd + Ml * sl + Mr * sr)
                tmp_x = tmp_4 if sum4 else one_dt + c_half * (Ml * sl + Mr * sr)
                tmp_y = tmp_4 if sum4 else one_dt + c_half * (Mu * su + Md * sd)
                En[j - 1, i - 1] = Ek + e_coef * sum_FF
                Fxn[j - 1, i - 1] = (one_dt / tmp_x) * Fxk + Ek * kap * ((c_om / tmp_x) * slmn_x) + (mc_om / tmp_x) * sumFE_x
                Fyn[j - 1, i - 1] = (one_dt / tmp_y) * Fyk + Ek * kap * ((c_om / tmp_y) * slmn_y) + (mc_om / tmp_y) * sumFE_y
        for j in range(M):
            for i in range(N):
                Eb[j + 1, i + 1] = En[j, i]
                Fxb[j + 1, i + 1] = Fxn[j, i]
                Fyb[j + 1, i + 1] = Fyn[j, i]
        if not before:
            _store(Eb, Fxb, Fyb, Tb, sig_ud, sig_lr, frame_pos, frames, b, n)
    return 0


@numba.njit(cache=True, inline="always")
def _store(Eb, Fxb, Fyb, Tb, sig_ud, sig_lr, frame_pos, frames, b, n):
    """Signals of step ``n`` (E, |F|, T in the first interior cells along each edge) and its frame."""
    Mp, Np = Eb.shape
    for k in range(Np - 2):
        for e, r in ((0, Mp - 2), (1, 1)):
            fx = Fxb[r, k + 1]
            fy = Fyb[r, k + 1]
            sig_ud[b, e, 0, n, k] = Eb[r, k + 1]
            sig_ud[b, e, 1, n, k] = math.sqrt(fx * fx + fy * fy)
            sig_ud[b, e, 2, n, k] = Tb[r, k + 1]
    for k in range(Mp - 2):
        for e, col in ((0, 1), (1, Np - 2)):
            fx = Fxb[k + 1, col]
            fy = Fyb[k + 1, col]
            sig_lr[b, e, 0, n, k] = Eb[k + 1, col]
            sig_lr[b, e, 1, n, k] = math.sqrt(fx * fx + fy * fy)
            sig_lr[b, e, 2, n, k] = Tb[k + 1, col]
    f = frame_pos[n]
    if f >= 0:
        for j in range(Mp - 2):
            for i in range(Np - 2):
                frames[b, f, 0, j, i] = Eb[j + 1, i + 1]
                frames[b, f, 1, j, i] = Fxb[j + 1, i + 1]
                frames[b, f, 2, j, i] = Fyb[j + 1, i + 1]
                frames[b, f, 3, j, i] = Tb[j + 1, i + 1]


@numba.njit(cache=True, parallel=True)
def _run_batch(E, Fx, Fy, T, rho, rho_full, sa, sc, a, c, cv, prec, max_iter, faithful_stop,
               dt, dx, dy, kap, sum4, before, bc_kind, src, prof, dvals,
               sig_ud, sig_lr, frame_pos, frames):
    B = E.shape[0]
    status = np.zeros(B, dtype=np.int64)
    for b in numba.prange(B):
        status[b] = _simulate_one(E, Fx, Fy, T, rho, rho_full, sa, sc, a, c, cv, prec, max_iter, faithful_stop,
                                  dt, dx, dy, kap, sum4, before, bc_kind, src, prof, dvals,
                                  sig_ud, sig_lr, frame_pos, frames, b)
    return status


def run_batch(E: np.ndarray, Fx: np.ndarray, Fy: np.ndarray, T: np.ndarray, rho: np.ndarray, rho_full: np.ndarray,
              *, sigma_a: np.ndarray, sigma_c: np.ndarray, a: float, c: float, cv: float, precision: float,
              max_iter: int, faithful_stop: bool, dt: float, dx: float, dy: float, eddington: float, sum4: bool,
              before: bool, bc_kind: np.ndarray, src: np.ndarray, prof: np.ndarray, dvals: np.ndarray,
              sig_ud: np.ndarray, sig_lr: np.ndarray, frame_pos: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """Run every simulation of the batch through all ``S`` steps, in place.

    Parameters
    ----------
    E, Fx, Fy, T : ndarray, shape (B, M + 2, N + 2), float64
        Fields with their ghost layer; updated in place (final state on return).
    rho, rho_full : ndarray, (B, M, N) and (B, M + 2, N + 2), float64
        Interior density and density with ghosts (g/cm^3).
    sigma_a, sigma_c : ndarray, shape (4,), float64
        ``(coef, scale, p, q)`` of the opacity laws.
    a, c, cv, precision, max_iter, faithful_stop, dt, dx, dy, eddington, sum4, before
        Constants and switches (``cv`` is the heat capacity of step 1, ``C_v`` or ``C_v / a``).
    bc_kind : ndarray, shape (4,), int64
        ``BC_NEUMANN``, ``BC_PONCTUEL`` or ``BC_DIRICHLET`` per edge (up, down, left, right).
    src : ndarray, shape (S, 4)
        Oscillating term ``amplitude sin(2 pi f t_n)`` of each Ponctuel edge at each step.
    prof : ndarray, shape (4, L)
        0/1 source profile of each Ponctuel edge (``L = max(M, N)``).
    dvals : ndarray, shape (S, 4, 4, L)
        Ghost values (E, Fx, Fy, T) of Dirichlet edges per step (Fx, Fy, T also for Ponctuel edges).
    sig_ud, sig_lr : ndarray, (B, 2, 3, S, N) and (B, 2, 3, S, M), float32 or float64
        Output signals of the up/down and left/right edges.
    frame_pos : ndarray, shape (S,), int64
        Frame slot of each step, -1 for none.
    frames : ndarray, shape (B, n_frames, 4, M, N)
        Output frames (same dtype as the signals).

    Returns
    -------
    ndarray, shape (B,), int64
        0 per simulation, or ``n + 1`` if the step-1 fixed point did not converge at step ``n``.
    """
    return _run_batch(E, Fx, Fy, T, rho, rho_full, sigma_a, sigma_c, float(a), float(c), float(cv), float(precision),
                      int(max_iter), bool(faithful_stop), float(dt), float(dx), float(dy), float(eddington), bool(sum4),
                      bool(before), bc_kind, src, prof, dvals, sig_ud, sig_lr, frame_pos, frames)
