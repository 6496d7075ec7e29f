"""Synthetic PGNAA spectra from evaluated capture-gamma data, and the real NIST PGAA spectra.

Physics of the generator (thermal-neutron capture, thin sample):

- **Lines**: elemental partial capture cross-sections ``sigma_gamma`` (barn per atom of the
  natural element) from the EGAF library shipped with :mod:`pyEGAF` (IAEA 2007 PGAA
  database), plus lines EGAF does not hold: 10B(n,alpha)7Li* 477.6 keV (716 b per atom of
  natural B, Doppler-broadened to ~15 keV FWHM) and the delayed 28Al 1778.9 keV line
  (one photon per capture, 0.231 b). A line's emission rate is proportional to
  ``w / M * sigma_gamma`` (mass fraction over molar mass).
- **Detector response** (:class:`Detector`): an energy-dependent detection efficiency, a
  Gaussian full-energy peak of FWHM(E), single- and double-escape peaks at ``E - 511`` and
  ``E - 1022`` keV for lines above 1022 keV, and a Klein–Nishina Compton continuum up to
  the Compton edge; HPGe and scintillator resolution models.
- **Background** from the set-up (moderator H 2223 keV, Al holder 1779/7724 keV, B
  shielding 478 keV, annihilation 511 keV and a falling continuum) at a fixed rate, so
  materials with few captures have a larger background share.

Not modelled: self-shielding, neutron spectrum/epithermal capture, pile-up, dead time,
peak tails. Compositions are nominal mid-range values (see :data:`MATERIALS`, each with
its source note); they were not tuned to reproduce the paper's accuracies.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import ndtr

from lib.pgnaa.spectra import Calibration, Spectrum, channel_edges, read_spe, rebin

__all__ = [
    "PAPER_CALIBRATION",
    "PAPER_N_CHANNELS",
    "MOLAR_MASS",
    "Material",
    "MATERIALS",
    "EXPERIMENTS",
    "Detector",
    "HPGE",
    "NAI",
    "parse_formula",
    "composition_from_compounds",
    "element_lines",
    "material_lines",
    "response_matrix_lines",
    "model_spectrum",
    "background_spectrum",
    "full_measurement",
    "class_templates",
    "load_nist",
    "nist_root",
    "NistSpectra",
    "BACKGROUND_RATE",
]

#: Paper calibration: channel 8000 = 5641.92 keV, channel 16384 = 11552.48 keV.
PAPER_CALIBRATION = Calibration.from_two_points(8000, 5641.92, 16384, 11552.48)
PAPER_N_CHANNELS = 16384

#: Standard atomic weights (g/mol, IUPAC abridged) of the elements used here.
MOLAR_MASS: dict[str, float] = {
    "H": 1.008, "B": 10.81, "C": 12.011, "N": 14.007, "O": 15.999, "Na": 22.990, "Mg": 24.305,
    "Al": 26.982, "Si": 28.085, "P": 30.974, "S": 32.06, "Cl": 35.45, "K": 39.098, "Ca": 40.078,
    "Ti": 47.867, "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693,
    "Cu": 63.546, "Zn": 65.38, "Zr": 91.224, "Cd": 112.414, "Sn": 118.71, "Sm": 150.36,
    "Gd": 157.25, "Hg": 200.592, "Pb": 207.2,
}

# Lines missing from EGAF's (n,gamma) data: (element, energy keV, sigma_gamma b, intrinsic FWHM keV)
_EXTRA_LINES = [
    ("B", 477.6, 716.0, 15.0),   # 10B(n,alpha)7Li*: 3837 b * 0.199 abundance * 0.94 branch, Doppler broadened
    ("Al", 1778.9, 0.231, 0.0),  # delayed 28Al beta decay, ~1 photon per capture (saturated activity)
]


def parse_formula(formula: str) -> dict[str, float]:
    """Atom counts of a chemical formula with parentheses, e.g. ``"Mg3Si2O5(OH)4"``."""
    tokens = re.findall(r"([A-Z][a-z]?|\(|\)|\d+(?:\.\d+)?)", formula)
    if "".join(tokens) != formula.replace(" ", ""):
        raise ValueError(f"cannot parse chemical formula {formula!r}")
    stack: list[dict[str, float]] = [{}]
    i = 0
    while i < len(tokens):
        t = tokens[i]
        has_num = i + 1 < len(tokens) and re.fullmatch(r"\d+(?:\.\d+)?", tokens[i + 1]) is not None
        mult = float(tokens[i + 1]) if has_num else 1.0
        step = 2 if has_num else 1
        if t == "(":
            stack.append({})
            i += 1
            continue
        if t == ")":
            if len(stack) < 2:
                raise ValueError(f"unbalanced parentheses in {formula!r}")
            grp = stack.pop()
            for el, n in grp.items():
                stack[-1][el] = stack[-1].get(el, 0.0) + n * mult
        elif t in MOLAR_MASS:
            stack[-1][t] = stack[-1].get(t, 0.0) + mult
        else:
            raise ValueError(f"unknown element or token {t!r} in formula {formula!r}")
        i += step
    if len(stack) != 1:
        raise ValueError(f"unbalanced parentheses in {formula!r}")
    return stack[0]


def composition_from_compounds(compounds: dict[str, float]) -> dict[str, float]:
    """Elemental mass fractions (sum 1) from compound mass percentages ``{"CaO": 64, "SiO2": 21}``."""
    out: dict[str, float] = {}
    total = sum(compounds.values())
    if total <= 0:
        raise ValueError("compound percentages must sum to a positive number")
    for formula, pct in compounds.items():
        atoms = parse_formula(formula)
        m = sum(n * MOLAR_MASS[el] for el, n in atoms.items())
        for el, n in atoms.items():
            out[el] = out.get(el, 0.0) + pct / total * n * MOLAR_MASS[el] / m
    return out


@dataclass(frozen=True)
class Material:
    """A sample: elemental mass fractions (normalised to 1) and where they come from."""

    name: str
    composition: dict[str, float]
    note: str = ""

    def __post_init__(self) -> None:
        unknown = set(self.composition) - set(MOLAR_MASS)
        if unknown:
            raise ValueError(f"{self.name}: no molar mass for {sorted(unknown)}")
        s = sum(self.composition.values())
        if s <= 0 or any(v < 0 for v in self.composition.values()):
            raise ValueError(f"{self.name}: mass fractions must be non-negative with a positive sum")
        object.__setattr__(self, "composition", {k: v / s for k, v in self.composition.items()})


def _alloy(base: str, **others: float) -> dict[str, float]:
    comp = {k: v / 100 for k, v in others.items()}
    comp[base] = 1 - sum(comp.values())
    return comp


_SOIL = composition_from_compounds({
    "SiO2": 64.0, "Al2O3": 13.0, "Fe2O3": 5.0, "CaO": 2.0, "MgO": 1.2, "K2O": 2.0, "Na2O": 1.0, "TiO2": 0.7,
    "MnO": 0.08, "H2O": 7.0, "C": 3.0, "B": 0.003, "Cl": 0.01, "Gd": 0.0004, "Sm": 0.0005,
})

MATERIALS: dict[str, Material] = {m.name: m for m in [
    # ---- Experiment I (10 substances + 2 soils); the paper gives names only ----
    Material("Scrap metal powder", composition_from_compounds({
        "Fe": 62.0, "Fe2O3": 15.0, "Cr": 6.0, "Ni": 3.0, "Mn": 1.2, "Cu": 1.5, "Al": 3.0, "SiO2": 5.0, "C": 1.5,
        "Zn": 1.0, "H2O": 0.8}), "assumed steel/iron grinding powder with oxides"),
    Material("Cement", composition_from_compounds({
        "CaO": 64.0, "SiO2": 21.0, "Al2O3": 5.0, "Fe2O3": 3.0, "MgO": 2.0, "SO3": 3.0, "K2O": 0.8, "Na2O": 0.3,
        "H2O": 0.9}), "Portland cement CEM I, typical oxide analysis"),
    Material("Stucco", composition_from_compounds({"CaSO4": 93.8, "H2O": 6.2}), "CaSO4·½H2O (plaster of Paris)"),
    Material("Al-AW7075", _alloy("Al", Zn=5.6, Mg=2.5, Cu=1.6, Cr=0.23, Fe=0.25, Si=0.2, Mn=0.15, Ti=0.1),
             "EN AW-7075 mid-range (EN 573-3)"),
    Material("Cu", _alloy("Cu", O=0.02), "Cu-ETP (CW004A), >= 99.9 % Cu"),
    Material("Melamine", composition_from_compounds({"C3H6N6": 100.0}), "melamine C3H6N6"),
    Material("Aslikos", composition_from_compounds({"Mg3Si2O5(OH)4": 85.0, "CaCO3": 8.0, "Fe2O3": 4.0,
                                                    "Al2O3": 3.0}),
             "composition not given in the paper; ASSUMED serpentine-type (chrysotile) mineral"),
    Material("PVC", composition_from_compounds({"C2H3Cl": 100.0}), "polyvinyl chloride, no additives"),
    Material("Soil-1", _SOIL, "average crustal soil with 7 % water, 30 ppm B, 4 ppm Gd, 5 ppm Sm"),
    Material("Soil HgS inhomogeneous", {**_SOIL, "Hg": 20e-6, "S": 3.2e-6},
             "Soil-1 with HgS grains; ASSUMED 20 mg/kg Hg seen by the beam (inhomogeneous)"),
    Material("Battery NiCd", composition_from_compounds({
        "Fe": 35.0, "Ni(OH)2": 30.0, "Cd": 15.0, "Cd(OH)2": 5.0, "KOH": 4.0, "H2O": 6.0, "C2H4": 5.0}),
        "typical NiCd cell (steel can, electrodes, KOH electrolyte, plastic)"),
    Material("Copper ore", composition_from_compounds({
        "CuFeS2": 8.0, "Cu2S": 2.0, "SiO2": 55.0, "Al2O3": 14.0, "Fe2O3": 8.0, "CaO": 5.0, "K2O": 3.0,
        "MgO": 2.0, "H2O": 3.0}), "chalcopyrite ore in silicate gangue (ASSUMED grade ~5 % Cu)"),
    # ---- Aluminium alloys (Experiments II / IIIa); the paper names only Al-1 = AW7075 ----
    Material("Al-1", _alloy("Al", Zn=5.6, Mg=2.5, Cu=1.6, Cr=0.23, Fe=0.25, Si=0.2, Mn=0.15, Ti=0.1),
             "EN AW-7075 mid-range"),
    Material("Al-2", _alloy("Al", Mg=4.4, Mn=0.7, Cr=0.15, Fe=0.2, Si=0.2, Ti=0.05, Zn=0.1),
             "EN AW-5083 mid-range (assumed identity)"),
    Material("Al-3", _alloy("Al", Si=1.0, Mg=0.9, Mn=0.7, Fe=0.3, Cu=0.05, Cr=0.1, Zn=0.1),
             "EN AW-6082 mid-range (assumed identity)"),
    Material("Al-4", _alloy("Al", Fe=0.3, Si=0.15, Mn=0.02, Cu=0.02, Zn=0.03, Ti=0.02),
             "EN AW-1050A (assumed identity)"),
    # ---- Copper alloys (Experiment IIIb); the paper does not name them ----
    Material("Cu-1", _alloy("Cu", O=0.02), "Cu-ETP CW004A (assumed identity)"),
    Material("Cu-2", _alloy("Cu", Sn=6.0, P=0.2), "CuSn6 bronze CW452K (assumed identity)"),
    Material("Cu-3", _alloy("Cu", Zn=37.0), "CuZn37 brass CW508L (assumed identity)"),
    Material("Cu-4", _alloy("Cu", Ni=10.0, Fe=1.5, Mn=0.8), "CuNi10Fe1Mn CW352H (assumed identity)"),
    Material("Cu-5", _alloy("Cu", Al=10.0, Ni=5.0, Fe=4.0, Mn=1.0), "CuAl10Ni5Fe4 CW307G (assumed identity)"),
]}

#: The paper's experiments: class names, counts per sample k, and the quoted live time (s).
EXPERIMENTS: dict[str, dict] = {
    "I": {"classes": ["Scrap metal powder", "Cement", "Stucco", "Al-AW7075", "Cu", "Melamine", "Aslikos", "PVC",
                      "Soil-1", "Soil HgS inhomogeneous", "Battery NiCd", "Copper ore"],
          "k": 19650, "live_time_s": 2.479, "paper_accuracy": 0.9688},
    "II": {"classes": ["Al-1", "Al-2", "Al-3", "Al-4"], "k": 20000, "live_time_s": 1.11, "paper_accuracy": 0.65},
    "IIIa": {"classes": ["Al-1", "Al-2", "Al-3", "Al-4"], "k": 500000, "live_time_s": 27.74,
             "paper_accuracy": 0.93},
    "IIIb": {"classes": ["Cu-1", "Cu-2", "Cu-3", "Cu-4", "Cu-5"], "k": 500000, "live_time_s": 24.44,
             "paper_accuracy": 0.976},
}


@dataclass(frozen=True)
class Detector:
    """Detector response parameters.

    Attributes
    ----------
    kind : {"hpge", "scintillator"}
        Resolution model. HPGe: ``FWHM^2 = a + b*(E/MeV)^2`` keV^2 (default fitted on the
        NIST spectra: 4.7 keV^2, 0.32 keV^2/MeV^2). Scintillator:
        ``FWHM = r662 * 662 * sqrt(E/662)`` keV.
    fwhm_a, fwhm_b : float
        HPGe resolution coefficients (keV^2, keV^2/MeV^2).
    r662 : float
        Scintillator relative resolution at 662 keV.
    escape : float
        Escape-peak strength: SE/FEP reaches ``escape`` and DE/FEP ``0.6*escape`` at 8 MeV
        (unsuppressed coaxial detector ~1).
    peak_to_total_1332 : float
        Peak-to-total ratio at 1332 keV (falls as E^-0.6).
    """

    kind: str = "hpge"
    fwhm_a: float = 4.7
    fwhm_b: float = 0.32
    r662: float = 0.07
    escape: float = 0.9
    peak_to_total_1332: float = 0.25

    def fwhm(self, energy: np.ndarray) -> np.ndarray:
        """FWHM (keV) at ``energy`` (keV)."""
        e = np.asarray(energy, dtype=float)
        if self.kind == "hpge":
            return np.sqrt(self.fwhm_a + self.fwhm_b * (e / 1000.0) ** 2)
        if self.kind == "scintillator":
            return self.r662 * 662.0 * np.sqrt(np.maximum(e, 1.0) / 662.0)
        raise ValueError(f"unknown detector kind {self.kind!r} (use 'hpge' or 'scintillator')")

    def efficiency(self, energy: np.ndarray) -> np.ndarray:
        """Relative total detection efficiency (1 at 1 MeV), with a low-energy roll-off."""
        e = np.maximum(np.asarray(energy, dtype=float), 1.0)
        return (e / 1000.0) ** -0.5 * (1 - np.exp(-((e / 60.0) ** 3)))

    def peak_fraction(self, energy: np.ndarray) -> np.ndarray:
        """Share of detected photons in the full-energy peak."""
        e = np.maximum(np.asarray(energy, dtype=float), 1.0)
        return np.clip(self.peak_to_total_1332 * (e / 1332.0) ** -0.6, 0.0, 0.9)

    def escape_ratios(self, energy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(SE/FEP, DE/FEP) ratios at ``energy``; zero below 1022 keV."""
        e = np.asarray(energy, dtype=float)
        s = np.clip((e - 1022.0) / (8000.0 - 1022.0), 0.0, 1.5) ** 1.2
        return self.escape * s, 0.6 * self.escape * s


