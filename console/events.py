"""Live events: services publish high-level events after commit; consumers render them.

The channel layer is at-most-once; the database stays the truth and a console that
reconnects re-fetches what it shows (DESIGN §8).
"""

from __future__ import annotations

import uuid
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

CONSOLE_GROUP = "console"
SUPERVISORS_GROUP = "supervisors"  # consoles of people who may act on SLA alerts


def case_group(escalation_id: int) -> str:
    return f"case-{escalation_id}"


def _send(groups: list[str], message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    for group in groups:
        async_to_sync(layer.group_send)(group, message)


def publish_case_changed(
    *, escalation_id: int, change: str, actor: str = "", inboxes: bool = True
) -> None:
    """Tell every waiter on this case, and every console's inbox unless the change cannot
    show there (who is viewing), once the transaction commits."""
    # `event` names this one change, so the consoles of one process that receive it can
    # share a render of it (console/consumers.py).
    message = {
        "type": "case.changed",
        "id": escalation_id,
        "change": change,
        "actor": actor,
        "event": uuid.uuid4().hex,
    }
    groups = [CONSOLE_GROUP, case_group(escalation_id)] if inboxes else [case_group(escalation_id)]
    transaction.on_commit(lambda: _send(groups, message), robust=True)


def publish_sla_alert(*, escalation_id: int, kind: str, detail: str) -> None:
    """Alert every supervisor's console about a case's service level (kind: "breach"),
    once the transaction commits. `detail` is plain text; the console escapes it."""
    message = {"type": "sla.alert", "id": escalation_id, "kind": kind, "detail": detail}
    transaction.on_commit(lambda: _send([SUPERVISORS_GROUP], message), robust=True)
