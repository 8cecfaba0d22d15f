"""``python -m refreg``: the library's command line (see :mod:`refreg.cli`)."""

from refreg.cli import main

raise SystemExit(main())
