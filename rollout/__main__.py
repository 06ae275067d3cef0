"""`python -m rollout` runs the `canary` command."""

import sys

from rollout.cli import main

sys.exit(main())
