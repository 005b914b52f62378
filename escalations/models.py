"""The case and its policy: task types, rules, integrations, customers, escalations."""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class Level(models.IntegerChoices):
    AUTONOMOUS = 1, "L1 autonomous"
    DRAFT_REVIEW = 2, "L2 draft & review"
    FLAG_STOP = 3, "L3 flag & stop"
    ALERT = 4, "L4 alert"


class Priority(models.IntegerChoices):
    P1 = 1, "P1 critical"
    P2 = 2, "P2 high"
    P3 = 3, "P3 normal"
    P4 = 4, "P4 low"


class Status(models.TextChoices):
    RECEIVED = "received", "Received"
    AUTO_RESOLVED = "auto_resolved", "Auto-resolved"
    CANCELLED = "cancelled", "Cancelled"
    QUEUED = "queued", "Queued"
    ASSIGNED = "assigned", "Assigned"
    IN_REVIEW = "in_review", "In review"
    RESOLVED = "resolved", "Resolved"


OPEN_STATUSES = (Status.RECEIVED, Status.QUEUED, Status.ASSIGNED, Status.IN_REVIEW)
CLOSED_STATUSES = (Status.AUTO_RESOLVED, Status.CANCELLED, Status.RESOLVED)


class Mode(models.TextChoices):
    SYNC = "sync", "Sync (agent waits)"
    ASYNC = "async", "Async (durable callback)"
    TAKEOVER = "takeover", "Takeover (human takes the conversation)"


class Instruction(models.TextChoices):
    PROCEED = "proceed", "Proceed"
    WAIT = "wait", "Wait for the decision"
    STOP = "stop", "Stop: a human takes over"


unit_interval = [MinValueValidator(0.0), MaxValueValidator(1.0)]


class TaskType(models.Model):
    slug = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    level = models.PositiveSmallIntegerField(choices=Level.choices, default=Level.DRAFT_REVIEW)
    autonomy_threshold = models.FloatField(default=0.85, validators=unit_interval)
    review_threshold = models.FloatField(default=0.70, validators=unit_interval)
    sentiment_threshold = models.FloatField(
        default=-0.4,
        validators=[MinValueValidator(-1.0), MaxValueValidator(1.0)],
        help_text="Customer sentiment (-1..1) below which a human reviews the case.",
    )
    default_priority = models.PositiveSmallIntegerField(
        choices=Priority.choices, default=Priority.P3
    )
    sample_rate = models.FloatField(
        default=0.05,
        validators=unit_interval,
        help_text="Share of L1 (autonomous) cases sampled for after-the-fact review.",
    )
    required_skills = models.JSONField(default=list, blank=True)
    active = models.BooleanField(default=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(review_threshold__lte=models.F("autonomy_threshold")),
                name="tasktype_review_below_autonomy",
            ),
            models.CheckConstraint(condition=Q(level__gte=1, level__lte=4), name="tasktype_level"),
            models.CheckConstraint(
                condition=Q(default_priority__gte=1, default_priority__lte=4),
                name="tasktype_priority",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.slug})"

    def clean(self) -> None:
        if self.review_threshold > self.autonomy_threshold:
            raise ValidationError(
                {"review_threshold": "The review threshold must not exceed the autonomy one."}
            )


CONDITION_OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "contains")


