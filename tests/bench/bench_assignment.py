"""Assignment: claims per second with 32 concurrent claimers on PostgreSQL, the
double-assignment check, against the bare claim SQL with the same concurrency.

A claim is routing's: `assignment_offer` locks a queued case (FOR UPDATE SKIP LOCKED), picks
the best eligible reviewer, locks their profile and counts their load under that lock,
assigns the case and appends the audit event, in one audited transaction (which takes the
trail's global advisory lock first). 32 processes, forked from the runner after Django is
set up, each with its own connection, walk the queue head as `assignment_run` does (each
starting at a different place in it) until nobody has capacity left.

The limit is the same claim as bare SQL from 32 psycopg connections: take the queue head
with SELECT … FOR UPDATE SKIP LOCKED, lock a reviewer's profile, count their load, UPDATE
the case. Run once as is and once with the audit trail's advisory lock taken first, as
every Baton write does, so the lock's own cost shows.

Then the checks: no case offered twice (audit trail, and every claimer's own record for the
bare runs), nobody above capacity (the rows), the audit chain still verifies.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.bench import harness

CLAIMERS = 32
REVIEWERS = 32
AUDIT_LOCK_KEY = 0x6261746F6E  # escalations.audit._LOCK_KEY


@dataclass
class Result:
    claims: list[tuple[int, int]] = field(default_factory=list)  # (case, reviewer user id)
    attempts: int = 0
    latencies: list[float] = field(default_factory=list)  # per successful claim
    first: float = 0.0
    last: float = 0.0
    error: str = ""


# --- claimers (run in forked children) --------------------------------------------------------


def _service_claimer(index: int, deadline: float) -> Result:
    from django.utils import timezone

    from escalations.models import Escalation, Status
    from routing.assignment import _roster, assignment_offer

    result = Result()
    rng = random.Random(index)
    roster = _roster(online_at=timezone.now())  # once a run, as assignment_run reads it
    misses = 0
    while time.monotonic() < deadline and misses < 8:  # 8 in a row: everyone is full
        # Baton has no "claim the head" call: a claimer reads the queue head afresh and
        # offers one of its cases, as 32 routers sharing one queue would.
        head = list(
            Escalation.objects.filter(status=Status.QUEUED)
            .order_by("priority", "sla_resolve_due", "id")
            .values_list("id", flat=True)[:CLAIMERS]
        )
        if not head:
            break
        case_id = rng.choice(head)
        result.attempts += 1
        started = time.monotonic()
        profile = assignment_offer(escalation_id=case_id, roster=roster)
        if profile is None:  # taken meanwhile, or nobody has room
            misses += 1
            continue
        done = time.monotonic()
        misses = 0
        result.latencies.append(done - started)
        result.claims.append((case_id, profile.user_id))
        result.first = result.first or started
        result.last = done
    return result


BARE_HEAD = """
    SELECT id FROM escalations_escalation WHERE status = 'queued'
    ORDER BY priority, sla_resolve_due, id LIMIT 1 FOR UPDATE SKIP LOCKED
"""
BARE_PROFILE = "SELECT capacity FROM routing_reviewerprofile WHERE user_id = %s FOR UPDATE"
BARE_LOAD = """
    SELECT count(*) FROM escalations_escalation
    WHERE assignee_id = %s AND status IN ('assigned', 'in_review')
"""
BARE_ASSIGN = """
    UPDATE escalations_escalation
    SET status = 'assigned', assignee_id = %s, offered_at = now(), offer_count = offer_count + 1,
        version = version + 1, updated_at = now()
    WHERE id = %s
"""


def _bare_claimer(index: int, deadline: float, reviewers: list[int], audit_lock: bool) -> Result:
    import psycopg

    result = Result()
    rng = random.Random(index)
    full: set[int] = set()
    with psycopg.connect(harness.database_url()) as conn:
        while time.monotonic() < deadline and len(full) < len(reviewers):
            result.attempts += 1
            started = time.monotonic()
            with conn.transaction():
                if audit_lock:
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", [AUDIT_LOCK_KEY])
                row = conn.execute(BARE_HEAD).fetchone()
                if row is None:
                    break
                case_id = row[0]
                # Someone with room: the bare stand-in for "the best eligible reviewer".
                user_id = rng.choice([r for r in reviewers if r not in full])
                (capacity,) = conn.execute(BARE_PROFILE, [user_id]).fetchone() or (0,)
                (held,) = conn.execute(BARE_LOAD, [user_id]).fetchone() or (0,)
                if held >= capacity:
                    full.add(user_id)
                    continue  # the transaction ends; the case stays queued
                conn.execute(BARE_ASSIGN, [user_id, case_id])
            done = time.monotonic()
            result.latencies.append(done - started)
            result.claims.append((case_id, user_id))
            result.first = result.first or started
            result.last = done
    return result


def _child(kind: str, index: int, barrier: Any, queue: Any, args: tuple[Any, ...]) -> None:
    import traceback

    from django.db import connections

    result = Result()
    try:
        barrier.wait(timeout=120)
        deadline = time.monotonic() + args[0]
        if kind == "service":
            result = _service_claimer(index, deadline)
        else:
            result = _bare_claimer(index, deadline, *args[1:])
    except BaseException:
        result.error = traceback.format_exc()
    finally:
        connections.close_all()
        queue.put(result)


def _run_claimers(kind: str, *args: Any) -> tuple[list[Result], float]:
    """Fork CLAIMERS processes, release them together, wait for all; (results, seconds)."""
    from django.db import connections

    connections.close_all()  # a connection must never be shared by forks
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(CLAIMERS + 1)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(kind, i, barrier, queue, args)) for i in range(CLAIMERS)
    ]
    for proc in procs:
        proc.start()
    barrier.wait(timeout=120)
    started = time.monotonic()
    results = [queue.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
    errors = [r.error for r in results if r.error]
    if errors:
        raise RuntimeError(f"{len(errors)} claimer(s) failed:\n{errors[0]}")
    last = max((r.last for r in results if r.claims), default=started)
    return results, last - started


# --- checks ------------------------------------------------------------------------------------


def _over_capacity() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT count(*) FROM (
                SELECT e.assignee_id FROM escalations_escalation e
                JOIN routing_reviewerprofile p ON p.user_id = e.assignee_id
                WHERE e.status IN ('assigned', 'in_review')
                GROUP BY e.assignee_id, p.capacity HAVING count(*) > p.capacity
            ) AS over
            """
        )
        return int(cursor.fetchone()[0])


