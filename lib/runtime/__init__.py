"""The runner: what executes a chapter and records the run.

:mod:`~lib.runtime.run` (validate, key, lock, execute), :mod:`~lib.runtime.params` (parameter files and
their checks), :mod:`~lib.runtime.sweep` (sweeps as data), :mod:`~lib.runtime.record` (the run record and
the one reuse rule), :mod:`~lib.runtime.status` (where every run stands), :mod:`~lib.runtime.provenance`,
:mod:`~lib.runtime.interrupt` (Ctrl-C) and :mod:`~lib.runtime.outdir` (output-folder safety).

Its code is part of every run's key (it executes the chapters); it imports only :mod:`lib.core`, and finds
studies through their chapters (``book/<study>/<study>.md``), never by import.
"""

__all__ = ["run", "params", "sweep", "record", "status", "provenance", "interrupt", "outdir"]
