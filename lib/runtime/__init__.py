"""What executes and publishes chapters: the ``studies`` command, the runner, parameters, sweeps,
the book build, results tables and run provenance.

It imports only :mod:`lib.core`; studies are found through their chapters (``book/<study>/<study>.md``),
never imported."""

__all__ = ["cli", "run", "params", "sweep", "book", "results", "provenance"]
