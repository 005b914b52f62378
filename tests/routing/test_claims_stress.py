"""Claims under load, on PostgreSQL, from separate processes (DESIGN §5: claims are
race-free on every path; nobody exceeds capacity).

32 processes work a queue of a few thousand cases for a few seconds: routers offering
(`assignment_offer`, `assignment_run`), reviewers taking from the queue and accepting
offers (`escalation_accept`) and deciding what they hold (`escalation_decide`), and
supervisors reassigning (`escalation_reassign`); expirers moving lapsed offers on
(`assignment_expire_offers`) join once that stops deadlocking (the xfail tests at the end).
Each catches the refusals a person would be shown. Then the
audit trail is replayed in commit order (its appends are serialised, so `seq` is commit
order): no case is claimed while someone else holds it, nobody ever holds more than their
capacity, and the end state matches the rows.
"""

from __future__ import annotations

import multiprocessing
import random
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from datetime import time as clock
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from escalations.audit import Actor, audit_record, audit_verify, audited_transaction
from escalations.decisions import DecisionInput, escalation_accept, escalation_decide
from escalations.errors import Conflict, Forbidden, InvalidInput
from escalations.models import (
    AuditEvent,
    Customer,
    Decision,
    Escalation,
    Instruction,
    Integration,
    Level,
    Status,
    TaskType,
    Verb,
)
from escalations.schemas import HandoffIn
from escalations.services import escalation_ingest
from routing.assignment import (
    HELD,
    CapacityFull,
    assignment_expire_offers,
    assignment_offer,
    assignment_run,
    lock_capacity,
)
from routing.models import Presence, ReviewerProfile, ReviewerSkill, Shift, Skill
from routing.services import escalation_reassign
from tests.people import case_package, make_user
from tests.routing import claimer_process

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

CASES = 3_000
REVIEWERS = 40
SUPERVISORS = 3
# Expirers move lapsed offers on while everyone else claims (they once deadlocked against
# the audit lock; the tests at the end reproduce that step by step).
EXPIRERS = 3
ROLES = ["router"] * 11 + ["reviewer"] * 18 + ["supervisor"] * 3 + ["expirer"] * EXPIRERS
SECONDS = 6.0  # of concurrent work, after every process has started
ACCEPT_SECONDS = 2  # the offer window in the claimers, so offers do lapse during the run
# What a person is told when they lose a race or may not act (StaleCase is a Conflict);
# anything else is a failure. CapacityFull should reach nobody: the services turn it into
# a Conflict, so it is counted apart to show if it ever leaks.
REFUSALS = (Conflict, Forbidden, CapacityFull)
SEED = 20250602


# --- The claimers (run in the child processes) ------------------------------------------------


def _queue_head(limit: int = 32) -> list[tuple[int, int]]:
    """(id, version) of the first queued cases: where everyone competes."""
    return list(
        Escalation.objects.filter(status=Status.QUEUED).values_list("id", "version")[:limit]
    )


def _route(rng: random.Random, people: list[User], supervisors: list[User]) -> str:
    if rng.random() < 0.5:
        return "run offered some" if assignment_run(limit=8) else "run offered none"
    head = _queue_head()
    if not head:
        return "idle"
    offered = assignment_offer(escalation_id=rng.choice(head)[0])
    return "offered" if offered is not None else "offer found nobody"


def _review(rng: random.Random, people: list[User], supervisors: list[User]) -> str:
    user = rng.choice(people)
    mine = list(
        Escalation.objects.filter(assignee=user, status__in=HELD).values_list(
            "id", "status", "version"
        )
    )
    in_review = [(pk, version) for pk, status, version in mine if status == Status.IN_REVIEW]
    offered = [(pk, version) for pk, status, version in mine if status == Status.ASSIGNED]
    roll = rng.random()
    if in_review and roll < 0.45:
        pk, version = rng.choice(in_review)
        if rng.random() < 0.85:
            data = DecisionInput(verb="approve", version=version)
        else:
            data = DecisionInput(
                verb="escalate",
                version=version,
                note="A second pair of eyes, please.",
                escalate_to_supervisor=True,
            )
        escalation_decide(escalation_id=pk, reviewer=user, data=data)
        return f"decided {data.verb}"
    if offered and roll < 0.8:
        pk, version = rng.choice(offered)
        escalation_accept(escalation_id=pk, reviewer=user, version=version)
        return "accepted an offer"
    head = _queue_head()
    if not head:
        return "idle"
    pk, version = rng.choice(head)
    escalation_accept(escalation_id=pk, reviewer=user, version=version)
    return "took from the queue"