def _audit_double_offers(case_ids: list[int]) -> tuple[int, int]:
    """(cases offered more than once, offered events) for these cases in the audit trail."""
    from django.db.models import Count

    from escalations.models import AuditEvent

    offered = (
        AuditEvent.objects.filter(verb="escalation.offered", escalation_id__in=case_ids)
        .values("escalation_id")
        .annotate(n=Count("id"))
    )
    counts = [row["n"] for row in offered]
    return sum(1 for n in counts if n > 1), sum(counts)


def _requeue(case_ids: list[int]) -> None:
    """Put the run's cases back in the queue for the next claimers (bench data only)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE escalations_escalation SET status = 'queued', assignee_id = NULL,"
            " offered_at = NULL WHERE id = ANY(%s)",
            [case_ids],
        )


def _row(name: str, results: list[Result], seconds: float, checks: list[str]) -> list[Any]:
    claims = [c for r in results for c in r.claims]
    latencies = [x for r in results for x in r.latencies]
    attempts = sum(r.attempts for r in results)
    doubles = sum(1 for n in Counter(case for case, _ in claims).values() if n > 1)
    return [
        name,
        len(claims),
        attempts,
        f"{seconds:.1f}",
        f"{len(claims) / seconds:.0f}" if seconds else "-",
        harness.ms(harness.percentile(latencies, 50)),
        harness.ms(harness.percentile(latencies, 95)),
        doubles,
        *checks,
    ]


def run(report: harness.Report, *, quick: bool) -> None:
    from escalations.audit import audit_verify
    from escalations.models import Escalation, Status
    from metrics.management.commands.bench_metrics import generate_cases
    from routing.services import presence_seen

    cases = 1_200 if quick else 4_000
    capacity = 12 if quick else 40  # 32 people: 384 / 1,280 slots, fewer than the cases
    budget = 60.0 if quick else 120.0  # seconds a run may take at most
    people = harness.people_create(reviewers=REVIEWERS, capacity=capacity)
    generate_cases(cases, open_share=0.7, write=lambda line: print(" ", line, flush=True))
    queued = list(Escalation.objects.filter(status=Status.QUEUED).values_list("id", flat=True))
    reviewer_ids = [u.pk for u in people.reviewers]
    slots = capacity * REVIEWERS

    rows = []
    for user in people.reviewers:  # every console open: online for the next 90 s
        presence_seen(user=user)
    results, seconds = _run_claimers("service", budget)
    doubles, offered = _audit_double_offers(queued)
    over = _over_capacity()
    count, broken = audit_verify()
    rows.append(
        _row(
            "assignment_offer (Baton)",
            results,
            seconds,
            [doubles, over, "ok" if broken is None else f"BROKEN at {broken.seq}"],
        )
    )
    held = Escalation.objects.filter(id__in=queued, status=Status.ASSIGNED).count()
    service_claims = sum(len(r.claims) for r in results)

    for audit_lock in (False, True):
        _requeue(queued)
        results, seconds = _run_claimers("bare", budget, reviewer_ids, audit_lock)
        rows.append(
            _row(
                "bare SQL" + (" + audit advisory lock" if audit_lock else ""),
                results,
                seconds,
                ["-", _over_capacity(), "-"],
            )
        )

    service_rate = float(rows[0][4])
    report.table(
        f"Assignment: {CLAIMERS} concurrent claimers, {len(queued):,} queued cases, "
        f"{REVIEWERS} reviewers x capacity {capacity} = {slots:,} slots",
        [
            "claim",
            "claims",
            "attempts",
            "seconds",
            "claims/s",
            "p50 ms",
            "p95 ms",
            "cases claimed twice (claimers' record)",
            "twice (audit) / over capacity",
            "audit chain",
        ],
        [[*r[:8], f"{r[8]} / {r[9]}", r[10]] for r in rows],
        notes=[
            f"{CLAIMERS} processes forked from the runner, one PostgreSQL connection each, "
            "released together; seconds = from the release to the last successful claim.",
            f"Baton: {service_claims:,} claims, {offered:,} 'escalation.offered' audit "
            f"events, {held:,} cases held afterwards; audit chain of {count:,} events "
            "verified. Claims stop when every reviewer is at capacity.",
            "Bare SQL: head of the queue FOR UPDATE SKIP LOCKED, the reviewer's profile FOR "
            "UPDATE, their load counted, UPDATE; a random reviewer with room instead of "
            "Baton's choice (affinity, load, idle time), no audit event.",
            *(
                [
                    f"Bare/Baton: {float(rows[1][4]) / service_rate:.1f}x the claims a "
                    f"second; bare with the audit lock: "
                    f"{float(rows[2][4]) / service_rate:.1f}x."
                ]
                if service_rate
                else []
            ),
        ],
    )
