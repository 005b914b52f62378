"""Service-level clocks (DESIGN §6): targets per priority band, measured from the handoff.

Each open case runs up to two clocks: time to accept (until someone first accepts it) and
time to resolve. A clock *warns* once less than `1 - warning_share` of its band's target is
left (for a case judged by its band's target from the start: once `warning_share` of it
has passed), and *breaches* at its due time. A breach alerts supervisors live and raises
the case one priority band.

`sla_sweep` runs on Celery beat. Every mark it makes is a conditional UPDATE that acts
only on the row it still finds unmarked and unchanged, so overlapping beats (or a beat
racing a reviewer) never warn or alert twice: whoever updates no row does nothing else.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from console.events import publish_case_changed, publish_sla_alert
from escalations.audit import Actor, audit_record, audited_transaction
from escalations.errors import Forbidden, InvalidInput
from escalations.models import OPEN_STATUSES, AuditEvent, Escalation, Priority, Status
from routing.models import SlaTarget

MANAGE_POLICY = "escalations.manage_policy"
# Statuses in which the accept clock can run: nobody has the case in review yet.
AWAITING_ACCEPT = (Status.RECEIVED, Status.QUEUED, Status.ASSIGNED)
SWEEP_ACTOR = "sla"
TARGET_FIELDS = ("accept_seconds", "resolve_seconds", "warning_share")
# What the sweep reads of a case: never the package or transcript.
SWEEP_FIELDS = (
    "status",
    "priority",
    "version",
    "created_at",
    "sla_accept_due",
    "sla_resolve_due",
    "sla_warned_at",
    "sla_breached_at",
)


# --- Targets ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    priority: int
    accept: timedelta
    resolve: timedelta
    warning_share: float

    def as_fields(self) -> dict[str, Any]:
        return {
            "accept_seconds": int(self.accept.total_seconds()),
            "resolve_seconds": int(self.resolve.total_seconds()),
            "warning_share": self.warning_share,
        }


def _target(priority: int, row: SlaTarget | None) -> Target:
    if row is not None:
        return Target(
            priority=priority,
            accept=timedelta(seconds=row.accept_seconds),
            resolve=timedelta(seconds=row.resolve_seconds),
            warning_share=row.warning_share,
        )
    default = settings.BATON_SLA_DEFAULTS[priority]
    return Target(
        priority=priority,
        accept=timedelta(seconds=default["accept"]),
        resolve=timedelta(seconds=default["resolve"]),
        warning_share=SlaTarget._meta.get_field("warning_share").get_default(),
    )


def sla_target(*, priority: int) -> Target:
    """The band's target as admins set it, else the shipped default."""
    return _target(priority, SlaTarget.objects.filter(priority=priority).first())


def sla_targets() -> dict[int, Target]:
    """Every band's target, in one query."""
    rows = {row.priority: row for row in SlaTarget.objects.all()}
    return {priority: _target(priority, rows.get(priority)) for priority in Priority.values}


def _dues(target: Target, start: datetime) -> tuple[datetime, datetime]:
    return start + target.accept, start + target.resolve


def sla_dues(*, priority: int, start: datetime) -> tuple[datetime, datetime]:
    """(accept by, resolve by) for a case of this band handed over at `start`."""
    return _dues(sla_target(priority=priority), start)


def sla_target_errors(
    *, accept_seconds: int, resolve_seconds: int, warning_share: float
) -> list[dict[str, str]]:
    """What is wrong with a proposed target; the admin form and the service share it."""
    errors = []
    if accept_seconds < 1:
        errors.append({"field": "accept_seconds", "message": "at least one second"})
    if resolve_seconds < accept_seconds:
        errors.append(
            {"field": "resolve_seconds", "message": "must not be shorter than the time to accept"}
        )
    if not 0.1 <= warning_share <= 0.99:
        errors.append({"field": "warning_share", "message": "between 0.1 and 0.99"})
    return errors


