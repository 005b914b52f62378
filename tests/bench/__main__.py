"""`make bench`: Baton's benchmarks, each against its limit (see tests/bench/harness.py)."""

import sys

from tests.bench.harness import main

sys.exit(main("bench", "tests.bench", sys.argv[1:]))
