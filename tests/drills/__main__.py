"""`make drills`: faults injected into a running Baton, each ending with a check that
nothing was lost or duplicated beyond at-least-once (see tests/bench/harness.py)."""

import sys

from tests.bench.harness import main

sys.exit(main("drills", "tests.drills", sys.argv[1:]))
