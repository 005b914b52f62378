"""Policy administration: task types, rules and integrations as admins edit them (DESIGN §3).

Every edit goes through one of these services, whether it comes from the console's policy
pages or the Django admin. A real change bumps the object's version (each case records the
version that judged it) and is audited with the old and new value of every changed field.
Nothing here caches the policy: the next evaluation, in any process, reads the new row.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Max, Model
from pydantic import ValidationError as SchemaError

from escalations import selectors
from escalations.audit import Actor, audit_record, audited_transaction
from escalations.errors import Forbidden, InvalidInput
from escalations.models import AuditEvent, Integration, PolicyRule, TaskType
from escalations.policy import CustomerContext, PolicyDecision, RulePolicy, policy_evaluate
from escalations.schemas import EvaluateIn
from escalations.services import _new_webhook_secret

MANAGE_POLICY = "escalations.manage_policy"
MANAGE_INTEGRATIONS = "escalations.manage_integrations"

TASK_TYPE_FIELDS = (
    "slug",
    "name",
    "description",
    "level",
    "autonomy_threshold",
    "review_threshold",
    "sentiment_threshold",
    "default_priority",
    "sample_rate",
    "required_skills",
    "active",
)
RULE_FIELDS = (
    "code",
    "name",
    "description",
    "enabled",
    "hard",
    "keywords",
    "pattern",
    "conditions",
    "action_names",
    "level",
    "priority",
    "skill",
)


def _require(actor: Actor, perm: str, what: str) -> None:
    # System actors (seeding, commands) act on their own authority; people need the role.
    if actor.user is not None and not actor.user.has_perm(perm):
        raise Forbidden(f"Only admins {what}.")


def _invalid(message: str, error: ValidationError) -> InvalidInput:
    return InvalidInput(
        message,
        errors=[
            {"field": name, "message": " ".join(problems)}
            for name, problems in error.message_dict.items()
        ],
    )


def _unknown(changes: dict[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise InvalidInput(
            "Unknown fields.", errors=[{"field": name, "message": "unknown"} for name in unknown]
        )


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: {"from": before[k], "to": v} for k, v in after.items() if before[k] != v}


# --- Task types ------------------------------------------------------------------------------


def task_type_snapshot(task_type: TaskType) -> dict[str, Any]:
    return {name: getattr(task_type, name) for name in TASK_TYPE_FIELDS}


@audited_transaction()
def task_type_create(*, actor: Actor, **fields: Any) -> TaskType:
    _require(actor, MANAGE_POLICY, "create task types")
    _unknown(fields, TASK_TYPE_FIELDS)
    task_type = TaskType(**fields)
    try:
        task_type.full_clean()
    except ValidationError as error:
        raise _invalid("The task type is not valid.", error) from None
    task_type.save()
    audit_record(
        actor=actor, verb="task_type.created", obj=task_type, data=task_type_snapshot(task_type)
    )
    return task_type


@audited_transaction()
def task_type_update(*, task_type: TaskType, actor: Actor, **changes: Any) -> TaskType:
    """Change a task type's policy. It counts for the next case at once: nothing caches it."""
    _require(actor, MANAGE_POLICY, "change task types")
    _unknown(changes, TASK_TYPE_FIELDS)
    current = TaskType.objects.select_for_update().get(pk=task_type.pk)
    before = task_type_snapshot(current)
    for name, value in changes.items():
        setattr(current, name, value)
    try:
        current.full_clean()
    except ValidationError as error:
        raise _invalid("The task type is not valid.", error) from None
    changed = _changed(before, task_type_snapshot(current))
    if not changed:
        return current
    # The version tells which policy judged each case: bump it on every real change.
    current.version += 1
    current.save()
    audit_record(
        actor=actor,
        verb="task_type.changed",
        obj=current,
        data={"slug": current.slug, "changed": changed, "version": current.version},
    )
    return current


# --- Rules -----------------------------------------------------------------------------------


def rule_snapshot(rule: PolicyRule) -> dict[str, Any]:
    data = {name: getattr(rule, name) for name in RULE_FIELDS}
    data["task_types"] = sorted(rule.task_types.values_list("slug", flat=True)) if rule.pk else []
    return data


@audited_transaction()
def rule_save(*, rule: PolicyRule | None, actor: Actor, **fields: Any) -> PolicyRule:
    """Create a rule (`rule=None`) or change one. `task_types`: the task types it is limited
    to (empty: every one). Hard rules ship with Baton: tuned, never disabled or made soft."""
    _require(actor, MANAGE_POLICY, "edit policy rules")
    _unknown(fields, (*RULE_FIELDS, "task_types"))
    task_types = fields.pop("task_types", None)
    if rule is None or rule.pk is None:
        current, before = PolicyRule(), None
    else:
        current = PolicyRule.objects.select_for_update().get(pk=rule.pk)
        before = rule_snapshot(current)
    for name, value in fields.items():
        setattr(current, name, value)
    if before is not None and before["hard"] and not current.hard:
        raise InvalidInput(
            "A hard rule stays hard.",
            errors=[{"field": "hard", "message": "a hard rule cannot be made ordinary"}],
        )
    if current.hard and not current.enabled:
        raise InvalidInput(
            "Hard rules cannot be disabled.",
            errors=[{"field": "enabled", "message": "a hard rule cannot be disabled"}],
        )
    try:
        current.full_clean()
    except ValidationError as error:
        raise _invalid("The rule is not valid.", error) from None
    changed: dict[str, dict[str, Any]] = {}
    if before is not None:
        after = {name: getattr(current, name) for name in RULE_FIELDS}
        slugs = before["task_types"] if task_types is None else sorted(t.slug for t in task_types)
        changed = _changed(before, {**after, "task_types": slugs})
        if not changed:
            return current
        current.version += 1
    current.save()
    if task_types is not None:
        current.task_types.set(task_types)
    if before is None:
        audit_record(
            actor=actor, verb="policy_rule.created", obj=current, data=rule_snapshot(current)
        )
    else:
        audit_record(
            actor=actor,
            verb="policy_rule.changed",
            obj=current,
            data={"code": current.code, "changed": changed, "version": current.version},
        )
    return current


