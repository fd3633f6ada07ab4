"""``python -m dashboard.cli``: the ``nightcramp`` command."""

import sys

from dashboard.cli.main import main

sys.exit(main())
