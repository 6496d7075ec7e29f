"""Radiative transfer: the finite-volume P1 solver (and its fused Numba kernel), densities, the
boundary-signal dataset, the SDS format, the V-Nets, the internship's bump CNN and the chapter's glue
(``experiment``)."""

__all__ = ["p1", "p1_kernel", "densities", "dataset", "sds", "vnet", "bump_cnn", "experiment"]