def _supervise(rng: random.Random, people: list[User], supervisors: list[User]) -> str:
    held = list(
        Escalation.objects.filter(status__in=HELD).order_by("?").values_list("id", "version")[:1]
    )
    if not held:
        return "idle"
    pk, version = held[0]
    to_user = None if rng.random() < 0.2 else rng.choice(people)
    escalation_reassign(
        escalation_id=pk,
        supervisor=rng.choice(supervisors),
        to_user=to_user,
        reason="Balancing the load.",
        version=version,
    )
    return "reassigned to the queue" if to_user is None else "reassigned"


def _expire(rng: random.Random, people: list[User], supervisors: list[User]) -> str:
    moved = assignment_expire_offers()
    time.sleep(0.05)  # a periodic task, not a busy loop
    return "expired some" if moved else "expired none"


ACTIONS: dict[str, Callable[[random.Random, list[User], list[User]], str]] = {
    "router": _route,
    "reviewer": _review,
    "supervisor": _supervise,
    "expirer": _expire,
}


def claimer(*, role: str, seed: int, seconds: float) -> dict[str, Any]:
    """Act as `role` for `seconds`; count outcomes and refusals, keep anything unexpected."""
    from routing import tasks

    # The routers run the assignment themselves; the run a decision or a reassignment
    # schedules (eager in tests) would turn every reviewer and supervisor into one too.
    tasks.assign_queued.delay = lambda *args, **kwargs: None  # type: ignore[method-assign]
    rng = random.Random(seed)
    people = list(User.objects.filter(reviewer_profile__isnull=False))
    supervisors = list(User.objects.filter(username__startswith="sup-"))
    counts: Counter[str] = Counter()
    errors: list[str] = []
    act = ACTIONS[role]
    stop = time.monotonic() + seconds
    while time.monotonic() < stop:
        try:
            counts[act(rng, people, supervisors)] += 1
        except REFUSALS as refusal:
            counts[f"refused: {type(refusal).__name__}"] += 1
        except InvalidInput as invalid:
            errors.append(f"{role}: {invalid.describe()}")
        except Exception as error:  # a deadlock, a constraint, a bug: report, keep going
            errors.append(f"{role}: {type(error).__name__}: {error}")
    return {"role": role, "seed": seed, "counts": dict(counts), "errors": errors}


# --- Setting the scene --------------------------------------------------------------------------


def _roster(rng: random.Random, now: datetime) -> dict[str, int]:
    """REVIEWERS people online and on shift all week; their capacities by username."""
    skills = {
        slug: Skill.objects.create(slug=slug, name=slug.title()) for slug in ("refunds", "billing")
    }
    capacities = {}
    for n in range(REVIEWERS):
        user = make_user(f"rev-{n:02d}", "reviewer")
        profile = ReviewerProfile.objects.create(
            user=user,
            capacity=rng.randint(3, 5),
            languages=rng.choice([[], ["en"], ["en", "de"]]),
            presence=Presence.ONLINE,
            last_seen_at=now + timedelta(days=1),  # their consoles keep beating throughout
        )
        capacities[user.username] = profile.capacity
        ReviewerSkill.objects.bulk_create(
            ReviewerSkill(profile=profile, skill=skill)
            for slug, skill in skills.items()
            if rng.random() < {"refunds": 0.7, "billing": 0.4}[slug]
        )
        Shift.objects.bulk_create(
            Shift(profile=profile, weekday=day, starts=starts, ends=ends)
            for day in range(7)
            for starts, ends in ((clock(0), clock(12)), (clock(12), clock(0)))
        )
    for n in range(SUPERVISORS):
        make_user(f"sup-{n}", "supervisor")
    return capacities


