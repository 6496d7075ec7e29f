"""``python -m lib``: the study runner's command line (see :mod:`lib.cli`)."""

from lib.cli import main

raise SystemExit(main())