class PolicyRule(models.Model):
    """An admin's rule: text, attribute and action tests that, together, raise a case."""

    code = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    hard = models.BooleanField(
        default=False, help_text="Hard rules are never lowered or disabled automatically."
    )
    task_types = models.ManyToManyField(
        TaskType, blank=True, related_name="rules", help_text="Empty: every task type."
    )
    keywords = models.JSONField(
        default=list, blank=True, help_text="Words or phrases, matched whole and case-blind."
    )
    pattern = models.CharField(max_length=500, blank=True, help_text="A regular expression.")
    conditions = models.JSONField(
        default=list,
        blank=True,
        help_text='Over attributes, all must hold: [{"key": "amount", "op": "gt", "value": 500}]',
    )
    action_names = models.JSONField(
        default=list, blank=True, help_text="Proposed action names that fire the rule."
    )
    level = models.PositiveSmallIntegerField(choices=Level.choices, null=True, blank=True)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices, null=True, blank=True)
    skill = models.SlugField(max_length=64, blank=True)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["code"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.pattern:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                errors["pattern"] = f"Not a valid regular expression: {exc}."
        if not isinstance(self.keywords, list) or not all(
            isinstance(k, str) and k.strip() for k in self.keywords
        ):
            errors["keywords"] = "Keywords must be a list of non-empty strings."
        if not isinstance(self.action_names, list) or not all(
            isinstance(a, str) for a in self.action_names
        ):
            errors["action_names"] = "Action names must be a list of strings."
        if not isinstance(self.conditions, list) or not all(
            isinstance(c, dict) and c.get("key") and c.get("op") in CONDITION_OPERATORS
            for c in self.conditions
        ):
            errors["conditions"] = (
                "Conditions must be a list of {key, op, value} with op one of "
                + ", ".join(CONDITION_OPERATORS)
                + "."
            )
        if not (self.keywords or self.pattern or self.conditions or self.action_names):
            errors["keywords"] = "A rule needs at least one keyword, pattern, condition or action."
        if self.level is None and self.priority is None and not self.skill:
            errors["level"] = "A rule must set a level, a priority or a skill."
        if errors:
            raise ValidationError(errors)


class Integration(models.Model):
    """An AI agent system that hands cases to Baton."""

    name = models.CharField(max_length=120, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=16, help_text="Shown to tell tokens apart.")
    webhook_secret = models.CharField(max_length=128, blank=True)
    default_callback_url = models.URLField(max_length=500, blank=True)
    disabled_callback_urls = models.JSONField(
        default=list, blank=True, help_text="Endpoints that answered 410 Gone: no more deliveries."
    )
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    integration = models.ForeignKey(Integration, on_delete=models.PROTECT, related_name="customers")
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200, blank=True)
    tier = models.CharField(max_length=60, blank=True)
    language = models.CharField(max_length=16, blank=True)
    profile = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "external_id"], name="customer_unique_per_integration"
            )
        ]

    def __str__(self) -> str:
        return self.name or self.external_id


