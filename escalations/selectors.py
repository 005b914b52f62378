"""Reads: the policy in force, an integration's own cases, the task types it may use."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import F, Prefetch, Q, QuerySet
from django.db.models.fields.tuple_lookups import TupleGreaterThanOrEqual
from django.utils import timezone

from escalations.errors import InvalidInput, NotFound
from escalations.models import (
    AuditEvent,
    Decision,
    Escalation,
    Integration,
    Message,
    PolicyRule,
    Status,
    TaskType,
    Verb,
    WebhookDelivery,
)
from escalations.policy import Condition, CustomerContext, RulePolicy, TaskTypePolicy, sentiment_of


def task_types_active() -> QuerySet[TaskType]:
    return TaskType.objects.filter(active=True).order_by("slug")


def task_type_by_slug(*, slug: str) -> TaskType:
    task_type = TaskType.objects.filter(slug=slug, active=True).first()
    if task_type is None:
        known = ", ".join(task_types_active().values_list("slug", flat=True)) or "none"
        raise InvalidInput(
            f"Unknown task type {slug!r}.",
            errors=[{"field": "task_type", "message": f"unknown task type; known: {known}"}],
        )
    return task_type


def task_type_policy(*, task_type: TaskType) -> TaskTypePolicy:
    return TaskTypePolicy(
        slug=task_type.slug,
        level=task_type.level,
        autonomy_threshold=task_type.autonomy_threshold,
        review_threshold=task_type.review_threshold,
        sentiment_threshold=task_type.sentiment_threshold,
        default_priority=task_type.default_priority,
        sample_rate=task_type.sample_rate,
        version=task_type.version,
        required_skills=tuple(task_type.required_skills or ()),
    )


def rules_in_force(*, task_type: TaskType) -> list[RulePolicy]:
    """Enabled rules for every task type, and those naming this one; one query."""
    rules = (
        PolicyRule.objects.filter(enabled=True)
        .filter(Q(task_types__isnull=True) | Q(task_types=task_type))
        .distinct()
        .order_by("code")
    )
    return [
        RulePolicy(
            code=rule.code,
            name=rule.name,
            level=rule.level,
            priority=rule.priority,
            skill=rule.skill,
            hard=rule.hard,
            keywords=tuple(rule.keywords or ()),
            pattern=rule.pattern,
            conditions=tuple(
                Condition(key=c["key"], op=c["op"], value=c.get("value"))
                for c in rule.conditions or ()
            ),
            action_names=tuple(rule.action_names or ()),
            version=rule.version,
        )
        for rule in rules
    ]


def customer_context(
    *,
    integration: Integration,
    customer_external_id: str | None,
    exclude_escalation_id: int | None = None,
) -> CustomerContext:
    """The customer's other escalations in the window (a case never counts itself)."""
    window = settings.BATON_REPEAT_WINDOW_HOURS
    recent = 0
    if customer_external_id:
        others = Escalation.objects.filter(
            integration=integration,
            customer__external_id=customer_external_id,
            created_at__gte=timezone.now() - timedelta(hours=window),
        )
        if exclude_escalation_id is not None:
            others = others.exclude(pk=exclude_escalation_id)
        recent = others.count()
    return CustomerContext(
        recent_escalations=recent,
        window_hours=window,
        repeat_limit=settings.BATON_REPEAT_LIMIT,
        attempts_limit=settings.BATON_ATTEMPTS_LIMIT,
    )


def escalation_for_integration(*, integration: Integration, escalation_id: int) -> Escalation:
    """An integration's own case; another's is as good as missing (no existence leak)."""
    escalation = (
        Escalation.objects.select_related("task_type", "customer", "feedback", "assignee")
        .filter(pk=escalation_id, integration=integration)
        .first()
    )
    if escalation is None:
        raise NotFound(f"No escalation {escalation_id} for this integration.")
    return escalation


# --- The console ---------------------------------------------------------------------------

INBOX_VIEWS = ("mine", "queue", "all", "review")
INBOX_STATUSES = (
    Status.QUEUED,
    Status.ASSIGNED,
    Status.IN_REVIEW,
    Status.RESOLVED,
    Status.CANCELLED,
)  # auto-resolved cases have their own after-the-fact review queue
LIVE_STATUSES = (Status.QUEUED, Status.ASSIGNED, Status.IN_REVIEW)


def may_work(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False) and user.has_perm("escalations.work_queue")
    )


def sees_all(user: Any) -> bool:
    return bool(user.has_perm("escalations.view_all_escalations"))


def escalations_visible_to(*, user: Any) -> QuerySet[Escalation]:
    """Anyone who works the queue may read any case (a colleague's too, read-only: the
    decision panel checks who holds it); lists are narrowed by the inbox views."""
    if not may_work(user):
        return Escalation.objects.none()
    return Escalation.objects.all()


