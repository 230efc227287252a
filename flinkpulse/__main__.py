"""`python -m flinkpulse` is the same as the `flinkpulse` console script."""

import sys

from flinkpulse.cli import main

sys.exit(main())