class Escalation(models.Model):
    """One handoff from an agent: the package as sent, and what Baton made of it."""

    integration = models.ForeignKey(
        Integration, on_delete=models.PROTECT, related_name="escalations"
    )
    external_id = models.CharField(max_length=200)
    package_sha256 = models.CharField(max_length=64)
    package = models.JSONField(help_text="The handoff package exactly as validated.")
    task_type = models.ForeignKey(TaskType, on_delete=models.PROTECT, related_name="escalations")
    task_type_version = models.PositiveIntegerField()
    customer = models.ForeignKey(
        Customer, on_delete=models.PROTECT, related_name="escalations", null=True, blank=True
    )

    summary = models.TextField()
    reason = models.TextField()
    confidence = models.FloatField(validators=unit_interval)
    reasoning = models.JSONField(default=dict, blank=True)
    proposed_action = models.JSONField(null=True, blank=True)
    draft_response = models.TextField(blank=True)
    process_state = models.JSONField(default=dict, blank=True)
    environment = models.JSONField(default=dict, blank=True)
    suggested_next_steps = models.JSONField(default=list, blank=True)
    flags = models.JSONField(default=list, blank=True)
    options = models.JSONField(default=list, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    callback_url = models.URLField(max_length=500, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.SYNC)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED)
    level = models.PositiveSmallIntegerField(choices=Level.choices)
    priority = models.PositiveSmallIntegerField(choices=Priority.choices)
    triggers = models.JSONField(default=list, blank=True)
    trigger_codes = models.CharField(
        max_length=300, blank=True, help_text='" code code ": the trigger codes, for filtering.'
    )
    instruction = models.CharField(max_length=16, choices=Instruction.choices)
    required_skills = models.JSONField(default=list, blank=True)
    skill_codes = models.CharField(
        max_length=500, blank=True, help_text='" skill skill ": the required skills, for filtering.'
    )
    sampled_for_review = models.BooleanField(default=False)
    policy_snapshot = models.JSONField(
        default=dict, blank=True, help_text="Task type and rule versions in force on arrival."
    )
    version = models.PositiveIntegerField(default=1, help_text="Optimistic lock for decisions.")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="assigned_escalations",
    )
    offered_at = models.DateTimeField(null=True, blank=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    reviewed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a sampled L1 case was reviewed after the fact."
    )
    language = models.CharField(max_length=16, blank=True, help_text="The customer's language.")
    handoff_method = models.CharField(
        max_length=16,
        blank=True,
        choices=[("warm", "Warm"), ("queued", "Queued"), ("callback", "Callback")],
    )
    handoff_eta = models.DateTimeField(
        null=True, blank=True, help_text="When a person is expected to take the case."
    )
    queue_position = models.PositiveIntegerField(null=True, blank=True)
    offer_count = models.PositiveSmallIntegerField(default=0)
    declined_by = models.JSONField(
        default=list, blank=True, help_text="Reviewers whose offer timed out, not offered again."
    )
    sla_warned_at = models.DateTimeField(null=True, blank=True)
    sla_breached_at = models.DateTimeField(null=True, blank=True)
    escalation_count = models.PositiveSmallIntegerField(
        default=0, help_text="Times a reviewer re-escalated the case."
    )

    sla_accept_due = models.DateTimeField(null=True, blank=True)
    sla_resolve_due = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["priority", "sla_resolve_due", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["integration", "external_id"], name="escalation_idempotency_key"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0.0, confidence__lte=1.0),
                name="escalation_confidence_unit",
            ),
            models.CheckConstraint(
                condition=Q(level__gte=1, level__lte=4), name="escalation_level"
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=1, priority__lte=4), name="escalation_priority"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "priority", "sla_resolve_due", "id"], name="esc_queue"),
            # The live inbox (queued, offered or in review, all three at once) in its own
            # order: a status IN list cannot walk esc_queue in order, so it would sort.
            models.Index(
                fields=["priority", "sla_resolve_due", "id"],
                condition=Q(status__in=["queued", "assigned", "in_review"]),
                name="esc_live_inbox",
            ),
            models.Index(fields=["customer", "created_at"], name="esc_customer_recent"),
            models.Index(fields=["task_type", "created_at"], name="esc_tasktype_recent"),
            models.Index(fields=["assignee", "status"], name="esc_assignee"),
            models.Index(fields=["status", "offered_at"], name="esc_offered"),
        ]
        permissions = [
            ("work_queue", "Can work the review queue"),
            ("view_all_escalations", "Can see every case"),
            ("reassign_escalation", "Can reassign cases"),
            ("manage_policy", "Can edit the escalation policy"),
            ("manage_integrations", "Can manage agent integrations"),
            ("view_audit", "Can read and export the audit trail"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.task_type.slug} ({self.get_status_display()})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @staticmethod
    def codes_of(triggers: list[dict[str, Any]]) -> str:
        return Escalation.spaced(t["code"] for t in triggers)

    @staticmethod
    def spaced(codes: Any) -> str:
        """' a b ': codes a query can find with `contains=" a "` on any database."""
        unique = dict.fromkeys(codes)
        return f" {' '.join(unique)} " if unique else ""

    def set_required_skills(self, skills: Any) -> None:
        self.required_skills = list(dict.fromkeys(skills))
        self.skill_codes = Escalation.spaced(self.required_skills)


class Message(models.Model):
    class Role(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"
        TOOL = "tool", "Tool"

    class Source(models.TextChoices):
        PACKAGE = "package", "In the handoff package"
        APPENDED = "appended", "Appended while waiting"

    escalation = models.ForeignKey(Escalation, on_delete=models.CASCADE, related_name="messages")
    seq = models.PositiveIntegerField()
    role = models.CharField(max_length=16, choices=Role.choices)
    text = models.TextField()
    at = models.DateTimeField(null=True, blank=True)
    sentiment = models.FloatField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PACKAGE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["escalation", "seq"]
        constraints = [
            models.UniqueConstraint(fields=["escalation", "seq"], name="message_seq_unique")
        ]

    def __str__(self) -> str:
        return f"{self.role}: {self.text[:40]}"


class Feedback(models.Model):
    """The customer's satisfaction after the handoff, as the agent reports it."""

    escalation = models.OneToOneField(Escalation, on_delete=models.CASCADE, related_name="feedback")
    csat = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    effort = models.PositiveSmallIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(7)]
    )
    comment = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(csat__isnull=True) | Q(csat__gte=1, csat__lte=5), name="feedback_csat"
            ),
            models.CheckConstraint(
                condition=Q(effort__isnull=True) | Q(effort__gte=1, effort__lte=7),
                name="feedback_effort",
            ),
        ]

    def __str__(self) -> str:
        return f"Feedback on #{self.escalation_id}: csat {self.csat}, effort {self.effort}"