@dataclass(frozen=True)
class InboxFilters:
    view: str = "mine"
    priority: int | None = None
    task_type: str = ""
    status: str = ""
    trigger: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, user: Any) -> InboxFilters:
        """Parse a query string leniently: an unknown value is dropped, never a 500."""
        view = query.get("view") or "mine"
        if view not in INBOX_VIEWS or (view == "all" and not sees_all(user)):
            view = "mine"
        priority_raw = query.get("priority") or ""
        priority = int(priority_raw) if priority_raw in {"1", "2", "3", "4"} else None
        status = query.get("status") or ""
        if status not in INBOX_STATUSES:
            status = ""
        trigger = query.get("trigger") or ""
        if trigger not in TRIGGER_CODES:
            trigger = ""
        task_type = (query.get("task_type") or "")[:64]
        return cls(
            view=view, priority=priority, task_type=task_type, status=status, trigger=trigger
        )

    def as_query(self, **overrides: Any) -> str:
        values = {
            "view": self.view,
            "priority": self.priority or "",
            "task_type": self.task_type,
            "status": self.status,
            "trigger": self.trigger,
            **overrides,
        }
        return urlencode({k: v for k, v in values.items() if v not in ("", None)})


TRIGGER_CODES = (
    "low_confidence",
    "explicit_request",
    "sentiment",
    "policy_rule",
    "repeated_failure",
    "agent_requested",
    "timeout",
)


@dataclass(frozen=True)
class InboxPage:
    rows: list[Escalation]
    next_cursor: str | None
    filters: InboxFilters


def _cursor_of(escalation: Escalation) -> str:
    due = escalation.sla_resolve_due
    return f"{escalation.priority}~{due.isoformat() if due else ''}~{escalation.pk}"


def _parse_cursor(cursor: str) -> tuple[int, datetime, int]:
    try:
        priority, due, pk = cursor.split("~")
        return int(priority), datetime.fromisoformat(due), int(pk)
    except ValueError:
        raise InvalidInput(
            "That page link is not valid.", errors=[{"field": "after", "message": "bad cursor"}]
        ) from None


def _takeable(cases: QuerySet[Escalation], *, user: Any) -> QuerySet[Escalation]:
    """A rostered reviewer's queue leaves out cases needing a skill they lack; supervisors
    and people not on the roster see the whole queue."""
    from routing.models import ReviewerSkill, Skill

    if sees_all(user) or not hasattr(user, "reviewer_profile"):
        return cases
    mine = ReviewerSkill.objects.filter(profile__user=user).values_list("skill__slug", flat=True)
    for slug in Skill.objects.exclude(slug__in=mine).values_list("slug", flat=True):
        cases = cases.exclude(skill_codes__contains=f" {slug} ")
    return cases


def _review_cursor_of(escalation: Escalation) -> str:
    return f"{escalation.created_at.isoformat()}~{escalation.pk}"


def _review_page(
    cases: QuerySet[Escalation], *, filters: InboxFilters, after: str | None, limit: int
) -> InboxPage:
    """Sampled L1 cases awaiting their after-the-fact review (DESIGN §4), oldest first:
    they have no SLA deadline, and the longest unreviewed is the riskiest."""
    cases = cases.filter(
        status=Status.AUTO_RESOLVED, sampled_for_review=True, reviewed_at__isnull=True
    )
    if filters.priority:
        cases = cases.filter(priority=filters.priority)
    if filters.task_type:
        cases = cases.filter(task_type__slug=filters.task_type)
    if filters.trigger:
        cases = cases.filter(trigger_codes__contains=f" {filters.trigger} ")
    if after:
        try:
            created_raw, pk_raw = after.split("~")
            created, pk = datetime.fromisoformat(created_raw), int(pk_raw)
        except ValueError:
            raise InvalidInput(
                "That page link is not valid.",
                errors=[{"field": "after", "message": "bad cursor"}],
            ) from None
        cases = cases.filter(Q(created_at__gt=created) | Q(created_at=created, pk__gt=pk))
    rows = list(cases.order_by("created_at", "id")[: limit + 1])
    next_cursor = _review_cursor_of(rows[limit - 1]) if len(rows) > limit else None
    return InboxPage(rows=rows[:limit], next_cursor=next_cursor, filters=filters)


# What a row of the inbox never shows: the handoff package and its parts (kilobytes of
# transcript and context a case) and the customer's CRM record, read by the briefing only.
INBOX_DEFERRED = (
    "package",
    "reasoning",
    "proposed_action",
    "draft_response",
    "process_state",
    "environment",
    "suggested_next_steps",
    "attributes",
    "policy_snapshot",
    "customer__profile",
    "customer__history",
)


