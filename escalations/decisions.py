"""A reviewer's transitions of a case (DESIGN §4): accept, decide, post-hoc review.

Every transition is one call, in one transaction, on a locked row, checked against the
`version` the reviewer saw: two people can never both decide the same case, and whoever
loses the race is told who decided and when.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from console.events import publish_case_changed
from escalations.audit import Actor, audit_record, audited_transaction
from escalations.errors import Conflict, Forbidden, InvalidInput, NotFound
from escalations.models import (
    OPEN_STATUSES,
    Decision,
    Escalation,
    Status,
    Verb,
)
from routing.assignment import CapacityFull, lock_capacity, qualified

FINAL_VERBS = {Verb.APPROVE, Verb.EDIT, Verb.REJECT, Verb.RESPOND, Verb.TAKE_OVER}
POST_HOC_VERBS = {Verb.APPROVE, Verb.REVERSE}


def display_name(user: Any) -> str:
    return (user.get_full_name() or user.get_username()) if user is not None else "nobody"


def is_supervisor(user: Any) -> bool:
    return bool(user.has_perm("escalations.reassign_escalation"))


class StaleCase(Conflict):
    """The case moved on since the reviewer loaded it; nothing of theirs was applied."""


def _lock(escalation_id: int) -> Escalation:
    escalation = (
        Escalation.objects.select_for_update(of=("self",))
        .select_related("task_type", "integration", "assignee")
        .filter(pk=escalation_id)
        .first()
    )
    if escalation is None:
        raise NotFound(f"No case {escalation_id}.")
    return escalation


def _stale_message(escalation: Escalation) -> str:
    final = escalation.decisions.filter(final=True).select_related("reviewer").first()
    if final is not None:
        when = timezone.localtime(final.created_at).strftime("%H:%M:%S")
        return (
            f"{display_name(final.reviewer)} already decided this case "
            f"({final.get_verb_display().lower()}) at {when}. Nothing of yours was applied."
        )
    latest = escalation.audit_events.order_by("-seq").first()
    who = f" by {latest.actor_label}" if latest else ""
    return (
        f"The case changed{who} since you opened it (now {escalation.get_status_display()}). "
        "Nothing of yours was applied; reload it."
    )


def _check_version(escalation: Escalation, version: int) -> None:
    if version != escalation.version:
        raise StaleCase(_stale_message(escalation))


def _check_may_work(escalation: Escalation, reviewer: Any) -> None:
    if not reviewer.has_perm("escalations.work_queue"):
        raise Forbidden("Your role does not allow working cases.")
    if (
        escalation.assignee_id is not None
        and escalation.assignee_id != reviewer.pk
        and not is_supervisor(reviewer)
    ):
        raise Forbidden(f"{display_name(escalation.assignee)} holds this case.")


@audited_transaction()
def escalation_accept(*, escalation_id: int, reviewer: User, version: int) -> Escalation:
    """Confirm receipt: an offered case, or one taken from the queue, moves to in review."""
    escalation = _lock(escalation_id)
    _check_version(escalation, version)
    _check_may_work(escalation, reviewer)
    if escalation.status not in (Status.QUEUED, Status.ASSIGNED):
        raise Conflict(f"The case is {escalation.get_status_display().lower()}; nothing to accept.")
    if escalation.assignee_id != reviewer.pk:  # taking it from the queue adds to their load
        try:
            profile = lock_capacity(reviewer)
        except CapacityFull as full:
            raise Conflict(f"{full} Finish one before taking another.") from None
        if (
            profile is not None
            and not is_supervisor(reviewer)
            and not qualified(profile, escalation)
        ):
            needed = ", ".join(escalation.required_skills) or "none"
            raise Forbidden(f"This case needs skills you do not have on the roster ({needed}).")
    before = escalation.status
    now = timezone.now()
    escalation.assignee = reviewer  # type: ignore[assignment]
    escalation.status = Status.IN_REVIEW
    escalation.offered_at = escalation.offered_at or now
    escalation.accepted_at = now
    escalation.version += 1
    escalation.save(
        update_fields=["assignee", "status", "offered_at", "accepted_at", "version", "updated_at"]
    )
    audit_record(
        actor=Actor.person(reviewer),
        verb="escalation.accepted",
        escalation=escalation,
        obj=escalation,
        data={"from": before, "to": escalation.status},
    )
    publish_case_changed(
        escalation_id=escalation.pk, change="accepted", actor=reviewer.get_username()
    )
    return escalation


def _draft_diff(before: str, after: str) -> list[str]:
    return list(
        difflib.unified_diff(
            before.splitlines(), after.splitlines(), "draft", "edited", lineterm="", n=1
        )
    )


def _args_diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: {"from": before.get(key), "to": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


def edit_size(diff: dict[str, Any]) -> int:
    """Draft lines added or removed in the unified diff (its two header lines aside) plus the
    action arguments changed: the edit size of DESIGN §10, stored on the decision."""
    draft = diff.get("draft") or []
    lines = sum(1 for line in draft if line[:1] in ("-", "+")) - (2 if draft else 0)
    return lines + len(diff.get("args") or {})


@dataclass(frozen=True)
class DecisionInput:
    verb: str
    version: int
    reason: str = ""
    note: str = ""
    response_text: str = ""
    draft_response: str | None = None
    action_args: dict[str, Any] | None = None
    escalate_to_skill: str = ""
    escalate_to_team: str = ""
    escalate_to_supervisor: bool = False


def _validate(escalation: Escalation, data: DecisionInput) -> dict[str, Any]:
    """Verb-specific checks; returns the fields of the Decision to write."""
    errors: list[dict[str, str]] = []
    try:
        verb = Verb(data.verb)
    except ValueError:
        raise InvalidInput(
            f"Unknown decision {data.verb!r}.",
            errors=[{"field": "verb", "message": "one of " + ", ".join(Verb.values)}],
        ) from None

    if escalation.status == Status.AUTO_RESOLVED:
        if verb not in POST_HOC_VERBS:
            raise Conflict("An auto-resolved case can only be confirmed (approve) or reversed.")
        if escalation.reviewed_at is not None:
            raise Conflict("This auto-resolved case was already reviewed.")
    elif escalation.status not in OPEN_STATUSES:
        raise Conflict(_stale_message(escalation))
    elif verb == Verb.REVERSE:
        raise Conflict("Only an auto-resolved case can be reversed.")

    if (
        escalation.options
        and verb in FINAL_VERBS
        and verb not in (Verb.TAKE_OVER,)
        and verb.value not in escalation.options
        and not (verb == Verb.EDIT and Verb.APPROVE.value in escalation.options)
    ):
        errors.append(
            {"field": "verb", "message": f"the agent cannot act on {verb.value!r} for this case"}
        )

    fields: dict[str, Any] = {"verb": verb.value, "note": data.note.strip()}
    original_action = escalation.proposed_action or None
    fields["action"] = original_action
    fields["draft_response"] = escalation.draft_response

    if verb in (Verb.REJECT, Verb.REVERSE) and not data.reason.strip():
        errors.append({"field": "reason", "message": "say why (the agent and the audit need it)"})
    fields["reason"] = data.reason.strip()

    if verb == Verb.RESPOND:
        if not data.response_text.strip():
            errors.append({"field": "response_text", "message": "write the response"})
        fields["response_text"] = data.response_text.strip()

    if verb == Verb.EDIT:
        diff: dict[str, Any] = {}
        if data.draft_response is not None and data.draft_response != escalation.draft_response:
            diff["draft"] = _draft_diff(escalation.draft_response, data.draft_response)
            fields["draft_response"] = data.draft_response
        if data.action_args is not None and original_action is not None:
            args_diff = _args_diff(original_action.get("args") or {}, data.action_args)
            if args_diff:
                diff["args"] = args_diff
                fields["action"] = {**original_action, "args": data.action_args}
        if not diff:
            errors.append(
                {"field": "draft_response", "message": "nothing was changed; approve instead"}
            )
        fields["diff"] = diff
        fields["edit_size"] = edit_size(diff)

    if verb == Verb.ESCALATE:
        target = {
            "skill": data.escalate_to_skill.strip(),
            "team": data.escalate_to_team.strip(),
            "supervisor": bool(data.escalate_to_supervisor),
        }
        if not (target["skill"] or target["team"] or target["supervisor"]):
            errors.append(
                {"field": "escalate_to", "message": "choose a skill, a team or a supervisor"}
            )
        if not fields["note"]:
            errors.append({"field": "note", "message": "leave a note for the next person"})
        fields["escalate_to"] = target

    if errors:
        raise InvalidInput("The decision is incomplete.", errors=errors)
    return fields


@audited_transaction()
def escalation_decide(*, escalation_id: int, reviewer: User, data: DecisionInput) -> Decision:
    """Record a decision; a final one goes back to the agent through the outbox."""
    from escalations.delivery import delivery_enqueue_for_decision
    from routing.tasks import assign_queued

    escalation = _lock(escalation_id)
    _check_version(escalation, data.version)
    _check_may_work(escalation, reviewer)
    fields = _validate(escalation, data)
    verb = Verb(fields["verb"])
    now = timezone.now()
    started = escalation.accepted_at or escalation.created_at
    decision = Decision.objects.create(
        escalation=escalation,
        reviewer=reviewer,
        final=verb != Verb.ESCALATE,
        case_version=escalation.version,
        seconds_to_decide=(now - started).total_seconds(),
        **fields,
    )
    before = {"status": escalation.status, "assignee": display_name(escalation.assignee)}
    update = ["status", "version", "updated_at", "assignee"]
    if escalation.status == Status.AUTO_RESOLVED:
        escalation.reviewed_at = now
        update.append("reviewed_at")
    elif verb == Verb.ESCALATE:
        target = fields["escalate_to"]
        escalation.status = Status.QUEUED
        escalation.assignee = None
        escalation.offered_at = escalation.accepted_at = None
        escalation.escalation_count += 1
        if target["skill"]:
            escalation.set_required_skills([*escalation.required_skills, target["skill"]])
        if escalation.priority > 2:  # a re-escalation is more urgent, but not critical
            escalation.priority -= 1
        update += [
            "offered_at",
            "accepted_at",
            "escalation_count",
            "required_skills",
            "skill_codes",
            "priority",
        ]
    else:
        escalation.status = Status.RESOLVED
        escalation.assignee = escalation.assignee or reviewer
        escalation.closed_at = now
        update.append("closed_at")
    escalation.version += 1
    escalation.save(update_fields=update)

    audit_record(
        actor=Actor.person(reviewer),
        verb=f"escalation.{verb.value}",
        escalation=escalation,
        obj=decision,
        data={
            "before": before,
            "after": {"status": escalation.status},
            "reason": decision.reason,
            "note": decision.note,
            "response_text": decision.response_text,
            "diff": decision.diff,
            "escalate_to": decision.escalate_to,
            "case_version": decision.case_version,
        },
    )
    if decision.final:
        delivery_enqueue_for_decision(decision=decision)
    # The reviewer has room again (or the case is back in the queue): offer what waits.
    transaction.on_commit(lambda: assign_queued.delay(), robust=True)
    publish_case_changed(
        escalation_id=escalation.pk, change=f"decided:{verb.value}", actor=reviewer.get_username()
    )
    return decision
