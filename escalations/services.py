"""State changes of a case and of the integrations that send them (STYLE: services)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db.models import Max
from django.utils import timezone

from console.events import publish_case_changed
from escalations import selectors
from escalations.audit import Actor, audit_record, audited_transaction, canonical_json
from escalations.errors import Conflict, Forbidden, InvalidInput
from escalations.models import (
    CLOSED_STATUSES,
    Customer,
    Escalation,
    Feedback,
    Integration,
    Message,
    Status,
    TaskType,
)
from escalations.policy import INSTRUCTIONS, PolicyDecision, RulePolicy, policy_evaluate
from escalations.schemas import CustomerRecord, HandoffIn, PackageBase, TranscriptTurn
from routing.assignment import handoff_record
from routing.sla import sla_dues

# --- Integrations ----------------------------------------------------------------------------

TOKEN_PREFIX = "btn_"  # noqa: S105  (a prefix, not a secret)


def token_hash(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def _new_webhook_secret() -> str:
    # Standard Webhooks: "whsec_" and the base64 of the key bytes.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@audited_transaction()
def integration_create(
    *, name: str, callback_url: str = "", actor: Actor | None = None
) -> tuple[Integration, str]:
    """Create an integration; the token is returned once and only its hash is kept."""
    name = name.strip()
    if not name:
        raise InvalidInput(
            "An integration needs a name.", errors=[{"field": "name", "message": "required"}]
        )
    if Integration.objects.filter(name=name).exists():
        raise Conflict(f"An integration named {name!r} exists already.")
    token = _new_token()
    integration = Integration(
        name=name,
        token_hash=token_hash(token),
        token_prefix=token[: len(TOKEN_PREFIX) + 6],
        webhook_secret=_new_webhook_secret(),
        default_callback_url=callback_url,
    )
    try:
        integration.full_clean()
    except ValidationError as error:
        raise InvalidInput(
            "The integration is not valid.",
            errors=[
                {"field": field, "message": " ".join(messages)}
                for field, messages in error.message_dict.items()
            ],
        ) from None
    integration.save()
    audit_record(
        actor=actor or Actor.system("cli"),
        verb="integration.created",
        obj=integration,
        data={"name": name, "callback_url": callback_url, "token_prefix": integration.token_prefix},
    )
    return integration, token


@audited_transaction()
def integration_rotate_token(*, integration: Integration, actor: Actor) -> str:
    token = _new_token()
    old_prefix = integration.token_prefix
    integration.token_hash = token_hash(token)
    integration.token_prefix = token[: len(TOKEN_PREFIX) + 6]
    integration.save(update_fields=["token_hash", "token_prefix"])
    audit_record(
        actor=actor,
        verb="integration.token_rotated",
        obj=integration,
        data={"old_prefix": old_prefix, "new_prefix": integration.token_prefix},
    )
    return token


def integration_authenticate(*, token: str) -> Integration | None:
    """The integration a bearer token belongs to; Forbidden if it has been switched off."""
    integration = Integration.objects.filter(token_hash=token_hash(token)).first()
    if integration is not None and not integration.active:
        raise Forbidden("This integration is disabled.")
    return integration


# --- Evaluate --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Evaluation:
    task_type: TaskType
    decision: PolicyDecision
    rules: list[RulePolicy]


def escalation_evaluate(
    *, integration: Integration, package: PackageBase, escalation_id: int | None = None
) -> Evaluation:
    """What the policy says of a package, without writing anything. `escalation_id` names
    the stored case being re-judged, so it does not count as its own repeat."""
    task_type = selectors.task_type_by_slug(slug=package.task_type)
    rules = selectors.rules_in_force(task_type=task_type)
    decision = policy_evaluate(
        package=package,
        task_type=selectors.task_type_policy(task_type=task_type),
        rules=rules,
        customer=selectors.customer_context(
            integration=integration,
            customer_external_id=package.customer.id if package.customer else None,
            exclude_escalation_id=escalation_id,
        ),
    )
    return Evaluation(task_type=task_type, decision=decision, rules=rules)


# --- Ingest ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IngestResult:
    escalation: Escalation
    created: bool


def package_sha256(package: PackageBase) -> str:
    return hashlib.sha256(canonical_json(package.model_dump(mode="json")).encode()).hexdigest()


def _replay(existing: Escalation, digest: str) -> IngestResult:
    if existing.package_sha256 != digest:
        raise Conflict(
            f"external_id {existing.external_id!r} was already used for a different package "
            f"(escalation {existing.pk}); use a new external_id for a new handoff."
        )
    return IngestResult(escalation=existing, created=False)


def _sampled(*, integration: Integration, external_id: str, rate: float) -> bool:
    """Deterministic: the same package always gets the same answer."""
    digest = hashlib.sha256(f"{integration.pk}:{external_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def _customer_upsert(*, integration: Integration, record: CustomerRecord | None) -> int | None:
    """The customer's id, their record created or brought up to date in one statement
    (INSERT … ON CONFLICT DO UPDATE), not a locked read, two savepoints and a write."""
    if record is None:
        return None
    # A package that sends only the customer's id must not wipe what an earlier one told.
    sent = sorted(record.model_fields_set - {"id"})
    customer = Customer(
        integration=integration,
        external_id=record.id,
        **{field: getattr(record, field) for field in sent},
    )
    # Only the id is returned: the instance holds defaults, not the stored values, for
    # whatever the package did not send. updated_at is always set, so the row comes back.
    Customer.objects.bulk_create(
        [customer],
        update_conflicts=True,
        unique_fields=["integration", "external_id"],
        update_fields=[*sent, "updated_at"],
    )
    return customer.pk


def primary_language(tag: str) -> str:
    """ "en-GB", "EN" → "en": the roster lists languages by their primary subtag."""
    return tag.strip().replace("_", "-").split("-")[0].lower()


def _messages(
    escalation: Escalation, turns: list[TranscriptTurn], *, first_seq: int, source: str
) -> list[Message]:
    return [
        Message(
            escalation=escalation,
            seq=first_seq + index,
            role=turn.role,
            text=turn.text,
            at=turn.at,
            sentiment=turn.sentiment,
            source=source,
        )
        for index, turn in enumerate(turns)
    ]


@audited_transaction()
def escalation_ingest(*, integration: Integration, package: HandoffIn) -> IngestResult:
    """Store a handoff once. The same package again is a replay; a different one, a 409."""
    digest = package_sha256(package)
    existing = Escalation.objects.filter(
        integration=integration, external_id=package.external_id
    ).first()
    if existing is not None:
        return _replay(existing, digest)

    evaluation = escalation_evaluate(integration=integration, package=package)
    task_type, decision, rules = evaluation.task_type, evaluation.decision, evaluation.rules
    customer_id = _customer_upsert(integration=integration, record=package.customer)
    now = timezone.now()
    auto = decision.level == 1
    accept_due, resolve_due = (
        (None, None) if auto else sla_dues(priority=decision.priority, start=now)
    )
    proposed = package.proposed_action.model_dump(mode="json") if package.proposed_action else None
    try:
        with audited_transaction():
            escalation = Escalation.objects.create(
                integration=integration,
                external_id=package.external_id,
                package_sha256=digest,
                package=package.model_dump(mode="json"),
                task_type=task_type,
                task_type_version=task_type.version,
                customer_id=customer_id,
                summary=package.summary,
                reason=package.reason,
                confidence=package.confidence,
                reasoning=package.reasoning.model_dump(mode="json"),
                proposed_action=proposed,
                draft_response=package.draft_response,
                process_state=package.process_state.model_dump(mode="json"),
                environment=package.environment.model_dump(mode="json"),
                suggested_next_steps=package.suggested_next_steps,
                flags=package.flags,
                options=package.options,
                attributes=package.attributes,
                callback_url=str(package.callback_url or ""),
                language=primary_language(package.customer.language if package.customer else ""),
                mode=package.mode,
                status=Status.AUTO_RESOLVED if auto else Status.QUEUED,
                level=decision.level,
                priority=decision.priority,
                triggers=[t.as_dict() for t in decision.triggers],
                trigger_codes=Escalation.codes_of([t.as_dict() for t in decision.triggers]),
                instruction=decision.instruction,
                required_skills=list(decision.required_skills),
                skill_codes=Escalation.spaced(decision.required_skills),
                sampled_for_review=auto
                and (
                    decision.review_after
                    or _sampled(
                        integration=integration,
                        external_id=package.external_id,
                        rate=task_type.sample_rate,
                    )
                ),
                policy_snapshot={
                    "task_type": {
                        "slug": task_type.slug,
                        "version": task_type.version,
                        "level": task_type.level,
                        "autonomy_threshold": task_type.autonomy_threshold,
                        "review_threshold": task_type.review_threshold,
                    },
                    "rules": {rule.code: rule.version for rule in rules},
                },
                sla_accept_due=accept_due,
                sla_resolve_due=resolve_due,
                closed_at=now if auto else None,
            )
    except IntegrityError:
        # A concurrent post with the same key won the race: answer as a replay. Any other
        # integrity error is a bug to surface, not a replay.
        existing = Escalation.objects.filter(
            integration=integration, external_id=package.external_id
        ).first()
        if existing is None:
            raise
        return _replay(existing, digest)

    Message.objects.bulk_create(
        _messages(escalation, package.transcript, first_seq=1, source=Message.Source.PACKAGE)
    )
    actor = Actor.agent(integration)
    audit_record(
        actor=actor,
        verb="escalation.received",
        escalation=escalation,
        obj=escalation,
        data={
            "external_id": escalation.external_id,
            "package_sha256": digest,
            "task_type": task_type.slug,
            "task_type_version": task_type.version,
            "level": escalation.level,
            "priority": escalation.priority,
            "status": escalation.status,
            "triggers": escalation.triggers,
        },
    )
    if auto:
        audit_record(
            actor=Actor.system("policy"),
            verb="escalation.auto_resolved",
            escalation=escalation,
            obj=escalation,
            data={"sampled_for_review": escalation.sampled_for_review},
        )
    if not auto:
        handoff_record(escalation)
    publish_case_changed(escalation_id=escalation.pk, change="received", actor=actor.label)
    return IngestResult(escalation=escalation, created=True)


# --- While the case waits --------------------------------------------------------------------


def _lock_open(*, integration: Integration, escalation_id: int, doing: str) -> Escalation:
    escalation = selectors.escalation_for_integration(
        integration=integration, escalation_id=escalation_id
    )
    escalation = Escalation.objects.select_for_update().get(pk=escalation.pk)
    if escalation.status in CLOSED_STATUSES:
        raise Conflict(
            f"Escalation {escalation.pk} is {escalation.get_status_display().lower()}; "
            f"cannot {doing}."
        )
    return escalation


MAX_CASE_TURNS = 5_000  # a handoff package holds 2,000; appends may add as many again and more


def _raise_if_more_serious(*, integration: Integration, escalation: Escalation) -> None:
    """Judge the case again with its whole transcript; raise level, priority and SLA
    deadlines when the new turns call for it, never lower them."""
    transcript = [
        TranscriptTurn.model_construct(role=m.role, text=m.text, at=m.at, sentiment=m.sentiment)
        for m in escalation.messages.order_by("seq")
    ]
    # The stored package was validated on arrival; only the transcript grew.
    package = HandoffIn.model_validate(escalation.package).model_copy(
        update={"transcript": transcript}
    )
    decision = escalation_evaluate(
        integration=integration, package=package, escalation_id=escalation.pk
    ).decision
    level = max(escalation.level, decision.level)
    priority = min(escalation.priority, decision.priority)
    if level == escalation.level and priority == escalation.priority:
        return
    known = {(t["code"], t["detail"]) for t in escalation.triggers}
    new_triggers = [t.as_dict() for t in decision.triggers if (t.code, t.detail) not in known]
    before = {"level": escalation.level, "priority": escalation.priority}
    escalation.level, escalation.priority = level, priority
    escalation.instruction = INSTRUCTIONS[level]
    escalation.triggers = [*escalation.triggers, *new_triggers]
    escalation.trigger_codes = Escalation.codes_of(escalation.triggers)
    escalation.set_required_skills([*escalation.required_skills, *decision.required_skills])
    accept_due, resolve_due = sla_dues(priority=priority, start=escalation.created_at)
    escalation.sla_accept_due = min(filter(None, [escalation.sla_accept_due, accept_due]))
    escalation.sla_resolve_due = min(filter(None, [escalation.sla_resolve_due, resolve_due]))
    escalation.version += 1
    escalation.save(
        update_fields=[
            "level",
            "priority",
            "instruction",
            "triggers",
            "trigger_codes",
            "required_skills",
            "skill_codes",
            "sla_accept_due",
            "sla_resolve_due",
            "version",
            "updated_at",
        ]
    )
    audit_record(
        actor=Actor.system("policy"),
        verb="escalation.raised",
        escalation=escalation,
        obj=escalation,
        data={
            "before": before,
            "after": {"level": level, "priority": priority},
            "triggers": new_triggers,
        },
    )


@audited_transaction()
def escalation_append_messages(
    *, integration: Integration, escalation_id: int, turns: list[TranscriptTurn]
) -> tuple[Escalation, int]:
    """Add turns to a waiting case; if they make it more serious, raise it (never lower)."""
    escalation = _lock_open(
        integration=integration, escalation_id=escalation_id, doing="add messages"
    )
    last_seq = escalation.messages.aggregate(last=Max("seq"))["last"] or 0
    if last_seq + len(turns) > MAX_CASE_TURNS:
        raise Conflict(
            f"Escalation {escalation.pk} already holds {last_seq} turns; a case keeps at most "
            f"{MAX_CASE_TURNS}. Hand over a new case with a summary instead."
        )
    Message.objects.bulk_create(
        _messages(escalation, turns, first_seq=last_seq + 1, source=Message.Source.APPENDED)
    )
    actor = Actor.agent(integration)
    audit_record(
        actor=actor,
        verb="escalation.messages_appended",
        escalation=escalation,
        obj=escalation,
        data={"count": len(turns), "first_seq": last_seq + 1},
    )
    _raise_if_more_serious(integration=integration, escalation=escalation)
    publish_case_changed(escalation_id=escalation.pk, change="messages", actor=actor.label)
    return escalation, len(turns)


@audited_transaction()
def escalation_cancel(*, integration: Integration, escalation_id: int, reason: str) -> Escalation:
    """The agent withdraws its case. Withdrawing twice answers the same."""
    escalation = selectors.escalation_for_integration(
        integration=integration, escalation_id=escalation_id
    )
    if escalation.status == Status.CANCELLED:
        return escalation
    escalation = _lock_open(
        integration=integration, escalation_id=escalation_id, doing="withdraw it"
    )
    before = escalation.status
    escalation.status = Status.CANCELLED
    escalation.cancel_reason = reason
    escalation.closed_at = timezone.now()
    escalation.version += 1
    escalation.save(update_fields=["status", "cancel_reason", "closed_at", "version", "updated_at"])
    audit_record(
        actor=Actor.agent(integration),
        verb="escalation.cancelled",
        escalation=escalation,
        obj=escalation,
        data={"from": before, "reason": reason},
    )
    publish_case_changed(escalation_id=escalation.pk, change="cancelled", actor=integration.name)
    return escalation


@audited_transaction()
def escalation_record_feedback(
    *,
    integration: Integration,
    escalation_id: int,
    csat: int | None,
    effort: int | None,
    comment: str,
) -> Feedback:
    """The customer's satisfaction and effort after the handoff; once per case."""
    if csat is None and effort is None and not comment.strip():
        raise InvalidInput(
            "Feedback needs a csat, an effort score or a comment.",
            errors=[{"field": "csat", "message": "give at least one of csat, effort, comment"}],
        )
    escalation = selectors.escalation_for_integration(
        integration=integration, escalation_id=escalation_id
    )
    try:
        with audited_transaction():
            feedback = Feedback.objects.create(
                escalation=escalation, csat=csat, effort=effort, comment=comment
            )
    except IntegrityError:
        raise Conflict(f"Feedback for escalation {escalation.pk} was already recorded.") from None
    audit_record(
        actor=Actor.agent(integration),
        verb="escalation.feedback",
        escalation=escalation,
        obj=feedback,
        data={"csat": csat, "effort": effort, "comment": comment},
    )
    return feedback
