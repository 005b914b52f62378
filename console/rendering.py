"""HTML for the console, shared by the views (whole pages) and the websocket (fragments).

Everything goes through templates, so untrusted text is escaped by Django (never HTML
built with f-strings). Fragments meant for the socket carry `hx-swap-oob`.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from django.template.loader import render_to_string

from console import viewers
from escalations import selectors
from escalations.decisions import DecisionInput
from escalations.errors import BatonError
from escalations.models import Decision, Priority, Verb

DECIDED_MESSAGES = {
    Verb.APPROVE: "Approved: the agent goes ahead.",
    Verb.EDIT: "Approved with your edits: the agent sends your version.",
    Verb.REJECT: "Rejected: the agent will not act.",
    Verb.RESPOND: "Response sent to the agent.",
    Verb.TAKE_OVER: "You have taken over: the agent stops.",
    Verb.ESCALATE: "Escalated: the case is back in the queue.",
    Verb.REVERSE: "Reversed: the agent is told to undo its action.",
}


def notice(message: str, level: str = "info", case_id: int | None = None) -> str:
    return render_to_string(
        "console/_notice.html", {"message": message, "level": level, "case_id": case_id}
    )


def sla_alert(*, escalation_id: int, kind: str, detail: str) -> str:
    """A supervisor's toast about a case's service level, with a link to the case."""
    return render_to_string(
        "console/_sla_alert.html", {"case_id": escalation_id, "kind": kind, "detail": detail}
    )


def error_notice(error: BatonError) -> str:
    return render_to_string(
        "console/_notice.html",
        {"message": error.message, "errors": error.errors, "level": "error"},
    )


def decided_message(decision: Decision) -> str:
    return DECIDED_MESSAGES[Verb(decision.verb)]


def _parse_arg(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def decision_input(data: Mapping[str, Any], *, version: int) -> DecisionInput:
    """A decision from a form post or a socket message (the same field names)."""
    args = {
        key.removeprefix("arg__"): _parse_arg(str(value))
        for key, value in data.items()
        if key.startswith("arg__")
    }
    draft = data.get("draft_response")
    return DecisionInput(
        verb=str(data.get("verb", "")),
        version=version,
        reason=str(data.get("reason", "")),
        note=str(data.get("note", "")),
        response_text=str(data.get("response_text", "")),
        draft_response=None if draft is None else str(draft).replace("\r\n", "\n"),
        action_args=args or None,
        escalate_to_skill=str(data.get("escalate_to_skill", "")),
        escalate_to_team=str(data.get("escalate_to_team", "")),
        escalate_to_supervisor=str(data.get("escalate_to_supervisor", "")) in ("1", "on", "true"),
    )


class RowCache:
    """Inbox rows' HTML by what they show. The template engine costs about half a
    millisecond a row, most of a live inbox update, while building the key below costs a
    few microseconds: it holds every value the row template reads, and the minute, for
    the "in 12 min" texts (the page's script also counts them down). So a hit is the HTML a
    render would give, whoever changed the case and however, but for relative times that
    may be up to a minute old."""

    def __init__(self, limit: int = 5000) -> None:
        self.rows: OrderedDict[Hashable, str] = OrderedDict()
        self.limit = limit
        self.lock = threading.Lock()  # page views and consoles render in several threads

    @staticmethod
    def key(case: Any) -> Hashable:
        customer, assignee = case.customer, case.assignee
        return (
            case.pk,
            case.status,
            case.priority,
            case.sla_resolve_due,
            case.sla_warned_at,
            case.sla_breached_at,
            case.task_type.name,
            customer and (customer.name, customer.external_id, customer.tier),
            case.summary,
            json.dumps(case.triggers, sort_keys=True),
            case.confidence,
            case.created_at,
            assignee and (assignee.get_full_name(), assignee.get_username()),
            int(time.time() // 60),
        )

    def row(self, case: Any) -> str:
        key = self.key(case)
        with self.lock:
            html = self.rows.get(key)
            if html is not None:
                self.rows.move_to_end(key)
                return html
        html = render_to_string("console/inbox.html#row", {"case": case})
        with self.lock:
            self.rows[key] = html
            while len(self.rows) > self.limit:
                self.rows.popitem(last=False)
        return html


INBOX_ROWS = RowCache()


def inbox_context(*, user: Any, query: Mapping[str, str]) -> dict[str, Any]:
    filters = selectors.InboxFilters.from_query(query, user=user)
    page = selectors.inbox_for_reviewer(user=user, filters=filters, after=query.get("after"))
    return {
        "page": page,
        "rows_html": [INBOX_ROWS.row(case) for case in page.rows],
        "filters": filters,
        "after": query.get("after") or "",
        "sees_all": selectors.sees_all(user),
        "task_types": selectors.task_types_active(),
        "trigger_codes": selectors.TRIGGER_CODES,
        "statuses": selectors.INBOX_STATUSES,
        "nav": filters.view,
    }


def inbox_audience(*, user: Any, query: Mapping[str, str]) -> tuple[Any, ...]:
    """Who sees exactly the rows `inbox_rows` renders for this user and query: consoles with
    equal audiences are served one shared render (console/consumers.py). It follows what
    `selectors.inbox_for_reviewer` narrows by (the view as the user may have it, their
    skills for the queue, themselves for their own cases); when in doubt, the user alone."""
    filters = selectors.InboxFilters.from_query(query, user=user)
    shape = (filters, query.get("after") or "", selectors.sees_all(user))
    if not selectors.may_work(user) or filters.view == "mine":
        return ("user", user.pk, *shape)
    if filters.view == "queue" and not shape[2] and hasattr(user, "reviewer_profile"):
        from routing.models import ReviewerSkill

        skills = ReviewerSkill.objects.filter(profile__user=user).values_list(
            "skill__slug", flat=True
        )
        return ("queue", frozenset(skills), *shape)
    return (filters.view, *shape)  # the whole queue, all cases, the review queue


def inbox_rows(*, user: Any, query: Mapping[str, str]) -> str:
    context = {**inbox_context(user=user, query=query), "oob": True}
    return render_to_string("console/inbox.html#rows", context)


def p1_notification(*, user: Any, escalation_id: int) -> str:
    case = selectors.escalations_visible_to(user=user).filter(pk=escalation_id).first()
    if case is None or case.priority != Priority.P1:
        return ""
    return render_to_string("console/_p1_alert.html", {"case": case})


def case_context(*, user: Any, escalation_id: int, csrf_token: str = "") -> dict[str, Any]:
    briefing = selectors.briefing_for_user(user=user, escalation_id=escalation_id)
    context = {
        "b": briefing,
        "case": briefing.case,
        "viewers": viewers.viewers_of(escalation_id=escalation_id, exclude_user_id=user.pk),
    }
    if csrf_token:  # a page render gets the token from the request instead
        context["csrf_token"] = csrf_token
    return context


def case_live_parts(
    *, user: Any, escalation_id: int, shown_version: int | None, csrf_token: str
) -> tuple[str, int | None]:
    """The parts of an open briefing that change; the decision panel only when the case
    version moved, so nobody loses what they are typing to a new transcript turn."""
    try:
        context = case_context(user=user, escalation_id=escalation_id, csrf_token=csrf_token)
    except BatonError:
        return notice("This case is no longer yours to see.", level="error"), None
    context["oob"] = True
    names = ["head", "transcript", "deliveries", "timeline", "viewers"]
    version = context["case"].version
    if version != shown_version:
        names.append("actions")
    html = "".join(render_to_string(f"console/case.html#{name}", context) for name in names)
    return html, version
