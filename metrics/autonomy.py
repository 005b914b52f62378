"""Earned autonomy (DESIGN §10): which task types have earned a level less, or lost one.

- **Down a level**: the last N final decisions (N = BATON_AUTONOMY_MIN_DECISIONS, within
  BATON_AUTONOMY_WINDOW_DAYS) on a task type's human-reviewed cases, arrived at its current
  level, were approved unchanged at least BATON_AUTONOMY_APPROVE_SHARE of the time. Never
  below L1.
- **Back up a level**: an L1 type whose sampled cases, reviewed after the fact within the
  window, were reversed more than BATON_AUTONOMY_REVERSAL_RATE of the time, over at least
  BATON_AUTONOMY_MIN_REVIEWS reviews.

Only the task type's level moves; policy rules (hard rules above all) are never touched, so
a case a rule raises is raised as before. Counting is done by the database.

A dismissed recommendation is an audit event (`autonomy.dismissed`) carrying the evidence
as dismissed. It stays hidden until the evidence changes materially: the task type's level
moved, or a whole fresh sample of evidence (N new decisions down, the minimum of new reviews
up) arrived since the dismissal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, F, IntegerField, Max, Min, Q, QuerySet, Window
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, RowNumber
from django.utils import timezone

from escalations.audit import Actor, audit_record, audited_transaction
from escalations.errors import Conflict, Forbidden, InvalidInput
from escalations.models import AuditEvent, Decision, Level, Status, TaskType, Verb

DOWN = "down"
UP = "up"
DIRECTIONS = (DOWN, UP)
MANAGE_POLICY = "escalations.manage_policy"


@dataclass(frozen=True)
class Thresholds:
    min_decisions: int
    window_days: int
    approve_share: float
    reversal_rate: float
    min_reviews: int

    @classmethod
    def from_settings(cls) -> Thresholds:
        return cls(
            min_decisions=settings.BATON_AUTONOMY_MIN_DECISIONS,
            window_days=settings.BATON_AUTONOMY_WINDOW_DAYS,
            approve_share=settings.BATON_AUTONOMY_APPROVE_SHARE,
            reversal_rate=settings.BATON_AUTONOMY_REVERSAL_RATE,
            min_reviews=settings.BATON_AUTONOMY_MIN_REVIEWS,
        )


@dataclass(frozen=True)
class Recommendation:
    task_type: TaskType
    direction: str
    from_level: int
    to_level: int
    evidence: dict[str, Any]

    @property
    def from_label(self) -> str:
        return Level(self.from_level).label

    @property
    def to_label(self) -> str:
        return Level(self.to_level).label


def _reviewed_by_people(since: datetime) -> QuerySet[Decision]:
    """Final decisions in the window on cases a person decided before anything happened
    (after-the-fact reviews of auto-resolved cases are the other rule's evidence), counting
    only cases that arrived while the task type was at its current level: after a change of
    level the evidence starts afresh, so one applied recommendation never triggers the next."""
    level_on_arrival = Cast(
        KeyTextTransform("level", KeyTransform("task_type", "escalation__policy_snapshot")),
        IntegerField(),
    )
    return (
        Decision.objects.filter(final=True, created_at__gte=since)
        .exclude(escalation__status=Status.AUTO_RESOLVED)
        .alias(level_on_arrival=level_on_arrival)
        .filter(level_on_arrival=F("escalation__task_type__level"))
    )


def _post_hoc_reviews(since: datetime) -> QuerySet[Decision]:
    return Decision.objects.filter(
        final=True, created_at__gte=since, escalation__status=Status.AUTO_RESOLVED
    )


def _down_evidence(t: Thresholds, since: datetime) -> dict[int, dict[str, Any]]:
    """Per task type above L1, over its last N decisions in the window: one query, the
    ranking by a window function and the counting by GROUP BY."""
    ranked = (
        _reviewed_by_people(since)
        .filter(escalation__task_type__level__gt=Level.AUTONOMOUS)
        .annotate(
            rank=Window(
                RowNumber(),
                partition_by=[F("escalation__task_type_id")],
                order_by=[F("created_at").desc(), F("id").desc()],
            )
        )
        .filter(rank__lte=t.min_decisions)
        .values("id")
    )
    rows = (
        Decision.objects.filter(id__in=ranked)
        .values("escalation__task_type_id")
        .annotate(
            decisions=Count("id"),
            approved_unchanged=Count("id", filter=Q(verb=Verb.APPROVE)),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
            last_decision_id=Max("id"),
        )
    )
    return {row.pop("escalation__task_type_id"): row for row in rows}


def _up_evidence(t: Thresholds, since: datetime) -> dict[int, dict[str, Any]]:
    rows = (
        _post_hoc_reviews(since)
        .filter(escalation__task_type__level=Level.AUTONOMOUS)
        .values("escalation__task_type_id")
        .annotate(
            reviewed=Count("id"),
            reversed=Count("id", filter=Q(verb=Verb.REVERSE)),
            first_at=Min("created_at"),
            last_at=Max("created_at"),
            last_decision_id=Max("id"),
        )
    )
    return {row.pop("escalation__task_type_id"): row for row in rows}


def _candidates(t: Thresholds) -> list[Recommendation]:
    now = timezone.now()
    since = now - timedelta(days=t.window_days)
    window = {"window_days": t.window_days, "since": since.isoformat(timespec="seconds")}
    down, up = _down_evidence(t, since), _up_evidence(t, since)
    types = TaskType.objects.filter(pk__in=[*down, *up], active=True).order_by("slug")
    found = []
    for task_type in types:
        seen = down.get(task_type.pk)
        if seen and task_type.level > Level.AUTONOMOUS and seen["decisions"] >= t.min_decisions:
            share = seen["approved_unchanged"] / seen["decisions"]
            if share >= t.approve_share:
                found.append(
                    Recommendation(
                        task_type=task_type,
                        direction=DOWN,
                        from_level=task_type.level,
                        to_level=task_type.level - 1,
                        evidence={
                            **window,
                            **_plain(seen),
                            "approved_share": round(share, 4),
                            "threshold": t.approve_share,
                            "min_decisions": t.min_decisions,
                        },
                    )
                )
        seen = up.get(task_type.pk)
        if seen and task_type.level == Level.AUTONOMOUS and seen["reviewed"] >= t.min_reviews:
            rate = seen["reversed"] / seen["reviewed"]
            if rate > t.reversal_rate:
                found.append(
                    Recommendation(
                        task_type=task_type,
                        direction=UP,
                        from_level=task_type.level,
                        to_level=task_type.level + 1,
                        evidence={
                            **window,
                            **_plain(seen),
                            "reversal_rate": round(rate, 4),
                            "threshold": t.reversal_rate,
                            "min_reviews": t.min_reviews,
                        },
                    )
                )
    return found


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat(timespec="seconds") if isinstance(value, datetime) else value
        for key, value in row.items()
    }


def _dismissals() -> dict[tuple[str, str], dict[str, Any]]:
    """The latest dismissal per (task type id, direction)."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    events = AuditEvent.objects.filter(verb="autonomy.dismissed").order_by("seq")
    for object_id, data in events.values_list("object_id", "data"):
        latest[(object_id, data.get("direction", ""))] = data
    return latest


def _still_dismissed(rec: Recommendation, dismissal: dict[str, Any] | None, t: Thresholds) -> bool:
    if dismissal is None or dismissal.get("from_level") != rec.from_level:
        return False
    last_seen = dismissal.get("evidence", {}).get("last_decision_id") or 0
    since = timezone.now() - timedelta(days=t.window_days)
    if rec.direction == DOWN:
        fresh, needed = _reviewed_by_people(since), t.min_decisions
    else:
        fresh, needed = _post_hoc_reviews(since), t.min_reviews
    new = fresh.filter(escalation__task_type=rec.task_type, id__gt=last_seen).count()
    return new < needed


def autonomy_recommendations(*, include_dismissed: bool = False) -> list[Recommendation]:
    """The recommendations in force, each with its evidence; dismissed ones left out until
    their evidence changes materially (see the module's docstring)."""
    t = Thresholds.from_settings()
    found = _candidates(t)
    if include_dismissed:
        return found
    dismissals = _dismissals()
    return [
        rec
        for rec in found
        if not _still_dismissed(rec, dismissals.get((str(rec.task_type.pk), rec.direction)), t)
    ]


def _current(*, task_type_id: int, direction: str, actor: Actor) -> Recommendation:
    """The recommendation as it stands now, recomputed (never what a stale page posted)."""
    if actor.user is not None and not actor.user.has_perm(MANAGE_POLICY):
        raise Forbidden("Only admins act on autonomy recommendations.")
    if direction not in DIRECTIONS:
        raise InvalidInput(
            "Unknown direction.", errors=[{"field": "direction", "message": "up or down"}]
        )
    for rec in autonomy_recommendations(include_dismissed=True):
        if rec.task_type.pk == task_type_id and rec.direction == direction:
            return rec
    raise Conflict("That recommendation no longer stands: its evidence or the level changed.")


@audited_transaction()
def autonomy_apply(*, task_type_id: int, direction: str, from_level: int, actor: Actor) -> TaskType:
    """Move the task type one level as recommended: versioned and audited old → new by the
    policy service, with the evidence recorded beside it."""
    from escalations.policy_admin import task_type_update

    rec = _current(task_type_id=task_type_id, direction=direction, actor=actor)
    if rec.from_level != from_level:
        raise Conflict("The task type's level changed since the page was loaded.")
    task_type = task_type_update(task_type=rec.task_type, actor=actor, level=rec.to_level)
    audit_record(
        actor=actor,
        verb="autonomy.applied",
        obj=task_type,
        data={
            "slug": task_type.slug,
            "direction": rec.direction,
            "from_level": rec.from_level,
            "to_level": rec.to_level,
            "version": task_type.version,
            "evidence": rec.evidence,
        },
    )
    return task_type


@audited_transaction()
def autonomy_dismiss(*, task_type_id: int, direction: str, actor: Actor) -> Recommendation:
    rec = _current(task_type_id=task_type_id, direction=direction, actor=actor)
    audit_record(
        actor=actor,
        verb="autonomy.dismissed",
        obj=rec.task_type,
        data={
            "slug": rec.task_type.slug,
            "direction": rec.direction,
            "from_level": rec.from_level,
            "to_level": rec.to_level,
            "evidence": rec.evidence,
        },
    )
    return rec
