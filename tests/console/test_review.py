"""The after-the-fact review queue for sampled L1 cases (DESIGN §4), through the console."""

from __future__ import annotations

import pytest
from django.test import Client

from escalations.models import Decision, Escalation, Level, Status, TaskType

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def sampled_l1(review_type: TaskType) -> TaskType:
    TaskType.objects.filter(pk=review_type.pk).update(level=Level.AUTONOMOUS, sample_rate=1.0)
    return review_type


def test_review_lists_only_sampled_unreviewed_auto_resolved_cases(reviewer, make_case, sampled_l1):
    sampled = make_case()
    assert (sampled.status, sampled.sampled_for_review) == (Status.AUTO_RESOLVED, True)
    unsampled = make_case()
    Escalation.objects.filter(pk=unsampled.pk).update(sampled_for_review=False)
    reviewed = make_case()
    Escalation.objects.filter(pk=reviewed.pk).update(reviewed_at=reviewed.created_at)
    TaskType.objects.filter(pk=sampled_l1.pk).update(level=Level.DRAFT_REVIEW)
    queued = make_case()
    assert queued.status == Status.QUEUED

    body = client_for(reviewer).get("/?view=review").content.decode()
    assert f'id="case-row-{sampled.pk}"' in body
    for other in (unsampled, reviewed, queued):
        assert f'id="case-row-{other.pk}"' not in body
    # …and the other views never show auto-resolved cases.
    queue = client_for(reviewer).get("/?view=queue").content.decode()
    assert f'id="case-row-{sampled.pk}"' not in queue and f'id="case-row-{queued.pk}"' in queue


def test_review_is_for_people_who_work_the_queue(nobody, make_case, sampled_l1):
    make_case()
    assert client_for(nobody).get("/?view=review").status_code == 403


def test_review_pages_by_keyset(reviewer, make_case, sampled_l1):
    cases = [make_case() for _ in range(3)]
    from escalations.selectors import InboxFilters, inbox_for_reviewer

    first = inbox_for_reviewer(user=reviewer, filters=InboxFilters(view="review"), limit=2)
    assert [c.pk for c in first.rows] == [c.pk for c in cases[:2]] and first.next_cursor
    client = client_for(reviewer)
    body = client.get("/", {"view": "review", "after": first.next_cursor}).content.decode()
    assert f'id="case-row-{cases[2].pk}"' in body
    assert f'id="case-row-{cases[0].pk}"' not in body
    assert client.get("/?view=review&after=garbage").status_code == 400


def test_confirm_from_the_briefing_takes_the_case_off_the_review_queue(
    reviewer, make_case, sampled_l1
):
    case = make_case()
    client = client_for(reviewer)
    body = client.get(f"/cases/{case.pk}/").content.decode()
    assert 'id="form-approve"' in body and "Confirm" in body and 'id="form-reverse"' in body
    response = client.post(f"/cases/{case.pk}/decide", {"verb": "approve", "version": case.version})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == Status.AUTO_RESOLVED and case.reviewed_at is not None
    assert Decision.objects.get(escalation=case).verb == "approve"
    assert f'id="case-row-{case.pk}"' not in client.get("/?view=review").content.decode()


def test_reverse_needs_a_reason_and_tells_the_agent_to_undo(reviewer, make_case, sampled_l1):
    case = make_case()
    client = client_for(reviewer)
    client.post(f"/cases/{case.pk}/decide", {"verb": "reverse", "version": case.version})
    case.refresh_from_db()
    assert case.reviewed_at is None and not Decision.objects.filter(escalation=case).exists()
    client.post(
        f"/cases/{case.pk}/decide",
        {"verb": "reverse", "version": case.version, "reason": "Outside the refund policy."},
    )
    case.refresh_from_db()
    decision = Decision.objects.get(escalation=case)
    assert (decision.verb, decision.agent_instruction) == ("reverse", "undo")
    assert case.reviewed_at is not None
    assert case.audit_events.filter(verb="escalation.reverse").exists()
    assert f'id="case-row-{case.pk}"' not in client.get("/?view=review").content.decode()
