"""Service-level clocks (DESIGN §6): targets, the sweep's warnings and breaches, the live
alert to supervisors, and the admin where targets are set.

The sweep takes `now=`, so each test moves time by passing moments relative to a case's
own due times; nothing sleeps and no clock is patched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from console import rendering
from console.settings.base import CELERY_BEAT_SCHEDULE
from escalations.audit import Actor, audit_verify
from escalations.decisions import DecisionInput, escalation_accept, escalation_decide
from escalations.errors import Forbidden, InvalidInput
from escalations.models import AuditEvent, Escalation, Status
from routing.models import Skill, SlaTarget
from routing.services import escalation_reassign
from routing.sla import SweepResult, sla_dues, sla_sweep, sla_target, sla_target_update
from tests.console.test_consumers import connect, receive_until
from tests.people import make_user

SECOND = timedelta(seconds=1)


def set_target(priority: int, accept: int, resolve: int, share: float = 0.75) -> SlaTarget:
    target, _ = SlaTarget.objects.update_or_create(
        priority=priority,
        defaults={"accept_seconds": accept, "resolve_seconds": resolve, "warning_share": share},
    )
    return target


@pytest.fixture
def targets(db: None) -> None:
    """P3 (the test cases' band): 1000 s to accept, 4000 s to resolve, warn at half.
    P2 (where a breach raises them): 300 s and 2000 s."""
    set_target(3, 1000, 4000, share=0.5)
    set_target(2, 300, 2000, share=0.5)


def fresh(case: Escalation) -> Escalation:
    return Escalation.objects.get(pk=case.pk)


def events(verb: str, case: Escalation | None = None) -> list[AuditEvent]:
    found = AuditEvent.objects.filter(verb=verb)
    return list(found.filter(escalation=case) if case is not None else found)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --- Targets ---------------------------------------------------------------------------------


@pytest.mark.django_db
def test_dues_come_from_the_band_target_else_the_shipped_default() -> None:
    start = timezone.now()
    set_target(2, 300, 2000)
    assert sla_dues(priority=2, start=start) == (
        start + timedelta(seconds=300),
        start + timedelta(seconds=2000),
    )
    SlaTarget.objects.filter(priority=4).delete()
    default = settings.BATON_SLA_DEFAULTS[4]
    assert sla_dues(priority=4, start=start) == (
        start + timedelta(seconds=default["accept"]),
        start + timedelta(seconds=default["resolve"]),
    )
    assert sla_target(priority=4).warning_share == 0.75


def test_a_new_case_gets_its_band_dues_from_the_handoff(targets: None, make_case) -> None:
    case = make_case()
    assert case.priority == 3
    assert abs(case.sla_accept_due - case.created_at - timedelta(seconds=1000)) < SECOND
    assert abs(case.sla_resolve_due - case.created_at - timedelta(seconds=4000)) < SECOND


# --- Warnings --------------------------------------------------------------------------------


def test_the_warning_fires_once_when_the_share_of_the_target_has_passed(
    targets: None, make_case
) -> None:
    case = make_case()
    half_way = case.sla_accept_due - timedelta(seconds=500)  # 50% of the 1000 s target

    assert sla_sweep(now=half_way - SECOND).warned == []
    assert fresh(case).sla_warned_at is None

    result = sla_sweep(now=half_way)
    assert result.warned == [case.pk] and result.breached == []
    warned = fresh(case)
    assert warned.sla_warned_at == half_way
    assert (warned.priority, warned.version) == (3, case.version)  # a mark, not a change
    [event] = events("escalation.sla_warning", case)
    assert (event.actor_label, event.data["clock"], event.data["seconds_left"]) == (
        "sla",
        "accept",
        500,
    )

    assert sla_sweep(now=half_way + timedelta(seconds=100)).warned == []
    assert fresh(case).sla_warned_at == half_way
    assert len(events("escalation.sla_warning")) == 1


def test_the_resolve_clock_warns_an_accepted_case(targets: None, make_case, reviewer) -> None:
    case = make_case()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    half_way = case.sla_resolve_due - timedelta(seconds=2000)

    assert sla_sweep(now=half_way - SECOND).warned == []
    assert sla_sweep(now=half_way).warned == [case.pk]
    [event] = events("escalation.sla_warning", case)
    assert event.data["clock"] == "resolve"


# --- Breaches --------------------------------------------------------------------------------


def test_a_breach_fires_once_raises_the_priority_recomputes_the_dues_and_is_audited(
    targets: None, make_case
) -> None:
    case = make_case()
    late = case.sla_accept_due + timedelta(seconds=5)

    result = sla_sweep(now=late)

    assert result.breached == [case.pk] and result.warned == []
    breached = fresh(case)
    assert breached.sla_breached_at == late
    assert breached.priority == 2
    assert breached.version == case.version + 1
    # P2's clocks from the handoff: earlier than P3's, so they replace them.
    assert breached.sla_accept_due == breached.created_at + timedelta(seconds=300)
    assert breached.sla_resolve_due == breached.created_at + timedelta(seconds=2000)
    [event] = events("escalation.sla_breached", case)
    assert event.actor_label == "sla"
    assert event.data["clock"] == "accept"
    assert event.data["seconds_late"] == 5
    assert event.data["before"]["priority"] == 3 and event.data["after"]["priority"] == 2
    assert audit_verify()[1] is None

    # Much later every clock is past due: still one breach, nothing else moves.
    assert sla_sweep(now=late + timedelta(hours=5)) == sla_sweep(now=late + timedelta(hours=6))
    again = fresh(case)
    assert (again.sla_breached_at, again.priority, again.version) == (late, 2, case.version + 1)
    assert len(events("escalation.sla_breached")) == 1


def test_a_breach_never_moves_a_due_time_later(make_case) -> None:
    set_target(3, 1000, 4000)
    set_target(2, 5000, 9000)  # an odd policy: the higher band is slower
    case = make_case()
    sla_sweep(now=case.sla_accept_due + SECOND)
    breached = fresh(case)
    assert breached.priority == 2
    assert (breached.sla_accept_due, breached.sla_resolve_due) == (
        case.sla_accept_due,
        case.sla_resolve_due,
    )


def test_p1_stays_p1_when_it_breaches(make_case, hard_rules) -> None:
    case = make_case(transcript=[{"role": "customer", "text": "I can smell gas in the kitchen!"}])
    assert case.priority == 1
    sla_sweep(now=case.sla_resolve_due + SECOND)
    assert (fresh(case).priority, fresh(case).sla_breached_at is not None) == (1, True)


def test_the_resolve_clock_breaches_an_accepted_case(targets: None, make_case, reviewer) -> None:
    case = make_case()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    assert sla_sweep(now=case.sla_resolve_due - SECOND).breached == []
    assert sla_sweep(now=case.sla_resolve_due + timedelta(minutes=3)).breached == [case.pk]
    [event] = events("escalation.sla_breached", case)
    assert (event.data["clock"], event.data["seconds_late"]) == ("resolve", 180)


def test_a_sweep_run_twice_changes_nothing_the_second_time(targets: None, make_case) -> None:
    due_soon, overdue, calm = make_case(), make_case(), make_case()
    Escalation.objects.filter(pk=overdue.pk).update(
        sla_accept_due=overdue.created_at + timedelta(seconds=10)
    )
    Escalation.objects.filter(pk=calm.pk).update(
        sla_accept_due=calm.created_at + timedelta(hours=9),
        sla_resolve_due=calm.created_at + timedelta(hours=10),
    )
    now = due_soon.sla_accept_due - timedelta(seconds=100)

    first = sla_sweep(now=now)
    assert (first.warned, first.breached) == ([due_soon.pk], [overdue.pk])
    state = list(Escalation.objects.order_by("pk").values())
    audit_count = AuditEvent.objects.count()

    second = sla_sweep(now=now)
    assert (second.warned, second.breached) == ([], [])
    assert list(Escalation.objects.order_by("pk").values()) == state
    assert AuditEvent.objects.count() == audit_count


def test_a_quiet_sweep_reads_the_targets_and_the_due_cases_only(
    targets: None, make_case, django_assert_num_queries
) -> None:
    for _ in range(3):
        make_case()
    with django_assert_num_queries(2):
        assert sla_sweep() == SweepResult()


# --- Which cases run which clock -------------------------------------------------------------


def test_closed_cases_are_ignored(targets: None, make_case, reviewer, order_status_l1) -> None:
    resolved = make_case()
    escalation_decide(
        escalation_id=resolved.pk,
        reviewer=reviewer,
        data=DecisionInput(verb="approve", version=resolved.version),
    )
    auto = order_status_l1()
    assert (fresh(resolved).status, auto.status) == (Status.RESOLVED, Status.AUTO_RESOLVED)

    result = sla_sweep(now=resolved.sla_resolve_due + timedelta(days=3))

    assert (result.warned, result.breached) == ([], [])
    for case in (fresh(resolved), fresh(auto)):
        assert (case.sla_warned_at, case.sla_breached_at) == (None, None)


def test_an_accepted_case_no_longer_runs_the_accept_clock(
    targets: None, make_case, reviewer
) -> None:
    case = make_case()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    # Past the accept due, well before the resolve clock's warning margin.
    result = sla_sweep(now=case.sla_accept_due + timedelta(seconds=60))
    assert (result.warned, result.breached) == ([], [])


def test_a_case_accepted_once_and_moved_back_has_met_its_time_to_accept(
    targets: None, make_case, reviewer, supervisor
) -> None:
    case = make_case()
    accepted = escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    escalation_reassign(
        escalation_id=case.pk,
        supervisor=supervisor,
        to_user=None,
        reason="Ann went home",
        version=accepted.version,
    )
    assert fresh(case).status == Status.QUEUED and fresh(case).accepted_at is None
    result = sla_sweep(now=case.sla_accept_due + timedelta(seconds=60))
    assert (result.warned, result.breached) == ([], [])


# --- Interfaces ------------------------------------------------------------------------------


def test_the_sweep_is_a_beat_task(targets: None, make_case) -> None:
    from routing.tasks import sla_sweep as task

    assert task.name == "routing.sla_sweep"
    assert CELERY_BEAT_SCHEDULE["sla-sweep"]["task"] == "routing.sla_sweep"
    case = make_case()
    Escalation.objects.filter(pk=case.pk).update(sla_accept_due=case.created_at)
    assert task.delay().get() == {"warned": 0, "breached": 1}


def test_the_inbox_marks_warned_and_breached_rows(targets: None, make_case, supervisor) -> None:
    warned, breached, calm = make_case(), make_case(), make_case()
    Escalation.objects.filter(pk=breached.pk).update(sla_accept_due=breached.created_at)
    Escalation.objects.filter(pk=calm.pk).update(
        sla_accept_due=calm.created_at + timedelta(hours=9),
        sla_resolve_due=calm.created_at + timedelta(hours=10),
    )
    sla_sweep(now=warned.sla_accept_due - timedelta(seconds=100))

    body = client_for(supervisor).get("/?view=all").content.decode()

    def row(case: Escalation) -> str:
        start = body.index(f'id="case-row-{case.pk}"')
        return body[start : body.index(">", start)]

    assert "sla-warned" in row(warned) and "sla-breached" not in row(warned)
    assert "sla-breached" in row(breached)
    assert "sla-" not in row(calm)


def test_the_alert_toast_escapes_its_text() -> None:
    html = rendering.sla_alert(escalation_id=7, kind="breach", detail="<script>x()</script>")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert 'hx-swap-oob="beforeend"' in html and 'href="/cases/7/"' in html


# --- Live alert --------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_breach_alerts_a_supervisors_console_and_not_a_reviewers(
    supervisor, reviewer, make_case
) -> None:
    await database_sync_to_async(set_target)(3, 1000, 4000)
    case = await database_sync_to_async(make_case)(summary="Refund <b>now</b>")
    sue, ann = await connect(supervisor), await connect(reviewer)
    try:
        result = await database_sync_to_async(sla_sweep)(
            now=case.sla_accept_due + timedelta(minutes=4)
        )
        assert result.breached == [case.pk]
        frame = await receive_until(sue, "SLA breached")
        assert f'href="/cases/{case.pk}/"' in frame
        assert "4 min past its time to accept target; raised to P2" in frame
        assert await ann.receive_nothing(timeout=0.5)
    finally:
        await sue.disconnect()
        await ann.disconnect()


# --- Concurrent beats ------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_overlapping_sweeps_warn_and_breach_each_case_once(make_case) -> None:
    set_target(3, 1000, 4000, share=0.5)
    set_target(2, 300, 2000, share=0.5)
    cases = [make_case() for _ in range(6)]
    for case in cases[::2]:
        Escalation.objects.filter(pk=case.pk).update(sla_accept_due=case.created_at)
    now = cases[1].sla_accept_due - timedelta(seconds=100)
    barrier = threading.Barrier(4)
    results: list[Any] = []

    def sweep() -> None:
        try:
            barrier.wait(timeout=10)
            results.append(sla_sweep(now=now))
        except BaseException as exc:
            results.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(isinstance(r, BaseException) for r in results), results

    breached = sorted(pk for r in results for pk in r.breached)
    warned = sorted(pk for r in results for pk in r.warned)
    assert breached == sorted(c.pk for c in cases[::2])
    assert warned == sorted(c.pk for c in cases[1::2])
    assert len(events("escalation.sla_breached")) == 3
    assert len(events("escalation.sla_warning")) == 3
    assert all(fresh(c).priority == 2 for c in cases[::2])
    assert audit_verify()[1] is None


# --- Setting targets ---------------------------------------------------------------------------


def test_only_admins_change_targets_through_the_service(targets: None, supervisor) -> None:
    target = SlaTarget.objects.get(priority=3)
    with pytest.raises(Forbidden):
        sla_target_update(
            target=target,
            accept_seconds=600,
            resolve_seconds=4000,
            warning_share=0.5,
            actor=Actor.person(supervisor),
        )
    admin = make_user("adam", "admin")
    with pytest.raises(InvalidInput) as bad:
        sla_target_update(
            target=target,
            accept_seconds=5000,
            resolve_seconds=4000,
            warning_share=1.5,
            actor=Actor.person(admin),
        )
    assert {e["field"] for e in bad.value.errors} == {"resolve_seconds", "warning_share"}
    assert SlaTarget.objects.get(priority=3).version == 1


def admin_url(model: type, view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def staff(user: User) -> Client:
    user.is_staff = True
    user.save()
    return client_for(user)


def test_a_reviewer_cannot_touch_targets_or_the_roster_in_the_admin(targets: None, reviewer):
    target = SlaTarget.objects.get(priority=3)
    assert client_for(reviewer).get(admin_url(SlaTarget, "changelist")).status_code == 302
    client = staff(reviewer)
    form = {"accept_seconds": 60, "resolve_seconds": 4000, "warning_share": 0.5}
    assert client.get(admin_url(SlaTarget, "changelist")).status_code == 403
    assert client.post(admin_url(SlaTarget, "change", target.pk), form).status_code == 403
    assert client.get(admin_url(Skill, "changelist")).status_code == 403
    assert SlaTarget.objects.get(priority=3).accept_seconds == 1000


def test_a_supervisor_reads_targets_and_edits_the_roster(targets: None, supervisor) -> None:
    target = SlaTarget.objects.get(priority=3)
    client = staff(supervisor)
    assert client.get(admin_url(SlaTarget, "change", target.pk)).status_code == 200
    form = {"accept_seconds": 60, "resolve_seconds": 4000, "warning_share": 0.5}
    assert client.post(admin_url(SlaTarget, "change", target.pk), form).status_code == 403
    assert SlaTarget.objects.get(priority=3).accept_seconds == 1000

    response = client.post(admin_url(Skill, "add"), {"slug": "refunds", "name": "Refunds"})
    assert response.status_code == 302, response.content.decode()[:2000]
    [event] = events("roster.skill_added")
    assert (event.actor_label, event.data) == ("sue", {"slug": "refunds", "name": "Refunds"})


def test_an_admin_changes_a_target_and_it_is_versioned_and_audited(targets: None) -> None:
    admin = make_user("adam", "admin")
    client = staff(admin)
    target = SlaTarget.objects.get(priority=3)
    form = {"accept_seconds": 600, "resolve_seconds": 4000, "warning_share": 0.6}

    response = client.post(admin_url(SlaTarget, "change", target.pk), form)

    assert response.status_code == 302, response.content.decode()[:2000]
    target.refresh_from_db()
    assert (target.accept_seconds, target.warning_share, target.version) == (600, 0.6, 2)
    [event] = events("sla_target.changed")
    assert event.actor_label == "adam"
    assert event.data == {
        "priority": 3,
        "changed": {
            "accept_seconds": {"from": 1000, "to": 600},
            "warning_share": {"from": 0.5, "to": 0.6},
        },
        "version": 2,
    }
    assert audit_verify()[1] is None

    # Saving the same values again is no change: no new version, no audit event.
    assert client.post(admin_url(SlaTarget, "change", target.pk), form).status_code == 302
    assert SlaTarget.objects.get(pk=target.pk).version == 2
    assert len(events("sla_target.changed")) == 1

    # A target that breaks the rules is refused on the form, with the field named.
    bad = {"accept_seconds": 5000, "resolve_seconds": 4000, "warning_share": 0.6}
    page = client.post(admin_url(SlaTarget, "change", target.pk), bad)
    assert page.status_code == 200 and "must not be shorter" in page.content.decode()


@pytest.fixture
def order_status_l1(agent, make_case) -> Callable[[], Escalation]:
    """An autonomous (L1) case: closed on arrival, no clocks at all."""
    from tests.factories import TaskTypeFactory

    TaskTypeFactory(slug="order_status", name="Order status", level=1)
    return lambda: make_case(task_type="order_status", external_id="auto-1")
