"""Radiative transfer: the finite-volume P1 solver, densities, the boundary-signal dataset, the SDS
format, the V-Nets, the internship's bump CNN and the chapter's glue (``experiment``)."""

__all__ = ["p1", "densities", "dataset", "sds", "vnet", "bump_cnn", "experiment"]
