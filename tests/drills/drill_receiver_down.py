"""The agent's webhook endpoint down for a while, then back.

Decisions are made while the receiver is not listening (connection refused); the first
attempts fail and are retried after `RETRY_SCHEDULE[0]` (5 s, on the broker's countdown).
By then the receiver is up but answering 503, so the second attempts fail too and the
rows back off to `RETRY_SCHEDULE[1]` (5 minutes). The drill checks that nothing is tried
before it is due (the sweep runs every 2 s meanwhile), then the receiver recovers and the
clock is moved: the rows' `next_attempt_at` is set to now in the database (a drill
shortcut standing in for five minutes of waiting; the schedule is a constant in
escalations/delivery.py, not a setting). The sweep must then deliver every decision.
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
    from django.db.models import Count, Min
    from django.utils import timezone

    from escalations.delivery import RETRY_SCHEDULE
    from escalations.models import DeliveryAttempt, WebhookDelivery

    pending = WebhookDelivery.objects.filter(state=WebhookDelivery.State.PENDING)
    count = 20 if quick else 100
    receiver = Receiver()  # not listening yet: connection refused
    people = people_create(reviewers=2, callback_url=receiver.url)
    receiver.secret = integration_secret()
    case_ids = cases_ingest(count, prefix="rd")

    with Stack() as stack:
        stack.worker("rd-worker", concurrency=4)
        sweeper(stack, interval=2.0, name="rd-sweeper")
        for n, case_id in enumerate(case_ids):
            case_approve(case_id, people.reviewers[n % 2])
        first_failed = wait_until(
            lambda: (
                not pending.filter(attempts__lt=1).exists()
                and DeliveryAttempt.objects.count() >= count
            ),
            timeout=60,
        )
        receiver.status = 503
        receiver.up()
        second_failed = wait_until(
            lambda: DeliveryAttempt.objects.filter(number=2).count() >= count,
            timeout=60,
        )
        # Backed off: nothing is due for minutes, and the sweep must leave the rows alone.
        attempts_then = DeliveryAttempt.objects.count()
        time.sleep(6)
        early = DeliveryAttempt.objects.count() - attempts_then
        soonest = pending.aggregate(m=Min("next_attempt_at"))["m"]
        backoff = (soonest - timezone.now()).total_seconds() if soonest else float("nan")
        errors = dict(
            DeliveryAttempt.objects.values_list("number")
            .annotate(n=Count("id"))
            .values_list("number", "n")
        )
        refused = DeliveryAttempt.objects.filter(number=1, status_code__isnull=True).count()
        unavailable = DeliveryAttempt.objects.filter(number=2, status_code=503).count()

        receiver.status = 204
        moved_at = time.monotonic()
        # The drill shortcut: five minutes pass.
        moved = pending.update(next_attempt_at=timezone.now())
        done = wait_until(all_delivered(receiver), timeout=60, interval=0.25)
        recovered = max(item.at for item in receiver.snapshot()) - moved_at if done else None
        wait_until(lambda: not pending.exists(), timeout=15)

    receiver.down()
    check = delivery_check(receiver)
    ok = (
        first_failed
        and second_failed
        and early == 0
        and done
        and check.ok
        and check.rows_delivered == check.rows
    )
    report.table(
        "Drill: webhook receiver down, then back",
        HEADERS,
        [
            [
                "receiver_down",
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
            f"attempt 1 refused (connection refused): {refused} of {count}; attempt 2 "
            f"answered 503: {unavailable} of {count} (the others' 5 s retry came before the "
            f"receiver listened, refused again); attempts by number: {errors}",
            f"after two failures the soonest next attempt was {backoff:.0f} s away "
            f"(schedule: {RETRY_SCHEDULE[0].total_seconds():.0f} s, then "
            f"{RETRY_SCHEDULE[1].total_seconds():.0f} s); attempts made early while the "
            f"sweep ran every 2 s for 6 s: {early}",
            f"then the receiver answered 204 and the clock was moved: {moved} rows made due "
            "in the database (drill shortcut for the 5-minute backoff)",
            "time to recover: from the clock move to the last webhook the receiver got "
            "(production: up to the 30 s beat period more)",
            f"signatures verified: {check.received - check.unverified} of {check.received}; "
            f"most attempts per row: {check.max_attempts}",
        ]
        + ([f"LOST: cases {check.lost[:20]}"] if check.lost else []),
    )
    if not ok:
        raise DrillFailed(
            f"receiver_down: {len(check.lost)} lost, {early} early attempts, "
            f"{check.rows_delivered}/{check.rows} rows delivered"
        )
