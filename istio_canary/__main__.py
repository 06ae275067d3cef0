"""`python -m istio_canary` runs the `canary` command."""

import sys

from istio_canary.cli import main

sys.exit(main())
