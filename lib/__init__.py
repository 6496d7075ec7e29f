"""Tested library behind the reproducible study collection.

One package per study and two shared ones (the layering is checked by import-linter, see ``pyproject.toml``):

:mod:`lib.core`
    What every chapter shares: reporting (:mod:`~lib.core.report`), reproducibility
    (:mod:`~lib.core.repro`), the training loop (:mod:`~lib.core.train`), metrics
    (:mod:`~lib.core.metrics`) and the dataset registry (:mod:`~lib.core.registry`).
:mod:`lib.runtime`
    What executes and publishes chapters: the ``studies`` command, the runner, parameter
    validation, sweeps, the book build, results tables and run provenance. It imports only
    :mod:`lib.core` and finds the studies through their chapters, never by import.
:mod:`lib.perfusion`, :mod:`lib.nuclei`, :mod:`lib.radiative`, :mod:`lib.pgnaa`
    One study each: its data, models, solvers and the chapter's glue in ``experiment``.
    A study imports only :mod:`lib.core`, never another study.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
