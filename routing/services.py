"""Roster state changes: presence, and a supervisor's reassignment."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from console.events import publish_case_changed
from escalations.audit import Actor, audit_record
from escalations.errors import Conflict, Forbidden, InvalidInput, NotFound
from escalations.models import OPEN_STATUSES, Escalation, Status
from routing.assignment import CapacityFull, is_online, lock_capacity
from routing.models import Presence, ReviewerProfile


def _schedule_assignment() -> None:
    from routing.tasks import assign_queued

    transaction.on_commit(lambda: assign_queued.delay(), robust=True)


def presence_seen(*, user: User) -> None:
    """A console tab's heartbeat. Opening the console puts an offline person online."""
    profile = ReviewerProfile.objects.filter(user=user).first()
    if profile is None:
        return
    now = timezone.now()
    was_online = is_online(profile, now)
    fields = {"last_seen_at": now}
    if profile.presence == Presence.OFFLINE:
        fields |= {"presence": Presence.ONLINE, "presence_changed_at": now}
    with transaction.atomic():
        ReviewerProfile.objects.filter(pk=profile.pk).update(**fields)
        if not was_online and fields.get("presence", profile.presence) == Presence.ONLINE:
            _schedule_assignment()  # someone came online: the queue may move


@transaction.atomic
def presence_set(*, user: User, presence: str) -> ReviewerProfile:
    """The manual switch: online, away (no new offers) or offline."""
    if presence not in Presence.values:
        raise InvalidInput(
            "Unknown presence.",
            errors=[{"field": "presence", "message": "online, away or offline"}],
        )
    profile = ReviewerProfile.objects.select_for_update().filter(user=user).first()
    if profile is None:
        raise NotFound("You are not on the roster; a supervisor can add you.")
    before = profile.presence
    now = timezone.now()
    profile.presence = presence
    profile.presence_changed_at = now
    if presence == Presence.ONLINE:
        profile.last_seen_at = now
    profile.save(update_fields=["presence", "presence_changed_at", "last_seen_at"])
    if before != presence:
        audit_record(
            actor=Actor.person(user),
            verb="roster.presence",
            obj=profile,
            data={"from": before, "to": presence},
        )
    if presence == Presence.ONLINE:
        _schedule_assignment()
    return profile


@transaction.atomic
def escalation_reassign(
    *,
    escalation_id: int,
    supervisor: User,
    to_user: User | None,
    reason: str,
    version: int,
) -> Escalation:
    """A supervisor moves an open case to another person (offered to them) or back to the
    queue. The new holder's capacity is respected; both consoles update at once."""
    if not supervisor.has_perm("escalations.reassign_escalation"):
        raise Forbidden("Only supervisors reassign cases.")
    if not reason.strip():
        raise InvalidInput(
            "Say why the case moves.", errors=[{"field": "reason", "message": "required"}]
        )
    case = (
        Escalation.objects.select_for_update(of=("self",))
        .select_related("assignee")
        .filter(pk=escalation_id)
        .first()
    )
    if case is None:
        raise NotFound(f"No case {escalation_id}.")
    if case.version != version:
        raise Conflict("The case changed since you looked at it; nothing was moved. Reload.")
    if case.status not in OPEN_STATUSES:
        raise Conflict(f"The case is {case.get_status_display().lower()}; it cannot move.")
    if to_user is not None and to_user.pk == case.assignee_id:
        raise Conflict(f"{to_user.get_full_name() or to_user} already holds the case.")
    if to_user is not None:
        if not to_user.is_active or not to_user.has_perm("escalations.work_queue"):
            raise InvalidInput(
                "That person cannot work cases.", errors=[{"field": "to", "message": "no role"}]
            )
        try:
            lock_capacity(to_user)
        except CapacityFull as full:
            raise Conflict(str(full)) from None
    previous = case.assignee
    now = timezone.now()
    case.assignee = to_user
    case.status = Status.ASSIGNED if to_user is not None else Status.QUEUED
    case.offered_at = now if to_user is not None else None
    case.accepted_at = None
    case.version += 1
    case.save(
        update_fields=["assignee", "status", "offered_at", "accepted_at", "version", "updated_at"]
    )
    audit_record(
        actor=Actor.person(supervisor),
        verb="escalation.reassigned",
        escalation=case,
        obj=case,
        data={
            "from": previous.get_username() if previous else None,
            "to": to_user.get_username() if to_user else None,
            "reason": reason.strip(),
        },
    )
    publish_case_changed(
        escalation_id=case.pk, change="reassigned", actor=supervisor.get_username()
    )
    if to_user is None or previous is not None:
        _schedule_assignment()
    return case
