"""Who takes a case (DESIGN §5): eligible people, the choice among them, race-free claims.

Eligible = online (a console heartbeat within PRESENCE_TTL), on shift, with every skill the
case needs and its language, below capacity. Among them: the one who handled this
customer before, then the least loaded, then the longest idle.

Every path that gives a person a case (automatic offer, taking from the queue, a
supervisor's reassignment) locks the case row first, then the person's profile row, and
counts their load under that lock: so no case is held twice and nobody exceeds capacity,
whatever runs at the same time. Queued cases are claimed with SKIP LOCKED so parallel
runs share the work instead of waiting on each other.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.models import User
from django.db.models import Count, Q
from django.utils import timezone

from console.events import publish_case_changed
from escalations.audit import Actor, audit_record, audited_transaction
from escalations.models import Escalation, Status
from routing.models import Presence, ReviewerProfile, Shift

HELD = (Status.ASSIGNED, Status.IN_REVIEW)
PRESENCE_TTL = timedelta(seconds=90)  # three missed heartbeats and a tab counts as gone


# --- Shifts and presence ---------------------------------------------------------------------


def _local(now: datetime) -> datetime:
    return now.astimezone(ZoneInfo(settings.TIME_ZONE))


def shift_covers(shift: Shift, moment: datetime) -> bool:
    """Whether `moment` falls in the weekly shift (overnight shifts run past midnight)."""
    local = _local(moment)
    t, day = local.time(), local.weekday()
    if shift.starts < shift.ends:
        return shift.weekday == day and shift.starts <= t < shift.ends
    # Overnight: from `starts` on its weekday to `ends` on the next day.
    return (shift.weekday == day and t >= shift.starts) or (
        (shift.weekday + 1) % 7 == day and t < shift.ends
    )


def on_shift(shifts: Iterable[Shift], moment: datetime) -> bool:
    return any(shift_covers(shift, moment) for shift in shifts)


def next_shift_start(shifts: Iterable[Shift], moment: datetime) -> datetime | None:
    """The next moment one of the shifts begins, within a week."""
    local = _local(moment)
    best: datetime | None = None
    for shift in shifts:
        days_ahead = (shift.weekday - local.weekday()) % 7
        start = local.replace(
            hour=shift.starts.hour, minute=shift.starts.minute, second=0, microsecond=0
        ) + timedelta(days=days_ahead)
        if start <= local:
            start += timedelta(days=7)
        if best is None or start < best:
            best = start
    return best


def is_online(profile: ReviewerProfile, now: datetime) -> bool:
    return (
        profile.presence == Presence.ONLINE
        and profile.last_seen_at is not None
        and profile.last_seen_at >= now - PRESENCE_TTL
    )


# --- Eligibility and choice ------------------------------------------------------------------


def loads(user_ids: Iterable[int]) -> dict[int, int]:
    rows = (
        Escalation.objects.filter(assignee_id__in=list(user_ids), status__in=HELD)
        .values("assignee_id")
        .annotate(n=Count("id"))
    )
    return {row["assignee_id"]: row["n"] for row in rows}


def qualified(profile: ReviewerProfile, case: Escalation) -> bool:
    """Has every skill the case needs, and speaks its language (no languages listed: any)."""
    skills = {rs.skill.slug for rs in profile.skills.all()}
    if not set(case.required_skills or ()) <= skills:
        return False
    return not (case.language and profile.languages and case.language not in profile.languages)


def _roster(*, online_at: datetime | None = None) -> list[ReviewerProfile]:
    """The roster with skills and shifts; with `online_at`, only the people online then."""
    people = (
        ReviewerProfile.objects.select_related("user")
        .prefetch_related("skills__skill", "shifts")
        .filter(user__is_active=True)
    )
    if online_at is not None:
        people = people.filter(presence=Presence.ONLINE, last_seen_at__gte=online_at - PRESENCE_TTL)
    return list(people)


def _handled_customer(case: Escalation) -> set[int]:
    if not case.customer_id:
        return set()
    earlier = (
        Escalation.objects.filter(customer_id=case.customer_id, assignee__isnull=False)
        .exclude(pk=case.pk)
        .values_list("assignee_id", flat=True)
    )
    return set(earlier)


@dataclass(frozen=True)
class Candidate:
    profile: ReviewerProfile
    load: int
    affinity: bool


def eligible_reviewers(
    case: Escalation,
    *,
    now: datetime | None = None,
    exclude: Iterable[int] = (),
    roster: list[ReviewerProfile] | None = None,
) -> list[Candidate]:
    """Everyone who may take the case now, best first."""
    now = now or timezone.now()
    excluded = set(exclude)
    people = [
        p
        for p in (_roster() if roster is None else roster)
        if p.user_id not in excluded
        and is_online(p, now)
        and on_shift(p.shifts.all(), now)
        and qualified(p, case)
    ]
    if not people:
        return []
    held = loads(p.user_id for p in people)
    affinity = _handled_customer(case)
    candidates = [
        Candidate(profile=p, load=held.get(p.user_id, 0), affinity=p.user_id in affinity)
        for p in people
        if held.get(p.user_id, 0) < p.capacity
    ]
    never = datetime.min.replace(tzinfo=now.tzinfo)
    candidates.sort(
        key=lambda c: (
            not c.affinity,
            c.load / c.profile.capacity,
            c.profile.last_assigned_at or never,
            c.profile.user_id,
        )
    )
    return candidates


# --- Claims ----------------------------------------------------------------------------------


class CapacityFull(Exception):
    """The person holds as many cases as their capacity allows."""


def lock_capacity(user: User | int) -> ReviewerProfile | None:
    """Lock the person's profile (the capacity lock) and refuse when they are full.
    A user without a roster profile has no capacity limit (e.g. a supervisor)."""
    user_id = user if isinstance(user, int) else user.pk
    # OF self: the profile's default ordering joins auth_user, and a plain FOR UPDATE would
    # lock the user row too, blocking every foreign-key check on it (a decision, an audit
    # event) behind this lock: a deadlock with the audit trail's advisory lock.
    profile = (
        ReviewerProfile.objects.select_for_update(of=("self",)).filter(user_id=user_id).first()
    )
    if profile is None:
        return None
    held = Escalation.objects.filter(assignee_id=user_id, status__in=HELD).count()
    if held >= profile.capacity:
        raise CapacityFull(f"{profile} already holds {held} of {profile.capacity} cases.")
    return profile


def _offer_locked(
    case: Escalation, *, now: datetime, roster: list[ReviewerProfile] | None = None
) -> ReviewerProfile | None:
    """Offer a locked, queued case to the best eligible person; None if nobody can take it."""
    candidates = eligible_reviewers(case, now=now, exclude=case.declined_by or (), roster=roster)
    for candidate in candidates:
        try:
            profile = lock_capacity(candidate.profile.user_id)
        except CapacityFull:
            continue  # filled up since we looked; try the next person
        assert profile is not None
        case.status = Status.ASSIGNED
        case.assignee = candidate.profile.user  # the roster's user: what the agent is told
        case.offered_at = now
        case.offer_count += 1
        case.version += 1
        case.save(
            update_fields=[
                "status",
                "assignee",
                "offered_at",
                "offer_count",
                "version",
                "updated_at",
            ]
        )
        profile.last_assigned_at = now
        profile.save(update_fields=["last_assigned_at"])
        audit_record(
            actor=Actor.system("routing"),
            verb="escalation.offered",
            escalation=case,
            obj=case,
            data={
                # The roster's user, loaded with it: the locked profile's would be a query.
                "to": candidate.profile.user.get_username(),
                "affinity": candidate.affinity,
                "load": candidate.load,
                "capacity": profile.capacity,
            },
        )
        publish_case_changed(escalation_id=case.pk, change="offered", actor="routing")
        return profile
    return None


@audited_transaction()
def assignment_offer(
    *,
    escalation_id: int,
    now: datetime | None = None,
    roster: list[ReviewerProfile] | None = None,
) -> ReviewerProfile | None:
    """Offer one queued case, if it is still queued and nobody else is handling it now."""
    case = (
        Escalation.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(pk=escalation_id, status=Status.QUEUED)
        .first()
    )
    if case is None:
        return None
    return _offer_locked(case, now=now or timezone.now(), roster=roster)


def assignment_run(*, limit: int = 200, now: datetime | None = None) -> int:
    """Offer queued cases in priority, then deadline, order; returns how many were offered.
    Each case is its own short transaction, so one slow claim holds up nothing else."""
    now = now or timezone.now()
    # Who is online is read once per run; loads are counted afresh under each claim's lock.
    roster = _roster(online_at=now)
    if not roster:
        return 0
    ids = list(
        Escalation.objects.filter(status=Status.QUEUED)
        .order_by("priority", "sla_resolve_due", "id")
        .values_list("id", flat=True)[:limit]
    )
    offered = 0
    for escalation_id in ids:
        if assignment_offer(escalation_id=escalation_id, now=now, roster=roster) is not None:
            offered += 1
    return offered


@audited_transaction()
def assignment_expire_offers(*, now: datetime | None = None) -> int:
    """Offers not accepted within the accept window go back to the queue, and on to the
    next eligible person (never the same one again)."""
    now = now or timezone.now()
    window = timedelta(seconds=settings.BATON_OFFER_ACCEPT_SECONDS)
    stale = list(
        Escalation.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("assignee")
        .filter(status=Status.ASSIGNED, offered_at__lt=now - window)
    )
    for case in stale:
        previous = case.assignee
        case.declined_by = [*(case.declined_by or []), case.assignee_id]
        case.status = Status.QUEUED
        case.assignee = None
        case.offered_at = None
        case.version += 1
        case.save(
            update_fields=[
                "declined_by",
                "status",
                "assignee",
                "offered_at",
                "version",
                "updated_at",
            ]
        )
        audit_record(
            actor=Actor.system("routing"),
            verb="escalation.offer_expired",
            escalation=case,
            obj=case,
            data={"from": previous.get_username() if previous else None},
        )
        publish_case_changed(escalation_id=case.pk, change="offer_expired", actor="routing")
        _offer_locked(case, now=now)
    return len(stale)


# --- What the agent is told ------------------------------------------------------------------


@dataclass(frozen=True)
class Handoff:
    method: str  # warm | queued | callback
    eta: datetime | None
    queue_position: int | None = None


def _queue_position(case: Escalation) -> int:
    ahead = Escalation.objects.filter(status=Status.QUEUED).filter(
        Q(priority__lt=case.priority)
        | Q(priority=case.priority, sla_resolve_due__lt=case.sla_resolve_due)
        | Q(priority=case.priority, sla_resolve_due=case.sla_resolve_due, pk__lt=case.pk)
    )
    return ahead.count() + 1


def handoff_for(
    case: Escalation, *, now: datetime, roster: list[ReviewerProfile] | None = None
) -> Handoff:
    """Warm when someone has it now; queued when qualified people are on shift but busy;
    callback when nobody with the skills is on shift before the SLA runs out."""
    if case.status in HELD:
        return Handoff(method="warm", eta=now)
    able = [p for p in (_roster() if roster is None else roster) if qualified(p, case)]
    on_duty = [p for p in able if on_shift(p.shifts.all(), now)]
    if on_duty:
        position = _queue_position(case)
        per_case = timedelta(seconds=settings.BATON_AVERAGE_HANDLING_SECONDS)
        eta = now + per_case * math.ceil(position / len(on_duty))
        due = case.sla_resolve_due
        if due is None or eta <= due:
            return Handoff(method="queued", eta=eta, queue_position=position)
    starts = [s for p in able if (s := next_shift_start(p.shifts.all(), now)) is not None]
    return Handoff(method="callback", eta=min(starts) if starts else None)


def handoff_record(case: Escalation, *, now: datetime | None = None) -> Handoff:
    """Offer a new case at once if someone can take it, and store what the agent is told."""
    now = now or timezone.now()
    roster = _roster()
    if case.status == Status.QUEUED:
        _offer_locked(case, now=now, roster=roster)
    handoff = handoff_for(case, now=now, roster=roster)
    case.handoff_method = handoff.method
    case.handoff_eta = handoff.eta
    case.queue_position = handoff.queue_position
    case.save(update_fields=["handoff_method", "handoff_eta", "queue_position", "updated_at"])
    return handoff


def describe(case: Escalation) -> dict[str, Any]:
    """The handoff as the agent API shows it."""
    assignee = case.assignee
    return {
        "method": case.handoff_method or None,
        "eta": case.handoff_eta,
        "queue_position": case.queue_position,
        "assignee": (assignee.get_full_name() or assignee.get_username()) if assignee else None,
    }
