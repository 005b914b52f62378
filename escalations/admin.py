"""The Django admin (/django-admin/) as a back office over the case models.

Roles decide what each person may do here, as everywhere else: the policy (task types,
rules) needs `manage_policy`, integrations `manage_integrations`, cases `view_all_escalations`
and the audit trail `view_audit`. Cases, customers, messages and feedback are read-only:
their state changes only through the services, so every change is audited. Policy and
integration edits made here are audited too, in the admin's own transaction; a task type or
rule that changes is versioned so each case keeps the version it was judged by.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models, transaction
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest
from django.utils.html import format_html

from escalations import policy_admin, services
from escalations.audit import Actor, audit_record
from escalations.models import (
    AuditEvent,
    Customer,
    Decision,
    DeliveryAttempt,
    Escalation,
    Feedback,
    Integration,
    Message,
    PolicyRule,
    TaskType,
    WebhookDelivery,
)

MANAGE_POLICY = "escalations.manage_policy"
MANAGE_INTEGRATIONS = "escalations.manage_integrations"
VIEW_ALL = "escalations.view_all_escalations"
VIEW_AUDIT = "escalations.view_audit"


def _has(request: HttpRequest, perm: str) -> bool:
    return bool(request.user.is_active and request.user.has_perm(perm))


class RoleAdmin(admin.ModelAdmin):
    """Permissions from Baton's roles instead of Django's per-model ones."""

    view_perm = ""
    edit_perm = ""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, self.view_perm) or self.has_change_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return bool(self.edit_perm) and _has(request, self.edit_perm)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self.edit_perm) and _has(request, self.edit_perm)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return bool(self.edit_perm) and _has(request, self.edit_perm)


class ReadOnlyAdmin(RoleAdmin):
    """A record that only services write: look, never touch."""

    edit_perm = ""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [field.name for field in self.model._meta.fields]


class AuditedPolicyAdmin(RoleAdmin):
    """Task types and rules: each save goes through the policy services, which version and
    audit it, exactly as an edit on the console's policy pages does."""

    view_perm = MANAGE_POLICY
    edit_perm = MANAGE_POLICY
    audit_noun = ""
    readonly_fields = ("version", "created_at", "updated_at")

    def snapshot(self, obj: Any) -> dict[str, Any]:
        raise NotImplementedError

    def save_through_service(self, *, obj: Any, actor: Actor, fields: dict[str, Any]) -> Any:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        fields = {
            name: value
            for name, value in form.cleaned_data.items()
            if name not in self.readonly_fields
        }
        saved = self.save_through_service(
            obj=obj if change else None, actor=Actor.person(request.user), fields=fields
        )
        obj.pk, obj.version = saved.pk, saved.version

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: Any, change: bool
    ) -> None:
        """The service saved the relations (a rule's task types) itself."""

    def delete_model(self, request: HttpRequest, obj: Any) -> None:
        data = self.snapshot(obj)
        audit_record(
            actor=Actor.person(request.user), verb=f"{self.audit_noun}.deleted", obj=obj, data=data
        )
        super().delete_model(request, obj)

    # The "delete selected" action, unlike the delete page, brings no transaction of its own.
    @transaction.atomic
    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


@admin.register(TaskType)
class TaskTypeAdmin(AuditedPolicyAdmin):
    audit_noun = "task_type"
    list_display = (
        "slug",
        "name",
        "level",
        "review_threshold",
        "autonomy_threshold",
        "default_priority",
        "sample_rate",
        "active",
        "version",
    )
    list_filter = ("level", "default_priority", "active")
    search_fields = ("slug", "name", "description")
    ordering = ("slug",)

    def snapshot(self, obj: Any) -> dict[str, Any]:
        fields = [
            "slug", "name", "description", "level", "autonomy_threshold", "review_threshold",
            "sentiment_threshold", "default_priority", "sample_rate", "required_skills", "active",
        ]  # fmt: skip
        return {name: getattr(obj, name) for name in fields}

    def save_through_service(self, *, obj: Any, actor: Actor, fields: dict[str, Any]) -> Any:
        if obj is None:
            return policy_admin.task_type_create(actor=actor, **fields)
        return policy_admin.task_type_update(task_type=obj, actor=actor, **fields)


class PolicyRuleForm(ModelForm):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if self.instance.hard and not cleaned.get("enabled", True):
            self.add_error("enabled", "A hard rule cannot be disabled.")
        return cleaned


@admin.register(PolicyRule)
class PolicyRuleAdmin(AuditedPolicyAdmin):
    audit_noun = "policy_rule"
    form = PolicyRuleForm
    list_display = ("code", "name", "hard", "enabled", "level", "priority", "skill", "version")
    list_filter = ("hard", "enabled", "level", "priority", "skill")
    search_fields = ("code", "name", "description", "keywords", "pattern")
    filter_horizontal = ("task_types",)
    ordering = ("code",)

    def snapshot(self, obj: Any) -> dict[str, Any]:
        fields = [
            "code", "name", "description", "enabled", "hard", "keywords", "pattern",
            "conditions", "action_names", "level", "priority", "skill",
        ]  # fmt: skip
        data = {name: getattr(obj, name) for name in fields}
        data["task_types"] = sorted(obj.task_types.values_list("slug", flat=True)) if obj.pk else []
        return data

    def save_through_service(self, *, obj: Any, actor: Actor, fields: dict[str, Any]) -> Any:
        return policy_admin.rule_save(rule=obj, actor=actor, **fields)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # Hard rules ship with Baton: they may be tuned, never turned into ordinary ones.
        readonly = list(super().get_readonly_fields(request, obj))
        return [*readonly, "hard"] if obj is not None and obj.hard else readonly

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.hard:
            return False
        return super().has_delete_permission(request, obj)