def _queue(
    rng: random.Random, integration: Integration, task_type: TaskType, now: datetime
) -> None:
    customers = Customer.objects.bulk_create(
        Customer(integration=integration, external_id=f"stress-cust-{n}") for n in range(300)
    )
    cases = []
    for n in range(CASES):
        case = Escalation(
            integration=integration,
            external_id=f"stress-{n}",
            package_sha256=f"{n:064x}",
            package={},
            task_type=task_type,
            task_type_version=task_type.version,
            customer=rng.choice(customers),
            summary=f"Stress case {n}.",
            reason="Load test.",
            confidence=0.5,
            status=Status.QUEUED,
            level=Level.DRAFT_REVIEW,
            priority=rng.choice([2, 3, 3, 4]),
            instruction=Instruction.WAIT,
            language=rng.choice(["", "en", "en", "de"]),
            sla_accept_due=now + timedelta(minutes=5),
            sla_resolve_due=now + timedelta(minutes=rng.randint(10, 240)),
        )
        case.set_required_skills(rng.choice([[], [], [], ["refunds"], ["refunds"], ["billing"]]))
        cases.append(case)
    Escalation.objects.bulk_create(cases, batch_size=1_000)


# --- Checking the outcome -----------------------------------------------------------------------


def replay_claims(capacities: dict[str, int]) -> tuple[list[str], dict[str, int], dict[int, Any]]:
    """Replay every claim and release from the audit trail, in commit order.

    Returns the problems found, each person's peak load, and each case's final holder."""
    holder: dict[int, str | None] = defaultdict(lambda: None)
    load: Counter[str] = Counter()
    peak: Counter[str] = Counter()
    problems: list[str] = []

    def move(case_id: int, to: str | None) -> None:
        before = holder[case_id]
        if before is not None:
            load[before] -= 1
        if to is not None:
            load[to] += 1
            peak[to] = max(peak[to], load[to])
        holder[case_id] = to

    events = (
        AuditEvent.objects.filter(escalation__isnull=False)
        .order_by("seq")
        .values_list("seq", "escalation_id", "verb", "actor_label", "data")
    )
    for seq, case_id, verb, actor, data in events.iterator(chunk_size=5_000):
        current = holder[case_id]
        where = f"event {seq} on case {case_id}"
        if verb == "escalation.offered":
            if current is not None:
                problems.append(f"{where}: offered to {data['to']} while {current} held it")
            move(case_id, data["to"])
        elif verb == "escalation.accepted":
            if data["from"] == Status.QUEUED and current is not None:
                problems.append(f"{where}: {actor} took it from the queue while {current} held it")
            if data["from"] == Status.ASSIGNED and current != actor:
                problems.append(f"{where}: {actor} accepted an offer made to {current}")
            move(case_id, actor)
        elif verb in ("escalation.offer_expired", "escalation.reassigned"):
            if current != data["from"]:
                problems.append(f"{where}: {verb} from {data['from']} but {current} held it")
            move(case_id, data.get("to"))
        elif verb.removeprefix("escalation.") in Verb.values:  # a decision: final or escalate
            if current not in (None, actor):
                problems.append(f"{where}: {actor} decided while {current} held it")
            move(case_id, None)
    for person, most in peak.items():
        if most > capacities.get(person, most):
            problems.append(f"{person} held {most} cases at once; capacity {capacities[person]}")
    return problems, dict(peak), dict(holder)


