"""Tested library behind the reproducible study collection.

One package per study, the shared :mod:`lib.core`, and the layers that run and publish them (the layering is checked by import-linter, see ``pyproject.toml``):

:mod:`lib.core`
    What every chapter shares: reporting (:mod:`~lib.core.report`), reproducibility
    (:mod:`~lib.core.repro`), the training loop (:mod:`~lib.core.train`), metrics
    (:mod:`~lib.core.metrics`) and the dataset registry (:mod:`~lib.core.registry`).
:mod:`lib.runtime`
    The runner: parameter files and their checks, sweeps, executing a chapter, the run record and the
    one reuse rule, ``studies status``. It imports only :mod:`lib.core` and finds the studies through
    their chapters, never by import. With :mod:`lib.core` and the study's own package it makes a run's key.
:mod:`lib.pages`
    The generated pages: the tables gathered from every run, "Results across runs", "Execution of the
    chapters", the GPU records. Imports :mod:`lib.runtime` and :mod:`lib.core`.
:mod:`lib.site`
    The published site: the book build, theme, offline maths, browser check, publishing, lab editions.
:mod:`lib.cli`
    The ``studies`` command on top of them all.
:mod:`lib.perfusion`, :mod:`lib.nuclei`, :mod:`lib.radiative`, :mod:`lib.pgnaa`
    One study each: its data, models, solvers and the chapter's glue in ``experiment``.
    A study imports only :mod:`lib.core`, never another study.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"
