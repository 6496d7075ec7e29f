"""Numerical solvers: P1 radiative transfer, perfusion deconvolution."""