@audited_transaction()
def sla_target_update(
    *,
    target: SlaTarget,
    accept_seconds: int,
    resolve_seconds: int,
    warning_share: float,
    actor: Actor,
) -> SlaTarget:
    """Set a band's target (creating its row if the band ran on the shipped default).
    A real change bumps the version and is audited with the old and new values. Cases
    keep the due times they were given; the new target counts for new cases and for the
    warning margin from the next sweep on."""
    if actor.user is not None and not actor.user.has_perm(MANAGE_POLICY):
        raise Forbidden("Only admins change SLA targets.")
    errors = sla_target_errors(
        accept_seconds=accept_seconds, resolve_seconds=resolve_seconds, warning_share=warning_share
    )
    if target.priority not in Priority.values:
        errors.append({"field": "priority", "message": "one of 1 (P1) to 4 (P4)"})
    if errors:
        raise InvalidInput("The SLA target is not valid.", errors=errors)
    rows = SlaTarget.objects.select_for_update()
    row = (
        rows.filter(pk=target.pk) if target.pk else rows.filter(priority=target.priority)
    ).first()
    before = _target(target.priority, row).as_fields()
    after = {
        "accept_seconds": accept_seconds,
        "resolve_seconds": resolve_seconds,
        "warning_share": warning_share,
    }
    changed = {
        k: {"from": before[k], "to": after[k]} for k in TARGET_FIELDS if before[k] != after[k]
    }
    if row is None:
        row = SlaTarget.objects.create(priority=target.priority, **after)
    elif not changed:
        return row
    else:
        for name, value in after.items():
            setattr(row, name, value)
        row.version += 1
        row.save(update_fields=[*TARGET_FIELDS, "version", "updated_at"])
    audit_record(
        actor=actor,
        verb="sla_target.changed",
        obj=row,
        data={"priority": row.priority, "changed": changed, "version": row.version},
    )
    return row


# --- Clocks ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    name: str  # accept | resolve
    due: datetime
    target: timedelta  # the band's target for this clock

    def overdue(self, now: datetime) -> bool:
        return self.due <= now

    def warns(self, now: datetime, share: float) -> bool:
        return self.due - now <= self.target * (1 - share)


def _clocks(case: Escalation, target: Target, *, accepted_before: bool) -> list[Clock]:
    """The clocks that run for an open case, earliest due first."""
    clocks = []
    if case.status in AWAITING_ACCEPT and not accepted_before and case.sla_accept_due:
        clocks.append(Clock("accept", case.sla_accept_due, target.accept))
    if case.sla_resolve_due:
        clocks.append(Clock("resolve", case.sla_resolve_due, target.resolve))
    return sorted(clocks, key=lambda clock: clock.due)


def _candidates(*, now: datetime, targets: dict[int, Target]) -> QuerySet[Escalation]:
    """Open, unbreached cases with a clock due or inside its warning margin. The same
    tests as `Clock.overdue` / `Clock.warns`, in SQL over the queue's indexed columns
    (status, priority, due), so the sweep reads only what it may act on."""
    # Accepted once, a case that goes back to the queue (reassigned, re-escalated) has met
    # its time to accept; only the resolve clock still runs.
    accepted = AuditEvent.objects.filter(escalation=OuterRef("pk"), verb="escalation.accepted")
    unwarned = Q(sla_warned_at__isnull=True)

    def due_soon(clock: str, target_of: Callable[[Target], timedelta]) -> Q:
        """The clock is past due, or (not yet warned) inside its band's warning margin."""
        margins = (
            Q(priority=priority, **{f"{clock}__lte": now + target_of(t) * (1 - t.warning_share)})
            for priority, t in targets.items()
        )
        return Q(**{f"{clock}__lte": now}) | (unwarned & reduce(operator.or_, margins))

    accept_runs = Q(status__in=AWAITING_ACCEPT, accepted_before=False)
    return (
        Escalation.objects.filter(status__in=OPEN_STATUSES, sla_breached_at__isnull=True)
        .annotate(accepted_before=Exists(accepted))
        .filter(
            (accept_runs & due_soon("sla_accept_due", lambda t: t.accept))
            | due_soon("sla_resolve_due", lambda t: t.resolve)
        )
        .select_related("task_type")
        .only(*SWEEP_FIELDS, "task_type__name")
        .order_by("priority", "sla_resolve_due", "id")
    )


