"""A Celery worker killed with SIGKILL in the middle of webhook deliveries.

Cases are handed over and approved through the services (each decision writes its outbox
row and sends `deliver_webhook` to the broker after commit); one worker delivers them to a
receiver on loopback that takes a while to answer, so attempts are in flight when the
worker is killed. A new worker and the sweep (a beat stand-in every 2 s) must then deliver
every decision at least once.

What the kill leaves: messages the dead worker had taken from Redis are unacked and come
back only after the broker's visibility timeout (an hour), so the sweep is what recovers;
rows it had claimed are leased for `escalations.delivery.LEASE` (60 s) and are re-driven
when that runs out. The full drill waits the real lease; `--quick` moves the leased rows'
`next_attempt_at` to now in the database (a drill shortcut: what the clock would do).
"""

from __future__ import annotations

import time

from tests.bench.harness import Report, Stack, people_create
from tests.drills.common import (
    HEADERS,
    DrillFailed,
    Receiver,
    all_delivered,
    case_approve,
    cases_ingest,
    delivery_check,
    integration_secret,
    seconds,
    sweeper,
    verdict,
    wait_until,
)


def run(report: Report, *, quick: bool) -> None:
    from django.db.models import F
    from django.utils import timezone

    from escalations.delivery import LEASE
    from escalations.models import WebhookDelivery

    count = 40 if quick else 200
    # Slow enough that a few attempts are always in flight when the worker dies.
    receiver = Receiver(delay=0.2).up()
    people = people_create(reviewers=2, callback_url=receiver.url)
    receiver.secret = integration_secret()
    case_ids = cases_ingest(count, prefix="wk")

    with Stack() as stack:
        worker = stack.worker("wk-worker-1", concurrency=4)
        for n, case_id in enumerate(case_ids):
            case_approve(case_id, people.reviewers[n % 2])
        # Kill once about a third has arrived: some delivered, some in flight, most queued.
        wait_until(lambda: len(receiver.snapshot()) >= count // 3, timeout=120, interval=0.02)
        worker.kill()
        killed_at = time.monotonic()
        worker.popen.wait(10)  # type: ignore[union-attr]
        received_at_kill = len(receiver.snapshot())
        leased = WebhookDelivery.objects.filter(
            state=WebhookDelivery.State.PENDING, attempts__gt=0
        ).count()
        never_tried = WebhookDelivery.objects.filter(
            state=WebhookDelivery.State.PENDING, attempts=0
        ).count()

        stack.worker("wk-worker-2", concurrency=4)
        sweeper(stack, interval=2.0, name="wk-sweeper")
        if quick:
            # The drill shortcut: the dead worker's leases end now instead of in 60 s.
            WebhookDelivery.objects.filter(
                state=WebhookDelivery.State.PENDING, next_attempt_at__gt=timezone.now()
            ).update(next_attempt_at=F("next_attempt_at") - LEASE)
        timeout = 40 if quick else LEASE.total_seconds() + 60
        done = wait_until(all_delivered(receiver), timeout=timeout, interval=0.25)
        recovered = max(item.at for item in receiver.snapshot()) - killed_at if done else None
        # The receiver may have everything while rows the dead worker claimed still wait
        # for their lease: those are sent again (duplicates) and only then recorded.
        settled = wait_until(
            lambda: (
                not WebhookDelivery.objects.exclude(state=WebhookDelivery.State.DELIVERED).exists()
            ),
            timeout=timeout,
            interval=0.25,
        )
        settled_in = time.monotonic() - killed_at if settled else None

    receiver.down()
    check = delivery_check(receiver)
    ok = done and settled and check.ok and check.rows_delivered == check.rows
    report.table(
        "Drill: worker killed (SIGKILL) during deliveries",
        HEADERS,
        [
            [
                "worker_kill",
                f"{count} decisions",
                f"{check.rows} outbox rows",
                f"{check.unique_received} (rows delivered: {check.rows_delivered})",
                check.duplicates,
                len(check.lost),
                seconds(recovered),
                verdict(ok),
            ]
        ],
        notes=[
            f"killed after {received_at_kill} of {count} webhooks arrived; at the kill "
            f"{leased} rows were claimed (leased, attempt in flight or unrecorded) and "
            f"{never_tried} never tried",
            "recovery: a second worker and the sweep every 2 s (beat: 30 s); "
            + (
                "leases moved to now in the database (--quick shortcut)"
                if quick
                else f"leases left to run out ({LEASE.total_seconds():.0f} s)"
            ),
            f"time to recover: from the kill to the last webhook the receiver got; every "
            f"outbox row recorded delivered {seconds(settled_in)} after the kill; most "
            f"attempts per row: {check.max_attempts}",
            f"signatures verified with `standardwebhooks`: {check.received - check.unverified}"
            f" of {check.received} requests",
            "duplicates are allowed (at-least-once, same webhook-id): an attempt the "
            "receiver took whose 2xx the dead worker never recorded is sent again",
        ]
        + ([f"LOST: cases {check.lost[:20]}"] if check.lost else []),
    )
    if not ok:
        raise DrillFailed(
            f"worker_kill: {len(check.lost)} decisions never delivered, "
            f"{check.rows_delivered}/{check.rows} rows delivered, "
            f"{check.unverified} bad signatures"
        )
