"""Service-level targets (DESIGN §6): the clock starts at the handoff."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from routing.models import SlaTarget


@dataclass(frozen=True)
class Target:
    priority: int
    accept: timedelta
    resolve: timedelta
    warning_share: float


def sla_target(*, priority: int) -> Target:
    """The band's target as admins set it, else the shipped default."""
    row = SlaTarget.objects.filter(priority=priority).first()
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
        warning_share=0.75,
    )


def sla_dues(*, priority: int, start: datetime) -> tuple[datetime, datetime]:
    """(accept by, resolve by) for a case of this band handed over at `start`."""
    target = sla_target(priority=priority)
    return start + target.accept, start + target.resolve
