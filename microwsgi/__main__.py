"""`python -m microwsgi ...`: the same command line as the `microwsgi` script."""

from .cli import main

raise SystemExit(main())