HPGE = Detector()
NAI = Detector(kind="scintillator", r662=0.07, escape=0.5, peak_to_total_1332=0.35)


@lru_cache(maxsize=1)
def _egaf():
    import pyEGAF

    with contextlib.redirect_stdout(io.StringIO()):
        e = pyEGAF.EGAF()
        ed = e.load_egaf()
        pairs = e.egaf_target_residual_dict(ed)
    return e, ed, pairs


@cache
def element_lines(element: str, *, min_relative: float = 1e-3, min_energy: float = 50.0) -> pd.DataFrame:
    """Capture-gamma lines of a natural element.

    Parameters
    ----------
    element : str
        Symbol, e.g. ``"Fe"``.
    min_relative : float
        Keep lines with ``sigma_gamma >= min_relative * max(sigma_gamma)`` of the element.
    min_energy : float
        Drop lines below this energy (keV).

    Returns
    -------
    pandas.DataFrame
        Columns ``energy_keV``, ``sigma_b`` (elemental partial cross-section, barn per atom
        of the natural element), ``width_keV`` (intrinsic FWHM, 0 except Doppler-broadened
        lines), sorted by energy.
    """
    if element not in MOLAR_MASS:
        raise ValueError(f"unknown element {element!r}; known: {sorted(MOLAR_MASS)}")
    e, ed, pairs = _egaf()
    rows = []
    with contextlib.redirect_stdout(io.StringIO()):
        for residual, (target, _z, _a) in pairs.items():
            if re.sub(r"\d+", "", target) != element:
                continue
            try:
                g = e.get_gammas(ed, residual, intensity="elemental")
            except Exception:  # noqa: BLE001 - a residual without gamma data
                continue
            if g is None or len(g) == 0:
                continue
            g = np.asarray(g, dtype=float)
            rows.append(np.stack([g[:, 4], g[:, 6], np.zeros(len(g))], axis=1))
    for el, en, sig, w in _EXTRA_LINES:
        if el == element:
            rows.append(np.array([[en, sig, w]]))
    if not rows:
        raise ValueError(f"no capture-gamma data for {element!r} in EGAF")
    arr = np.concatenate(rows)
    arr = arr[np.isfinite(arr).all(axis=1) & (arr[:, 1] > 0) & (arr[:, 0] >= min_energy)]
    arr = arr[arr[:, 1] >= min_relative * arr[:, 1].max()]
    df = pd.DataFrame(arr, columns=["energy_keV", "sigma_b", "width_keV"]).sort_values("energy_keV")
    return df.reset_index(drop=True)