def inbox_for_reviewer(
    *, user: Any, filters: InboxFilters, after: str | None = None, limit: int = 50
) -> InboxPage:
    """A page of the inbox, priority band then SLA deadline; keyset pagination, no OFFSET."""
    if not may_work(user):
        return InboxPage(rows=[], next_cursor=None, filters=filters)
    cases = Escalation.objects.select_related("task_type", "customer", "assignee").defer(
        *INBOX_DEFERRED
    )
    if filters.view == "review":
        return _review_page(cases, filters=filters, after=after, limit=limit)
    if filters.view == "mine":
        cases = cases.filter(assignee=user)
    elif filters.view == "queue":
        cases = _takeable(cases.filter(status=Status.QUEUED), user=user)
    elif not sees_all(user):
        return InboxPage(rows=[], next_cursor=None, filters=filters)
    if filters.status:
        cases = cases.filter(status=filters.status)
    elif filters.view != "queue":  # the queue is the queued cases already
        cases = cases.filter(status__in=LIVE_STATUSES)
    if filters.priority:
        cases = cases.filter(priority=filters.priority)
    if filters.task_type:
        cases = cases.filter(task_type__slug=filters.task_type)
    if filters.trigger:
        cases = cases.filter(trigger_codes__contains=f" {filters.trigger} ")
    if after:
        # A row comparison, not the equivalent ORs: PostgreSQL starts the index scan at the
        # cursor instead of reading every earlier row of the view and filtering it out, so
        # a deep page costs what the first one does (Django writes the ORs for SQLite).
        # Written as "at or after the cursor row, but not that row" because the planner
        # estimates a row comparison by its first column alone: "> (4, …)" in the last
        # priority band, where every deep page is, looks like no rows at all, and it then
        # sorts a hash join instead of walking the index; ">= (4, …)" is estimated sanely.
        priority, due, pk = _parse_cursor(after)
        cases = cases.filter(
            TupleGreaterThanOrEqual(
                (F("priority"), F("sla_resolve_due"), F("id")), (priority, due, pk)
            )
        ).exclude(pk=pk)
    rows = list(cases.order_by("priority", "sla_resolve_due", "id")[: limit + 1])
    next_cursor = _cursor_of(rows[limit - 1]) if len(rows) > limit else None
    return InboxPage(rows=rows[:limit], next_cursor=next_cursor, filters=filters)


@dataclass(frozen=True)
class Briefing:
    case: Escalation
    messages: list[Message]
    decisions: list[Decision]
    final_decision: Decision | None
    deliveries: list[WebhookDelivery]
    timeline: list[AuditEvent]
    previous_cases: list[Escalation]
    can_accept: bool
    allowed_verbs: list[str]


def _allowed_verbs(case: Escalation, user: Any) -> list[str]:
    held_by_other = case.assignee_id not in (None, user.pk) and not user.has_perm(
        "escalations.reassign_escalation"
    )
    if held_by_other:
        return []
    if case.status == Status.AUTO_RESOLVED:
        return [] if case.reviewed_at else [Verb.APPROVE, Verb.REVERSE]
    if case.status not in LIVE_STATUSES:
        return []
    verbs = [Verb.APPROVE, Verb.EDIT, Verb.REJECT, Verb.RESPOND, Verb.TAKE_OVER, Verb.ESCALATE]
    if case.options:
        allowed = set(case.options) | {Verb.TAKE_OVER, Verb.ESCALATE}
        if Verb.APPROVE in allowed:
            allowed.add(Verb.EDIT)
        verbs = [v for v in verbs if v in allowed]
    return [str(v) for v in verbs]


def briefing_for_user(*, user: Any, escalation_id: int) -> Briefing:
    """Everything a reviewer needs on one page, or NotFound if the case is not theirs to see."""
    case = (
        escalations_visible_to(user=user)
        .select_related("task_type", "customer", "integration", "assignee")
        .filter(pk=escalation_id)
        .first()
    )
    if case is None:
        raise NotFound(f"No case {escalation_id} that you may see.")
    decisions = list(case.decisions.select_related("reviewer").order_by("created_at", "id"))
    previous: list[Escalation] = []
    if case.customer_id:
        previous = list(
            Escalation.objects.filter(customer_id=case.customer_id)
            .exclude(pk=case.pk)
            .select_related("task_type")
            .prefetch_related(
                Prefetch(
                    "decisions",
                    queryset=Decision.objects.filter(final=True),
                    to_attr="final_decisions",
                )
            )
            .order_by("-created_at")[:10]
        )
    messages = list(case.messages.order_by("seq"))
    for message in messages:
        # A marker on every customer turn: the agent's score when sent, else VADER's.
        message.display_sentiment = message.sentiment  # type: ignore[attr-defined]
        if message.sentiment is None and message.role == Message.Role.CUSTOMER:
            message.display_sentiment = sentiment_of(message.text)  # type: ignore[attr-defined]
    return Briefing(
        case=case,
        messages=messages,
        decisions=decisions,
        final_decision=next((d for d in decisions if d.final), None),
        deliveries=list(case.deliveries.prefetch_related("attempt_log").order_by("created_at")),
        timeline=list(case.audit_events.select_related("user").order_by("seq")),
        previous_cases=previous,
        can_accept=case.status in (Status.QUEUED, Status.ASSIGNED)
        and case.assignee_id in (None, user.pk),
        allowed_verbs=_allowed_verbs(case, user),
    )
