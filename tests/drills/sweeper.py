"""`python -m tests.drills.sweeper SECONDS`: a stand-in for Celery beat in the drills.

Sends `escalations.sweep_deliveries` to the broker every SECONDS, as beat's
`sweep-deliveries` entry does every 30 s; a broker that is down is logged and retried on
the next tick, as beat would. Started by `tests.drills.common.sweeper` with the run's
environment.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main(interval: float) -> None:
    import django

    django.setup()
    from escalations.tasks import sweep_deliveries

    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    log = logging.getLogger("drills.sweeper")
    while running:
        try:
            sweep_deliveries.delay()
        except Exception as error:  # the broker is down: the next tick tries again
            log.warning("sweep not sent: %r", error)
        time.sleep(interval)


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
