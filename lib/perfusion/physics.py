"""Physical constants and unit conversions of CT perfusion (indicator-dilution theory).

The tissue enhancement of a voxel is ``C_t(t) = (rho / k_H) * CBF * (C_a (*) R)(t)`` with CBF in
1/s inside the formula; clinical maps use ml/100 g/min, ml/100 g and s. These constants are
shared by the phantom (which makes curves from known maps) and by deconvolution (which
recovers the maps from curves), so neither depends on the other.

References
----------
.. [1] Fieselmann A. et al., "Deconvolution-based CT and MR brain perfusion measurement:
   theoretical model revisited and practical implementation details", *Int. J. Biomed.
   Imaging* 2011, 467563.
"""

from __future__ import annotations

import numpy as np

__all__ = ["RHO", "K_H", "CBF_UNIT", "cbf_per_second", "cbf_clinical", "central_volume_mtt"]

#: Brain tissue density, g/ml.
RHO: float = 1.05
#: Haematocrit correction (1 - H_large) / (1 - H_small) = (1 - 0.45) / (1 - 0.25).
K_H: float = 0.73
#: ml/100 g/min per (ml/g/s): 100 g and 60 s.
CBF_UNIT: float = 6000.0


def cbf_per_second(cbf: np.ndarray | float) -> np.ndarray | float:
    """CBF in ml/100 g/min to ml/g/s (the unit inside the convolution model)."""
    return cbf / CBF_UNIT


def cbf_clinical(k: np.ndarray | float) -> np.ndarray | float:
    """CBF in ml/g/s to ml/100 g/min."""
    return k * CBF_UNIT


def central_volume_mtt(cbv: np.ndarray, cbf: np.ndarray, *, eps: float = 1e-6) -> np.ndarray:
    """Mean transit time (s) from the central volume theorem ``MTT = 60 * CBV / CBF``.

    Parameters
    ----------
    cbv : ndarray
        Cerebral blood volume, ml/100 g.
    cbf : ndarray
        Cerebral blood flow, ml/100 g/min, same shape.
    eps : float
        Flows at or below ``eps`` give MTT 0 (no flow, no transit).
    """
    cbv = np.asarray(cbv, dtype=float)
    cbf = np.asarray(cbf, dtype=float)
    return np.where(cbf > eps, 60.0 * cbv / np.maximum(cbf, eps), 0.0)