def material_lines(material: Material | dict[str, float]) -> pd.DataFrame:
    """Emission lines of a material: ``energy_keV``, ``rate`` (w/M·sigma, mol/g·b), ``width_keV``, ``element``."""
    comp = material.composition if isinstance(material, Material) else dict(material)
    frames = []
    for el, w in comp.items():
        if w <= 0:
            continue
        df = element_lines(el).copy()
        df["rate"] = w / MOLAR_MASS[el] * df.pop("sigma_b")
        df["element"] = el
        frames.append(df)
    return pd.concat(frames, ignore_index=True)


def _klein_nishina(t: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Unnormalised Klein–Nishina recoil-energy distribution dσ/dT; t (n,), e (L,) keV -> (L, n)."""
    k = (e / 511.0)[:, None]
    s = np.clip(t[None, :] / e[:, None], 0.0, None)
    edge = 2 * k / (1 + 2 * k)
    ok = s < edge
    s = np.where(ok, s, 0.5 * edge)
    val = 2 + s**2 / (k**2 * (1 - s) ** 2) + s / (1 - s) * (s - 2 / k)
    return np.where(ok, val, 0.0)


def response_matrix_lines(energies: np.ndarray, rates: np.ndarray, widths: np.ndarray, edges: np.ndarray,
                          detector: Detector = HPGE, *, n_coarse: int = 1024) -> np.ndarray:
    """Expected detected counts per bin for a set of lines (vectorised over lines).

    Peaks are integrated exactly over the bins inside a ±7σ window of each peak; the
    smooth Compton continuum is evaluated on ``n_coarse`` coarse bins and spread
    uniformly (counts-conserving) onto the fine bins.

    Parameters
    ----------
    energies, rates, widths : numpy.ndarray, shape (L,)
        Line energies (keV), emission rates (any unit), intrinsic FWHM (keV).
    edges : numpy.ndarray, shape (n + 1,)
        Bin edges (keV), strictly increasing.
    detector : Detector
    n_coarse : int
        Number of coarse bins for the continuum.

    Returns
    -------
    numpy.ndarray, shape (n,)
        Expected counts per bin (same unit as ``rates``).
    """
    edges = np.asarray(edges, dtype=float)
    n = edges.size - 1
    e, r, w = (np.asarray(a, dtype=float) for a in (energies, rates, widths))
    det = r * detector.efficiency(e)
    pf = detector.peak_fraction(e)
    se, de = detector.escape_ratios(e)
    # peaks: full energy, single and double escape (Gaussians integrated over bins)
    pe = np.concatenate([e, e - 511.0, e - 1022.0])
    pa = np.concatenate([det * pf, det * pf * se, det * pf * de])
    pw = np.concatenate([w, w, w])
    keep = (pa > 0) & (pe > edges[0] - 50) & (pe < edges[-1] + 50)
    pe, pa, pw = pe[keep], pa[keep], pw[keep]
    sig = np.sqrt(detector.fwhm(pe) ** 2 + pw**2) / 2.3548
    out = np.zeros(n)
    if pe.size:
        half = int(np.ceil(7 * sig.max() / np.diff(edges).min())) + 1
        centre = np.clip(np.searchsorted(edges, pe) - 1, 0, n - 1)
        idx = centre[:, None] + np.arange(-half, half + 1)[None, :]  # bin indices (P, W)
        valid = (idx >= 0) & (idx < n)
        idc = np.clip(idx, 0, n - 1)
        lo = ndtr((edges[idc] - pe[:, None]) / sig[:, None])
        hi = ndtr((edges[idc + 1] - pe[:, None]) / sig[:, None])
        out += np.bincount(idc[valid], weights=((hi - lo) * pa[:, None])[valid], minlength=n)
    # Compton continuum (Klein–Nishina shape) carrying the rest of the detected photons
    comp = np.clip(1.0 - pf * (1 + se + de), 0.0, 1.0) * det
    cedges = np.linspace(edges[0], edges[-1], min(n_coarse, n) + 1)
    cc = 0.5 * (cedges[1:] + cedges[:-1])
    kn = _klein_nishina(cc, e)
    norm = kn.sum(axis=1, keepdims=True)
    coarse = comp @ np.where(norm > 0, kn / np.where(norm > 0, norm, 1.0), 0.0)
    out += rebin(coarse, cedges, edges, integer=False)
    return out


def background_spectrum(edges: np.ndarray, detector: Detector = HPGE) -> np.ndarray:
    """Set-up background per bin, normalised to 1: lines (H 2223, Al 1779/7724, B 478, 511) + continuum."""
    lines = np.array([[2223.2, 1.0, 0.0], [1778.9, 0.25, 0.0], [7724.0, 0.15, 0.0], [477.6, 0.3, 15.0],
                      [511.0, 0.2, 2.5]])
    s = response_matrix_lines(lines[:, 0], lines[:, 1], lines[:, 2], edges, detector)
    centres = 0.5 * (edges[1:] + edges[:-1])
    cont = np.exp(-centres / 1500.0) * (1 - np.exp(-((centres / 80.0) ** 2))) * np.diff(edges)
    s = s / s.sum() + 1.5 * cont / cont.sum()
    return s / s.sum()


#: background rate relative to a sample with sum(w*sigma0/M) = 1e-2 mol/g*b (then ~20 % of counts)
BACKGROUND_RATE = 2.5e-3


def model_spectrum(material: Material | str, *, detector: Detector = HPGE,
                   calibration: Calibration = PAPER_CALIBRATION, n_channels: int = PAPER_N_CHANNELS,
                   true_calibration: Calibration | None = None, background: float = BACKGROUND_RATE,
                   fwhm_scale: float = 1.0) -> Spectrum:
    """Expected spectrum shape of ``material`` (probabilities per channel, summing to 1).

    Parameters
    ----------
    material : Material or str
        A :class:`Material` or a key of :data:`MATERIALS`.
    detector : Detector
    calibration : Calibration
        Nominal calibration used for the returned channel energies.
    n_channels : int
    true_calibration : Calibration, optional
        The detector's actual calibration (gain/offset drift nuisance); channel ``i``
        collects the energies of ``true_calibration``'s channel ``i``.
    background : float
        Background rate in the units of :func:`material_lines`' ``rate`` (0 for none).
    fwhm_scale : float
        Multiplies the detector FWHM (resolution nuisance).

    Returns
    -------
    Spectrum
        ``counts`` are probabilities (float, sum 1); ``meta['sample_rate']`` is the
        detected sample rate and ``meta['background_share']`` the background fraction.
    """
    if isinstance(material, str):
        if material not in MATERIALS:
            raise KeyError(f"unknown material {material!r}; known: {list(MATERIALS)}")
        material = MATERIALS[material]
    det = detector
    if fwhm_scale != 1.0:
        det = Detector(det.kind, det.fwhm_a * fwhm_scale**2, det.fwhm_b * fwhm_scale**2, det.r662 * fwhm_scale,
                       det.escape, det.peak_to_total_1332)
    cal = true_calibration or calibration
    edges = channel_edges(cal.energy(np.arange(n_channels)))
    lines = material_lines(material)
    lines = lines[lines.rate >= 1e-6 * lines.rate.sum()]
    s = response_matrix_lines(lines.energy_keV.to_numpy(), lines.rate.to_numpy(), lines.width_keV.to_numpy(),
                              edges, det)
    sample_rate = float(s.sum())
    total = s + background * background_spectrum(edges, det)
    p = total / total.sum()
    share = float(background / (background + sample_rate))
    return Spectrum(p, calibration.energy(np.arange(n_channels)), label=material.name,
                    meta={"sample_rate": sample_rate, "background_share": share})


def full_measurement(template: Spectrum, total_counts: float, *, rng: np.random.Generator) -> Spectrum:
    """A long measurement: Poisson counts with mean ``total_counts * template.counts`` (int64)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError("rng must be a numpy.random.Generator")
    lam = np.asarray(template.counts, dtype=float) * float(total_counts)
    return Spectrum(rng.poisson(lam).astype(np.int64), template.energy, label=template.label,
                    meta=dict(template.meta))


def class_templates(names: list[str], **kwargs) -> np.ndarray:
    """Stack :func:`model_spectrum` probabilities for ``names``: shape (n_classes, n_channels)."""
    return np.stack([model_spectrum(n, **kwargs).counts for n in names])


# --------------------------------------------------------------------------------------------- NIST
@dataclass
class NistSpectra:
    """NIST PGAA spectra on a common energy grid.

    Attributes
    ----------
    counts : numpy.ndarray, shape (n_spectra, n_bins), int64
    edges : numpy.ndarray, shape (n_bins + 1,)  keV
    labels : numpy.ndarray, shape (n_spectra,), int64 index into ``classes``
    classes : list[str]
    groups : numpy.ndarray, shape (n_spectra,), str  source folder (SRM / sample)
    manifest : pandas.DataFrame
    """

    counts: np.ndarray
    edges: np.ndarray
    labels: np.ndarray
    classes: list[str]
    groups: np.ndarray
    manifest: pd.DataFrame = field(repr=False)

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])


