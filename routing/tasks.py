"""Periodic and triggered routing work; thin wrappers over the services (idempotent)."""

from __future__ import annotations

from celery import shared_task

from routing import sla
from routing.assignment import assignment_expire_offers, assignment_run


@shared_task(name="routing.assign_queued", ignore_result=True)
def assign_queued() -> int:
    return assignment_run()


@shared_task(name="routing.expire_offers", ignore_result=True)
def expire_offers() -> int:
    return assignment_expire_offers()


@shared_task(name="routing.sla_sweep", ignore_result=True)
def sla_sweep() -> dict[str, int]:
    result = sla.sla_sweep()
    return {"warned": len(result.warned), "breached": len(result.breached)}
