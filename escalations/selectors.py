"""Reads: the policy in force, an integration's own cases, the task types it may use."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from escalations.errors import InvalidInput, NotFound
from escalations.models import Escalation, Integration, PolicyRule, TaskType
from escalations.policy import Condition, CustomerContext, RulePolicy, TaskTypePolicy


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


def customer_context(*, integration: Integration, customer_external_id: str | None) -> CustomerContext:
    window = settings.BATON_REPEAT_WINDOW_HOURS
    recent = 0
    if customer_external_id:
        recent = Escalation.objects.filter(
            integration=integration,
            customer__external_id=customer_external_id,
            created_at__gte=timezone.now() - timedelta(hours=window),
        ).count()
    return CustomerContext(
        recent_escalations=recent,
        window_hours=window,
        repeat_limit=settings.BATON_REPEAT_LIMIT,
        attempts_limit=settings.BATON_ATTEMPTS_LIMIT,
    )


def escalation_for_integration(*, integration: Integration, escalation_id: int) -> Escalation:
    """An integration's own case; another's is as good as missing (no existence leak)."""
    escalation = (
        Escalation.objects.select_related("task_type", "customer", "feedback")
        .filter(pk=escalation_id, integration=integration)
        .first()
    )
    if escalation is None:
        raise NotFound(f"No escalation {escalation_id} for this integration.")
    return escalation


def recent_escalations_for_user(*, user: object, limit: int = 50) -> QuerySet[Escalation]:
    """The console's landing list: newest cases first, for users who work the queue."""
    if not getattr(user, "has_perm", lambda _p: False)("escalations.work_queue"):
        return Escalation.objects.none()
    return Escalation.objects.select_related("task_type", "customer").order_by("-created_at", "-id")[
        :limit
    ]


def escalation_for_user(*, user: object, escalation_id: int) -> Escalation:
    if not getattr(user, "has_perm", lambda _p: False)("escalations.work_queue"):
        raise NotFound(f"No escalation {escalation_id}.")
    escalation = (
        Escalation.objects.select_related("task_type", "customer", "integration")
        .filter(pk=escalation_id)
        .first()
    )
    if escalation is None:
        raise NotFound(f"No escalation {escalation_id}.")
    return escalation