class AuditEvent(models.Model):
    """Append-only, hash-chained record of every state change (DESIGN §9)."""

    class ActorType(models.TextChoices):
        AGENT = "agent", "AI agent"
        USER = "user", "Person"
        SYSTEM = "system", "Baton"

    seq = models.PositiveBigIntegerField(unique=True)
    created_at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_label = models.CharField(max_length=200)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    integration = models.ForeignKey(
        Integration, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    verb = models.CharField(max_length=64)
    escalation = models.ForeignKey(
        Escalation, on_delete=models.PROTECT, null=True, blank=True, related_name="audit_events"
    )
    object_type = models.CharField(max_length=64, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    data = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        indexes = [models.Index(fields=["escalation", "seq"], name="audit_case")]

    def __str__(self) -> str:
        return f"{self.seq} {self.verb} by {self.actor_label}"


class Verb(models.TextChoices):
    APPROVE = "approve", "Approve"
    EDIT = "edit", "Edit and approve"
    REJECT = "reject", "Reject"
    RESPOND = "respond", "Respond"
    TAKE_OVER = "take_over", "Take over"
    ESCALATE = "escalate", "Escalate"
    REVERSE = "reverse", "Reverse"


# What the agent is told to do for each verb that ends a case.
AGENT_INSTRUCTIONS = {
    Verb.APPROVE: "execute",
    Verb.EDIT: "execute",
    Verb.REJECT: "do_not_execute",
    Verb.RESPOND: "send_response",
    Verb.TAKE_OVER: "stop",
    Verb.REVERSE: "undo",
}


class Decision(models.Model):
    """What a person decided. At most one final decision per case (a database constraint)."""

    escalation = models.ForeignKey(Escalation, on_delete=models.PROTECT, related_name="decisions")
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="decisions"
    )
    verb = models.CharField(max_length=16, choices=Verb.choices)
    final = models.BooleanField(help_text="Ends the case and goes back to the agent.")
    case_version = models.PositiveIntegerField(help_text="The case version the person saw.")
    reason = models.TextField(blank=True)
    note = models.TextField(blank=True)
    response_text = models.TextField(blank=True)
    action = models.JSONField(null=True, blank=True, help_text="The action as approved.")
    draft_response = models.TextField(blank=True, help_text="The draft as approved.")
    diff = models.JSONField(default=dict, blank=True)
    edit_size = models.PositiveIntegerField(
        default=0, help_text="Of an edit: draft lines added or removed plus arguments changed."
    )
    escalate_to = models.JSONField(default=dict, blank=True)
    seconds_to_decide = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["escalation"], condition=Q(final=True), name="one_final_decision_per_case"
            )
        ]
        indexes = [models.Index(fields=["reviewer", "created_at"], name="decision_reviewer")]

    def __str__(self) -> str:
        return f"{self.verb} on #{self.escalation_id}"

    @property
    def agent_instruction(self) -> str:
        return AGENT_INSTRUCTIONS.get(Verb(self.verb), "wait")


class WebhookDelivery(models.Model):
    """Outbox row: written in the decision's transaction, driven by Celery until delivered."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Gave up"
        DISABLED = "disabled", "Endpoint disabled (410)"

    escalation = models.ForeignKey(Escalation, on_delete=models.PROTECT, related_name="deliveries")
    decision = models.ForeignKey(
        Decision, on_delete=models.PROTECT, related_name="deliveries", null=True, blank=True
    )
    webhook_id = models.CharField(max_length=64, unique=True)
    event_type = models.CharField(max_length=64)
    url = models.URLField(max_length=500)
    payload = models.JSONField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="delivery_due")]

    def __str__(self) -> str:
        return f"{self.webhook_id} → {self.url} ({self.state})"


class DeliveryAttempt(models.Model):
    delivery = models.ForeignKey(
        WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log"
    )
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField(null=True, blank=True)
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["delivery", "number"]
        constraints = [
            models.UniqueConstraint(fields=["delivery", "number"], name="attempt_number_unique")
        ]

    def __str__(self) -> str:
        return f"attempt {self.number} of {self.delivery_id}: {self.status_code or self.error}"
