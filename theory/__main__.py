"""``python -m theory``: the figures command line (see :mod:`theory.cli`)."""

from theory.cli import main

raise SystemExit(main())
