"""Who is looking at a case right now (DESIGN §8: reviewers see who else is viewing)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from console.events import publish_case_changed
from console.models import CaseViewer

# A tab that has not sent a heartbeat for this long has gone (closed laptop, dead process).
VIEWER_TTL = timedelta(seconds=90)


@transaction.atomic
def viewer_watch(*, user: Any, escalation_id: int, channel_name: str) -> None:
    CaseViewer.objects.update_or_create(
        channel_name=channel_name,
        defaults={"user": user, "escalation_id": escalation_id, "last_seen": timezone.now()},
    )
    publish_case_changed(escalation_id=escalation_id, change="viewers", inboxes=False)


@transaction.atomic
def viewer_leave(*, channel_name: str) -> None:
    viewer = CaseViewer.objects.filter(channel_name=channel_name).first()
    if viewer is None:
        return
    viewer.delete()
    publish_case_changed(escalation_id=viewer.escalation_id, change="viewers", inboxes=False)


def viewer_heartbeat(*, channel_name: str) -> None:
    CaseViewer.objects.filter(channel_name=channel_name).update(last_seen=timezone.now())


def viewers_of(*, escalation_id: int, exclude_user_id: int | None = None) -> list[str]:
    """Names of the other people viewing the case, each once."""
    rows = CaseViewer.objects.filter(
        escalation_id=escalation_id, last_seen__gte=timezone.now() - VIEWER_TTL
    )
    if exclude_user_id is not None:
        rows = rows.exclude(user_id=exclude_user_id)
    rows = rows.select_related("user").order_by("user__username")
    names = [row.user.get_full_name() or row.user.get_username() for row in rows]
    return list(dict.fromkeys(names))