def nist_root() -> Path:
    """Root folder of the verified NIST PGAA data via the data registry.

    Raises
    ------
    lib.core.registry.DataUnavailableError
        When no verified copy is available; the message says how to obtain one.
    """
    from lib.core import registry

    return Path(registry.fetch("nist-pgaa"))


def load_nist(edges: np.ndarray, *, root: str | Path | None = None, classes: list[str] | None = None,
              max_per_group: int | None = None) -> NistSpectra:
    """Read the NIST ``.SPE`` spectra and rebin them (integer counts) onto ``edges`` (keV).

    Parameters
    ----------
    edges : numpy.ndarray, shape (n_bins + 1,)
        Common energy grid (keV); see :func:`lib.pgnaa.spectra.energy_grid`.
    root : str or Path, optional
        Dataset root (with ``manifest.csv`` and ``training/``); default via the registry.
    classes : list of str, optional
        Keep only these classes (default: all 13).
    max_per_group : int, optional
        Keep at most this many spectra per source folder (for fast profiles).
    """
    root = Path(root) if root is not None else nist_root()
    man = pd.read_csv(root / "manifest.csv")
    if classes is not None:
        unknown = set(classes) - set(man["class"])
        if unknown:
            raise ValueError(f"unknown NIST classes {sorted(unknown)}; known: {sorted(man['class'].unique())}")
        man = man[man["class"].isin(classes)]
    man = man.sort_values(["class", "folder", "path"])
    if max_per_group is not None:
        man = man.groupby("folder", group_keys=False).head(max_per_group)
    man = man.reset_index(drop=True)
    cls = sorted(man["class"].unique()) if classes is None else list(classes)
    rows = []
    for p in man["path"]:
        sp = read_spe(root / p)
        rows.append(rebin(sp.counts, sp.edges, edges, integer=True))
    return NistSpectra(np.stack(rows), np.asarray(edges, float), man["class"].map(cls.index).to_numpy(np.int64), cls,
                       man["folder"].to_numpy(), man)