def _over_capacity() -> list[tuple[Any, ...]]:
    cases, profiles = Escalation._meta.db_table, ReviewerProfile._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT e.assignee_id, COUNT(*), p.capacity
            FROM {cases} e JOIN {profiles} p ON p.user_id = e.assignee_id
            WHERE e.status IN (%s, %s)
            GROUP BY e.assignee_id, p.capacity
            HAVING COUNT(*) > p.capacity
            """,
            list(HELD),
        )
        return cursor.fetchall()


def _finals_per_case() -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """(cases with more than one final decision, resolved cases without exactly one)."""
    cases, decisions = Escalation._meta.db_table, Decision._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT escalation_id, COUNT(*) FROM {decisions} WHERE final "
            "GROUP BY escalation_id HAVING COUNT(*) > 1"
        )
        doubled = cursor.fetchall()
        cursor.execute(
            f"""
            SELECT e.id, COUNT(d.id) FROM {cases} e
            LEFT JOIN {decisions} d ON d.escalation_id = e.id AND d.final
            WHERE e.status = %s GROUP BY e.id HAVING COUNT(d.id) <> 1
            """,
            [Status.RESOLVED],
        )
        return doubled, cursor.fetchall()


def _held_without_holder() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT COUNT(*) FROM {Escalation._meta.db_table} "
            "WHERE (status IN (%s, %s)) <> (assignee_id IS NOT NULL) AND status <> %s",
            [*HELD, Status.RESOLVED],
        )
        return int(cursor.fetchone()[0])


# --- The test -----------------------------------------------------------------------------------


def test_concurrent_claimers_never_double_hold_or_exceed_capacity(
    agent: Integration, review_type: TaskType, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(SEED)
    started = time.perf_counter()
    now = timezone.now()
    capacities = _roster(rng, now)
    _queue(rng, agent, review_type, now)
    setup_seconds = time.perf_counter() - started

    # The fork server inherits these when it starts, and sets Django up once for all.
    monkeypatch.setenv(claimer_process.DATABASE_ENV, connection.settings_dict["NAME"])
    monkeypatch.setenv(claimer_process.ACCEPT_SECONDS_ENV, str(ACCEPT_SECONDS))
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([claimer_process.__name__])
    barrier = context.Barrier(len(ROLES))
    results = context.Queue()
    processes = [
        context.Process(
            target=claimer_process.main,
            kwargs={
                "role": role,
                "seed": SEED + index,
                "seconds": SECONDS,
                "database_name": connection.settings_dict["NAME"],
                "accept_seconds": ACCEPT_SECONDS,
                "barrier": barrier,
                "results": results,
            },
            daemon=True,
        )
        for index, role in enumerate(ROLES)
    ]
    spawned = time.perf_counter()
    for process in processes:
        process.start()
    reports = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0, f"a claimer process exited with {process.exitcode}"
    run_seconds = time.perf_counter() - spawned

    errors = [error for report in reports for error in report["errors"]]
    counts: Counter[str] = Counter()
    by_role: dict[str, Counter[str]] = defaultdict(Counter)
    for report in reports:
        counts.update(report["counts"])
        by_role[report["role"]].update(report["counts"])

    checked = time.perf_counter()
    problems, peaks, holders = replay_claims(capacities)
    over = _over_capacity()
    doubled, unresolved = _finals_per_case()
    mismatched = [
        (case_id, status, username, holders.get(case_id))
        for case_id, status, username in Escalation.objects.values_list(
            "id", "status", "assignee__username"
        )
        if holders.get(case_id) != (username if status in HELD else None)
    ]
    events, first_break = audit_verify()
    check_seconds = time.perf_counter() - checked

    decided = sum(n for outcome, n in counts.items() if outcome.startswith("decided"))
    actions = sum(counts.values())
    print(
        f"\nclaims stress: {len(ROLES)} processes, {CASES} cases, {REVIEWERS} reviewers; "
        f"setup {setup_seconds:.1f}s, start+run {run_seconds:.1f}s ({SECONDS:.0f}s of work), "
        f"checks {check_seconds:.1f}s\n"
        f"  {actions} actions = {actions / SECONDS:.0f}/s; {decided} decisions = "
        f"{decided / SECONDS:.0f}/s; {events} audit events; "
        f"{sum(peaks.get(p) == c for p, c in capacities.items())} of {REVIEWERS} reviewers were "
        "full at some moment"
    )
    for role, outcomes in sorted(by_role.items()):
        print(f"  {role}: " + ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())))
    for error in errors[:20]:
        print("  ERROR", error)

    assert errors == [], f"{len(errors)} unexpected errors, first: {errors[0]}"
    assert problems == [], problems[:10]
    assert over == [], f"reviewers above capacity (assignee, held, capacity): {over}"
    assert doubled == [] and unresolved == [], (doubled, unresolved)
    assert _held_without_holder() == 0
    assert mismatched == [], f"audit replay and rows disagree: {mismatched[:10]}"
    assert first_break is None, first_break
    # Work was done on every path, so the checks above checked something.
    assert decided > 0 and counts["took from the queue"] > 0 and counts["accepted an offer"] > 0
    assert counts["offered"] > 0 and counts["reassigned"] > 0
    assert counts["expired some"] > 0 or not EXPIRERS


# --- Deadlocks with the audit trail's lock, reproduced step by step ---------------------------
#
# Every path that gives a person a case locks the case, then the person's profile (capacity),
# then appends to the audit trail, whose advisory lock is held to the commit. A transaction
# that appends to the audit trail first and locks a profile afterwards closes a cycle with
# any of them: it holds the audit lock and waits for the profile; they hold the profile and
# wait for the audit lock. PostgreSQL kills one after deadlock_timeout. These tests line
# the two up: a transaction holds a reviewer's capacity lock, the path under test blocks on
# it, and the first then appends to the trail, as escalation_accept, assignment_offer and
# escalation_reassign all do next.


def _holding_capacity_lock_while(
    user: User, blocked_call: Callable[[], Any]
) -> list[BaseException]:
    locked, go_on = threading.Event(), threading.Event()
    failures: list[BaseException] = []

    def holder() -> None:
        try:
            # As every service that locks a profile does: the audit lock first, then rows.
            with audited_transaction():
                lock_capacity(user)
                locked.set()
                go_on.wait(timeout=10)
                audit_record(actor=Actor.person(user), verb="escalation.accepted", data={})
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    def other() -> None:
        try:
            locked.wait(timeout=10)
            blocked_call()
        except BaseException as error:
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=holder), threading.Thread(target=other)]
    for thread in threads:
        thread.start()
    locked.wait(timeout=10)
    give_up = time.monotonic() + 3
    with connection.cursor() as cursor:  # until the other one waits for a lock (or never does)
        while time.monotonic() < give_up:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                break
            time.sleep(0.02)
    go_on.set()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "hung"
    return failures


def _always_on_duty(user: User) -> None:
    profile = ReviewerProfile.objects.create(
        user=user,
        presence=Presence.ONLINE,
        last_seen_at=timezone.now() + timedelta(days=1),
    )
    Shift.objects.bulk_create(
        Shift(profile=profile, weekday=day, starts=starts, ends=ends)
        for day in range(7)
        for starts, ends in ((clock(0), clock(12)), (clock(12), clock(0)))
    )


def test_expiring_an_offer_while_the_next_person_is_locked_does_not_deadlock(
    make_case: Callable[..., Escalation], reviewer: User, reviewer2: User
) -> None:
    _always_on_duty(reviewer)
    _always_on_duty(reviewer2)
    case = make_case()
    now = timezone.now()
    Escalation.objects.filter(pk=case.pk).update(
        status=Status.ASSIGNED, assignee=reviewer, offered_at=now - timedelta(hours=1)
    )

    failures = _holding_capacity_lock_while(reviewer2, lambda: assignment_expire_offers(now=now))

    assert failures == []
    case.refresh_from_db()
    assert case.assignee_id == reviewer2.pk


def test_a_new_case_offered_to_someone_being_locked_does_not_deadlock(
    agent: Integration, review_type: TaskType, reviewer: User
) -> None:
    _always_on_duty(reviewer)
    package = HandoffIn.model_validate(case_package(1))

    failures = _holding_capacity_lock_while(
        reviewer, lambda: escalation_ingest(integration=agent, package=package)
    )

    assert failures == []
    assert Escalation.objects.get().assignee_id == reviewer.pk
