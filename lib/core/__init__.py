"""What every chapter shares: reporting, reproducibility, the training loop, metrics and the dataset registry.

The modules are imported on demand (``from lib.core import report``); none of them imports
:mod:`lib.runtime` or a study package."""

__all__ = ["report", "repro", "train", "metrics", "registry", "splits"]