def _duration_text(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min" if minutes else f"{secs} s"


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def _warn(case: Escalation, clock: Clock, *, now: datetime, share: float) -> bool:
    with audited_transaction():
        marked = Escalation.objects.filter(
            pk=case.pk,
            version=case.version,
            sla_warned_at__isnull=True,
            sla_breached_at__isnull=True,
        ).update(sla_warned_at=now, updated_at=now)
        if marked != 1:
            return False  # another sweep warned it, or the case moved on: look again next time
        case.sla_warned_at = case.updated_at = now
        audit_record(
            actor=Actor.system(SWEEP_ACTOR),
            verb="escalation.sla_warning",
            escalation=case,
            obj=case,
            data={
                "clock": clock.name,
                "due": clock.due,
                "seconds_left": round((clock.due - now).total_seconds()),
                "warning_share": share,
            },
        )
        publish_case_changed(escalation_id=case.pk, change="sla_warning", actor=SWEEP_ACTOR)
    return True


def _breach(case: Escalation, clock: Clock, *, now: datetime, targets: dict[int, Target]) -> bool:
    before = {
        "priority": case.priority,
        "sla_accept_due": case.sla_accept_due,
        "sla_resolve_due": case.sla_resolve_due,
    }
    priority = max(Priority.P1, case.priority - 1)
    accept_due, resolve_due = _dues(targets[priority], case.created_at)
    # The new band's clocks, counted from the handoff, but never later than they were.
    after = {
        "priority": priority,
        "sla_accept_due": _earliest([case.sla_accept_due, accept_due]),
        "sla_resolve_due": _earliest([case.sla_resolve_due, resolve_due]),
    }
    with audited_transaction():
        marked = Escalation.objects.filter(
            pk=case.pk, version=case.version, sla_breached_at__isnull=True
        ).update(sla_breached_at=now, version=F("version") + 1, updated_at=now, **after)
        if marked != 1:
            return False
        for name, value in after.items():
            setattr(case, name, value)
        case.sla_breached_at = case.updated_at = now
        case.version += 1
        late = now - clock.due
        audit_record(
            actor=Actor.system(SWEEP_ACTOR),
            verb="escalation.sla_breached",
            escalation=case,
            obj=case,
            data={
                "clock": clock.name,
                "due": clock.due,
                "seconds_late": round(late.total_seconds()),
                "before": before,
                "after": after,
            },
        )
        publish_case_changed(escalation_id=case.pk, change="sla_breached", actor=SWEEP_ACTOR)
        what = "time to accept" if clock.name == "accept" else "time to resolve"
        publish_sla_alert(
            escalation_id=case.pk,
            kind="breach",
            detail=(
                f"Case #{case.pk} ({case.task_type.name}) is {_duration_text(late)} past its "
                f"{what} target; raised to P{priority}."
            ),
        )
    return True


@dataclass(frozen=True)
class SweepResult:
    warned: list[int] = field(default_factory=list)
    breached: list[int] = field(default_factory=list)


def sla_sweep(*, now: datetime | None = None, limit: int = 500) -> SweepResult:
    """Warn and breach what is due, most urgent first. Each case is its own short
    transaction; whatever the limit leaves is next in line for the following beat."""
    now = now or timezone.now()
    targets = sla_targets()
    result = SweepResult()
    for case in _candidates(now=now, targets=targets)[:limit]:
        target = targets[case.priority]
        clocks = _clocks(case, target, accepted_before=case.accepted_before)  # type: ignore[attr-defined]
        overdue = [clock for clock in clocks if clock.overdue(now)]
        warning = [clock for clock in clocks if clock.warns(now, target.warning_share)]
        if overdue:
            if _breach(case, overdue[0], now=now, targets=targets):
                result.breached.append(case.pk)
        elif (
            warning
            and case.sla_warned_at is None
            and _warn(case, warning[0], now=now, share=target.warning_share)
        ):
            result.warned.append(case.pk)
    return result