@admin.register(Integration)
class IntegrationAdmin(RoleAdmin):
    view_perm = MANAGE_INTEGRATIONS
    edit_perm = MANAGE_INTEGRATIONS
    list_display = ("name", "token_prefix", "default_callback_url", "active", "created_at")
    list_filter = ("active",)
    search_fields = ("name", "token_prefix", "default_callback_url")
    fields = (
        "name",
        "default_callback_url",
        "active",
        "token_prefix",
        "webhook_secret",
        "created_at",
    )
    actions = ("rotate_token",)
    # Webhook endpoints must be https in production; a bare host gets https, not http.
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        # The token exists only as a hash, and a new one is issued by rotating, never typed.
        if obj is None:
            return ("token_prefix", "webhook_secret", "created_at")
        return ("name", "token_prefix", "webhook_secret", "created_at")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # cases and audit events refer to it: switch it off instead

    def save_model(self, request: HttpRequest, obj: Any, form: ModelForm, change: bool) -> None:
        actor = Actor.person(request.user)
        if not change:
            integration, token = services.integration_create(
                name=obj.name, callback_url=obj.default_callback_url, actor=actor
            )
            if not obj.active:
                policy_admin.integration_update(integration=integration, actor=actor, active=False)
            obj.pk, obj.token_prefix = integration.pk, integration.token_prefix
            _show_token(request, integration, token)
            return
        policy_admin.integration_update(
            integration=obj, actor=actor, callback_url=obj.default_callback_url, active=obj.active
        )

    @admin.action(description="Rotate the API token (the new one is shown once)")
    def rotate_token(self, request: HttpRequest, queryset: QuerySet[Integration]) -> None:
        for integration in queryset:
            token = services.integration_rotate_token(
                integration=integration, actor=Actor.person(request.user)
            )
            _show_token(request, integration, token)


def _show_token(request: HttpRequest, integration: Integration, token: str) -> None:
    messages.warning(
        request,
        format_html(
            "API token for <strong>{}</strong>: <code>{}</code> — copy it now; Baton keeps "
            "only its hash and cannot show it again.",
            integration.name,
            token,
        ),
    )


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    view_perm = VIEW_ALL
    list_display = ("external_id", "name", "tier", "language", "integration", "updated_at")
    list_filter = ("tier", "language", "integration")
    search_fields = ("external_id", "name")
    list_select_related = ("integration",)


class MessageInline(admin.TabularInline):
    model = Message
    fields = ("seq", "role", "text", "at", "sentiment", "source")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, VIEW_ALL)


@admin.register(Escalation)
class EscalationAdmin(ReadOnlyAdmin):
    view_perm = VIEW_ALL
    list_display = (
        "id",
        "external_id",
        "task_type",
        "status",
        "level",
        "priority",
        "customer",
        "integration",
        "created_at",
    )
    list_filter = ("status", "level", "priority", "mode", "sampled_for_review", "task_type")
    search_fields = ("external_id", "summary", "reason", "customer__name", "customer__external_id")
    list_select_related = ("task_type", "customer", "integration")
    date_hierarchy = "created_at"
    inlines = (MessageInline,)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    view_perm = VIEW_ALL
    list_display = ("escalation", "seq", "role", "short_text", "sentiment", "source", "at")
    list_filter = ("role", "source")
    search_fields = ("text",)
    list_select_related = ("escalation__task_type",)

    @admin.display(description="text")
    def short_text(self, obj: Message) -> str:
        return obj.text[:80]


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin):
    view_perm = VIEW_ALL
    list_display = ("escalation", "csat", "effort", "created_at")
    list_filter = ("csat", "effort")
    search_fields = ("comment",)
    list_select_related = ("escalation__task_type",)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    view_perm = VIEW_ALL
    list_display = ("escalation", "verb", "final", "reviewer", "seconds_to_decide", "created_at")
    list_filter = ("verb", "final")
    search_fields = ("reason", "note", "response_text", "reviewer__username")
    list_select_related = ("escalation__task_type", "reviewer")
    date_hierarchy = "created_at"


class DeliveryAttemptInline(admin.TabularInline):
    model = DeliveryAttempt
    fields = ("number", "started_at", "duration_ms", "status_code", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return _has(request, MANAGE_INTEGRATIONS)


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The outbox: delivery is driven by the worker and its sweep, never by hand here."""

    view_perm = MANAGE_INTEGRATIONS
    list_display = (
        "webhook_id",
        "escalation",
        "event_type",
        "state",
        "attempts",
        "last_status_code",
        "next_attempt_at",
        "delivered_at",
    )
    list_filter = ("state", "event_type")
    search_fields = ("webhook_id", "url", "last_error")
    list_select_related = ("escalation__task_type",)
    date_hierarchy = "created_at"
    inlines = (DeliveryAttemptInline,)


@admin.register(DeliveryAttempt)
class DeliveryAttemptAdmin(ReadOnlyAdmin):
    view_perm = MANAGE_INTEGRATIONS
    list_display = ("delivery", "number", "started_at", "status_code", "duration_ms")
    list_filter = ("status_code",)
    search_fields = ("delivery__webhook_id", "error")
    list_select_related = ("delivery",)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    """Append-only: nobody adds, changes or deletes an event here, not even a superuser."""

    view_perm = VIEW_AUDIT
    list_display = ("seq", "created_at", "actor_type", "actor_label", "verb", "escalation_id")
    list_filter = ("actor_type", "verb")
    search_fields = ("verb", "actor_label", "object_id", "hash")
    date_hierarchy = "created_at"
    ordering = ("-seq",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
