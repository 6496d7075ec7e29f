"""``python -m lib``: the study runner's command line (see :mod:`lib.runtime.cli`)."""

from lib.runtime.cli import main

raise SystemExit(main())
