"""Tested library behind the reproducible study collection.

Sub-packages are organised by kind: :mod:`lib.models` (networks), :mod:`lib.solvers`
(P1 transport, deconvolution), :mod:`lib.data` (synthetic generators, real-data loaders,
dataset registry) and :mod:`lib.metrics`; the runtime lives in :mod:`lib.run`,
:mod:`lib.params`, :mod:`lib.repro`, :mod:`lib.report` and :mod:`lib.train`.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
