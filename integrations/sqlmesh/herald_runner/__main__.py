"""``python -m herald_runner``: see :func:`herald_runner.runner.main`."""

import sys

from .runner import main

sys.exit(main())