def rule_set_enabled(*, rule: PolicyRule, enabled: bool, actor: Actor) -> PolicyRule:
    """Switch a rule on or off (hard rules stay on: InvalidInput)."""
    return rule_save(rule=rule, actor=actor, enabled=enabled)


@dataclass(frozen=True)
class RuleTest:
    """What the policy in force makes of a pasted package, or why it could not judge it."""

    errors: list[dict[str, str]] = field(default_factory=list)
    task_type: TaskType | None = None
    decision: PolicyDecision | None = None
    rules: list[RulePolicy] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def rule_test(*, package_json: str, task_type_slug: str | None = None) -> RuleTest:
    """Judge a pasted package with the task type and rules in force; writes nothing.
    `task_type_slug`, when given, replaces the package's own task type."""
    try:
        raw = json.loads(package_json)
    except json.JSONDecodeError as exc:
        return RuleTest(errors=[{"field": "package", "message": f"Not valid JSON: {exc}."}])
    if not isinstance(raw, dict):
        return RuleTest(errors=[{"field": "package", "message": "A package is a JSON object."}])
    if task_type_slug:
        raw["task_type"] = task_type_slug
    try:
        package = EvaluateIn.model_validate(raw)
    except SchemaError as exc:
        return RuleTest(
            errors=[
                {
                    "field": "package",
                    "message": f"{'.'.join(str(p) for p in e['loc']) or 'package'}: {e['msg']}",
                }
                for e in exc.errors()
            ]
        )
    task_type = TaskType.objects.filter(slug=package.task_type).first()
    if task_type is None:
        return RuleTest(
            errors=[{"field": "task_type", "message": f"Unknown task type {package.task_type!r}."}]
        )
    rules = selectors.rules_in_force(task_type=task_type)
    decision = policy_evaluate(
        package=package,
        task_type=selectors.task_type_policy(task_type=task_type),
        rules=rules,
        customer=CustomerContext(),
    )
    return RuleTest(task_type=task_type, decision=decision, rules=rules)


# --- Integrations ----------------------------------------------------------------------------


@audited_transaction()
def integration_update(
    *,
    integration: Integration,
    actor: Actor,
    callback_url: str | None = None,
    active: bool | None = None,
) -> Integration:
    """Set the webhook URL or switch the integration on or off."""
    _require(actor, MANAGE_INTEGRATIONS, "change integrations")
    current = Integration.objects.select_for_update().get(pk=integration.pk)
    before = {"default_callback_url": current.default_callback_url, "active": current.active}
    if callback_url is not None:
        current.default_callback_url = callback_url.strip()
    if active is not None:
        current.active = active
    try:
        current.full_clean()
    except ValidationError as error:
        raise _invalid("The integration is not valid.", error) from None
    changed = _changed(
        before, {"default_callback_url": current.default_callback_url, "active": current.active}
    )
    if changed:
        current.save(update_fields=["default_callback_url", "active"])
        audit_record(actor=actor, verb="integration.updated", obj=current, data=changed)
    return current


@audited_transaction()
def integration_regenerate_webhook_secret(*, integration: Integration, actor: Actor) -> str:
    """A new signing secret, returned once; webhooks are signed with it from now on."""
    _require(actor, MANAGE_INTEGRATIONS, "change integrations")
    current = Integration.objects.select_for_update().get(pk=integration.pk)
    current.webhook_secret = _new_webhook_secret()
    current.save(update_fields=["webhook_secret"])
    # The secret itself never enters the trail: only that it changed.
    audit_record(actor=actor, verb="integration.webhook_secret_regenerated", obj=current, data={})
    return current.webhook_secret


@audited_transaction()
def integration_enable_callback_url(
    *, integration: Integration, url: str, actor: Actor
) -> Integration:
    """Deliver to an endpoint again after it answered 410 Gone."""
    _require(actor, MANAGE_INTEGRATIONS, "change integrations")
    current = Integration.objects.select_for_update().get(pk=integration.pk)
    if url not in current.disabled_callback_urls:
        raise InvalidInput(
            "That endpoint is not disabled.",
            errors=[{"field": "url", "message": "not among the disabled endpoints"}],
        )
    current.disabled_callback_urls = [u for u in current.disabled_callback_urls if u != url]
    current.save(update_fields=["disabled_callback_urls"])
    audit_record(actor=actor, verb="integration.callback_enabled", obj=current, data={"url": url})
    return current


# --- Reads for the policy pages ----------------------------------------------------------------


def last_change(*, model: type[Model], obj: Model | None = None) -> AuditEvent | None:
    """The latest audited change of one object, or of any object of the model."""
    events = AuditEvent.objects.filter(object_type=model._meta.label_lower)
    if obj is not None:
        events = events.filter(object_id=str(obj.pk))
    return events.order_by("-seq").first()


def last_changes(*, model: type[Model]) -> dict[str, AuditEvent]:
    """Object id → its latest audited change, for a list page; two queries."""
    latest = (
        AuditEvent.objects.filter(object_type=model._meta.label_lower)
        .values("object_id")
        .annotate(last=Max("seq"))
        .values_list("last", flat=True)
    )
    return {e.object_id: e for e in AuditEvent.objects.filter(seq__in=list(latest))}
