"""The reviewer's transitions: accept, every decision verb, versions, holders, audit, outbox."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection

from escalations.audit import audit_verify
from escalations.decisions import (
    DecisionInput,
    StaleCase,
    edit_size,
    escalation_accept,
    escalation_decide,
)
from escalations.errors import Conflict, Forbidden, InvalidInput
from escalations.models import AuditEvent, Decision, Status, WebhookDelivery
from tests.people import (  # noqa: F401  (fixtures)
    agent,
    make_case,
    review_type,
    reviewer,
    reviewer2,
    supervisor,
)

pytestmark = pytest.mark.django_db


def decide(case, user, verb, **fields):
    return escalation_decide(
        escalation_id=case.pk,
        reviewer=user,
        data=DecisionInput(verb=verb, version=fields.pop("version", case.version), **fields),
    )


def test_accept_moves_a_queued_case_to_review_and_bumps_the_version(make_case, reviewer):
    case = make_case()
    assert case.status == Status.QUEUED
    accepted = escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    assert accepted.status == Status.IN_REVIEW
    assert accepted.assignee == reviewer
    assert accepted.version == case.version + 1
    assert AuditEvent.objects.filter(escalation=case, verb="escalation.accepted").exists()


def test_approve_resolves_and_keeps_the_proposal(make_case, reviewer):
    case = make_case()
    decision = decide(case, reviewer, "approve")
    case.refresh_from_db()
    assert case.status == Status.RESOLVED and case.closed_at is not None
    assert decision.final and decision.agent_instruction == "execute"
    assert decision.action == {"name": "issue_refund", "args": {"amount": 80, "currency": "EUR"}}
    assert decision.draft_response == "I have refunded 80 EUR to your card."


def test_edit_stores_the_diff_of_draft_and_arguments(make_case, reviewer):
    case = make_case()
    decision = decide(
        case,
        reviewer,
        "edit",
        draft_response="I have refunded 60 EUR to your card.",
        action_args={"amount": 60, "currency": "EUR"},
    )
    assert decision.draft_response == "I have refunded 60 EUR to your card."
    assert decision.action["args"] == {"amount": 60, "currency": "EUR"}
    assert decision.diff["args"] == {"amount": {"from": 80, "to": 60}}
    assert "-I have refunded 80 EUR to your card." in decision.diff["draft"]
    assert "+I have refunded 60 EUR to your card." in decision.diff["draft"]
    assert decision.edit_size == 3  # a draft line removed and one added, an argument changed


def test_the_migration_fills_edit_size_as_a_decision_does(make_case, reviewer):
    fill = importlib.import_module("escalations.migrations.0008_decision_edit_size").FILL
    decision = decide(
        make_case(),
        reviewer,
        "edit",
        draft_response="Hello.\nI have refunded 60 EUR.\nBye.",
        action_args={"amount": 60, "currency": "USD"},
    )
    expected = decision.edit_size
    assert expected == edit_size(decision.diff) > 0
    Decision.objects.filter(pk=decision.pk).update(edit_size=0)
    with connection.cursor() as cursor:
        cursor.execute(fill[connection.vendor])
    decision.refresh_from_db()
    assert decision.edit_size == expected


def test_edit_without_a_change_is_refused(make_case, reviewer):
    case = make_case()
    with pytest.raises(InvalidInput) as error:
        decide(case, reviewer, "edit", draft_response=case.draft_response)
    assert error.value.errors[0]["field"] == "draft_response"
    assert not Decision.objects.exists()


def test_reject_needs_a_reason_and_nothing_is_written_without_one(make_case, reviewer):
    case = make_case()
    events = AuditEvent.objects.count()
    with pytest.raises(InvalidInput):
        decide(case, reviewer, "reject", reason="  ")
    case.refresh_from_db()
    assert case.status == Status.QUEUED and AuditEvent.objects.count() == events
    decision = decide(case, reviewer, "reject", reason="Outside the refund policy.")
    assert decision.agent_instruction == "do_not_execute"


def test_respond_sends_the_text(make_case, reviewer):
    case = make_case()
    with pytest.raises(InvalidInput):
        decide(case, reviewer, "respond")
    decision = decide(case, reviewer, "respond", response_text="Offer a voucher instead.")
    assert decision.agent_instruction == "send_response"
    assert decision.response_text == "Offer a voucher instead."


def test_escalate_puts_the_case_back_in_the_queue_with_the_skill(make_case, reviewer):
    case = make_case()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    case.refresh_from_db()
    with pytest.raises(InvalidInput):
        decide(case, reviewer, "escalate", escalate_to_skill="legal")  # no note
    decision = decide(
        case, reviewer, "escalate", escalate_to_skill="legal", note="Threatens court."
    )
    case.refresh_from_db()
    assert not decision.final
    assert case.status == Status.QUEUED and case.assignee is None
    assert "legal" in case.required_skills and case.escalation_count == 1
    assert not WebhookDelivery.objects.exists()  # the agent keeps waiting


def test_a_stale_version_is_refused_naming_who_decided(make_case, reviewer, reviewer2):
    case = make_case()
    decide(case, reviewer, "approve")
    with pytest.raises(StaleCase) as error:
        decide(case, reviewer2, "reject", reason="too late")  # the version they saw
    assert "Ann already decided this case (approve)" in error.value.message
    assert Decision.objects.filter(escalation=case).count() == 1


def test_a_case_held_by_another_reviewer_is_refused_but_a_supervisor_may(
    make_case, reviewer, reviewer2, supervisor
):
    case = make_case()
    case = escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    with pytest.raises(Forbidden):
        decide(case, reviewer2, "approve")
    decide(case, supervisor, "approve")
    case.refresh_from_db()
    assert case.status == Status.RESOLVED


def test_options_limit_the_verbs(make_case, reviewer):
    case = make_case(options=["reject", "respond"])
    with pytest.raises(InvalidInput):
        decide(case, reviewer, "approve")
    decide(case, reviewer, "reject", reason="No.")


def test_reverse_only_for_auto_resolved_cases_and_only_once(agent, reviewer, make_case):
    from escalations.models import TaskType

    TaskType.objects.filter(slug="refund_review").update(level=1)
    case = make_case()
    assert case.status == Status.AUTO_RESOLVED
    with pytest.raises(Conflict):
        decide(case, reviewer, "reject", reason="no")
    decision = decide(case, reviewer, "reverse", reason="Refund was outside policy.")
    assert decision.agent_instruction == "undo"
    case.refresh_from_db()
    assert case.status == Status.AUTO_RESOLVED and case.reviewed_at is not None
    with pytest.raises(Conflict):
        decide(case, reviewer, "approve")


def test_a_cancelled_case_cannot_be_decided(make_case, reviewer, agent):
    from escalations.services import escalation_cancel

    case = make_case()
    escalation_cancel(integration=agent, escalation_id=case.pk, reason="customer left")
    case.refresh_from_db()
    with pytest.raises(Conflict):
        decide(case, reviewer, "approve")


def test_decisions_are_audited_in_the_chain(make_case, reviewer):
    case = make_case()
    decide(case, reviewer, "reject", reason="Outside policy.")
    event = AuditEvent.objects.get(escalation=case, verb="escalation.reject")
    assert event.actor_label == "ann" and event.data["reason"] == "Outside policy."
    assert audit_verify()[1] is None


def test_a_callback_host_outside_the_allow_list_gets_nothing(make_case, reviewer, settings):
    from escalations.delivery import delivery_attempt
    from escalations.models import DeliveryAttempt

    settings.BATON_WEBHOOK_ALLOWED_HOSTS = ["hooks.agent.test"]
    case = make_case(callback_url="https://169.254.169.254/latest/meta-data")
    decide(case, reviewer, "approve")
    delivery = WebhookDelivery.objects.get(escalation=case)
    delivery_attempt(delivery_id=delivery.pk)
    attempt = DeliveryAttempt.objects.get(delivery=delivery)
    assert attempt.status_code is None
    assert "not in BATON_WEBHOOK_ALLOWED_HOSTS" in attempt.error
