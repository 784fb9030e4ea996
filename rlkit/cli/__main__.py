"""`python -m rlkit.cli ...`: the same as the `rlkit` console script."""

import sys

from rlkit.cli.main import main

sys.exit(main())
