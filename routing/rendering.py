"""HTML for the board and the presence switch, shared by the views (whole pages) and the
console socket (fragments with `hx-swap-oob`). Templates only: everything is escaped."""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.timezone import now

from escalations.errors import BatonError
from escalations.models import Escalation
from routing import selectors
from routing.assignment import on_shift
from routing.models import Presence, ReviewerProfile


def board_context(*, user: Any) -> dict[str, Any]:
    return {"board": selectors.board_for(user=user), "section": "board"}


def reassign_context(*, user: Any, escalation_id: int) -> dict[str, Any]:
    case = selectors.board_case(user=user, escalation_id=escalation_id)
    return reassign_panel_context(user=user, case=case)


def reassign_panel_context(*, user: Any, case: Escalation) -> dict[str, Any]:
    options = selectors.reassign_options(user=user, case=case)
    default = next((str(o.user.pk) for o in options if o.eligible), "")
    return {"move": case, "options": options, "chosen": default}


def board_live(*, user: Any) -> str:
    """The board's live part, for a supervisor's tab; nothing for anyone else."""
    try:
        context = board_context(user=user)
    except BatonError:
        return ""
    return render_to_string("routing/board.html#live", {**context, "oob": True})


def presence_context(*, user: Any) -> dict[str, Any] | None:
    profile = ReviewerProfile.objects.filter(user_id=user.pk).first()
    if profile is None:
        return None
    shifts = profile.shifts.all()
    return {"me": profile, "presences": Presence.choices, "on_shift": on_shift(shifts, now())}


def presence_switch(
    *, user: Any, csrf_token: str = "", next_url: str = "", oob: bool = False
) -> str:
    """The top bar's switch for someone on the roster; "" for anyone else."""
    context = presence_context(user=user)
    if context is None:
        return ""
    context |= {"oob": oob, "csrf_token": csrf_token, "next": next_url}
    return render_to_string("routing/_presence.html", context)
