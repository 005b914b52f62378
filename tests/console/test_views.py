"""The console through real requests: permissions, inbox, briefing, decisions by form post."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from escalations.decisions import escalation_accept
from escalations.models import Decision, Status

pytestmark = pytest.mark.django_db


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anonymous_users_are_sent_to_login():
    response = Client().get("/")
    assert response.status_code == 302 and response.url.startswith("/login/")
    assert Client().get("/cases/1/").status_code == 302


def test_a_user_without_a_role_is_refused_everywhere(nobody, make_case):
    case = make_case()
    client = client_for(nobody)
    assert client.get("/").status_code == 403
    assert client.get(f"/cases/{case.pk}/").status_code == 403
    response = client.post(f"/cases/{case.pk}/decide", {"verb": "approve", "version": 1})
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == Status.QUEUED


def test_login_page_signs_in(reviewer):
    client = Client()
    assert client.get("/login/").status_code == 200
    response = client.post("/login/", {"username": "ann", "password": "pw"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200


def test_queue_lists_cases_by_priority_then_deadline(reviewer, make_case):
    low = make_case()
    urgent = make_case(
        transcript=[{"role": "customer", "text": "I can smell gas in the kitchen!"}],
    )
    body = client_for(reviewer).get("/?view=queue").content.decode()
    assert f'id="case-row-{urgent.pk}"' in body and f'id="case-row-{low.pk}"' in body
    assert body.index(f'id="case-row-{urgent.pk}"') < body.index(f'id="case-row-{low.pk}"')


def test_a_case_without_a_customer_record_is_listed(reviewer, make_case):
    # A filter's argument is not silent in templates: `default:case.customer.external_id`
    # on a case without a customer raised, and the whole inbox answered 500.
    case = make_case(customer=None)
    assert case.customer_id is None
    response = client_for(reviewer).get("/?view=queue")
    assert response.status_code == 200
    assert f'id="case-row-{case.pk}"' in response.content.decode()


def test_the_inbox_reads_each_page_in_a_fixed_number_of_queries(reviewer, supervisor, make_case):
    # The inbox leaves the package and the CRM record unread (selectors.INBOX_DEFERRED): a
    # row that touched one of them would cost a query a row, and this would fail.
    def queries_for_all_view() -> int:
        client = client_for(supervisor)
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/?view=all")
        assert response.status_code == 200
        return len(queries.captured_queries)

    first = make_case()
    escalation_accept(escalation_id=first.pk, reviewer=reviewer, version=first.version)
    one = queries_for_all_view()
    for _ in range(3):
        case = make_case()
        escalation_accept(escalation_id=case.pk, reviewer=reviewer, version=case.version)
    assert queries_for_all_view() == one


def test_mine_shows_only_my_cases_and_all_is_for_supervisors(
    reviewer, reviewer2, supervisor, make_case
):
    mine, other = make_case(), make_case()
    escalation_accept(escalation_id=mine.pk, reviewer=reviewer, version=mine.version)
    escalation_accept(escalation_id=other.pk, reviewer=reviewer2, version=other.version)
    body = client_for(reviewer).get("/?view=mine").content.decode()
    assert f"case-row-{mine.pk}" in body and f"case-row-{other.pk}" not in body
    # A reviewer asking for "all" gets their own view, not everyone's cases.
    body = client_for(reviewer).get("/?view=all").content.decode()
    assert f"case-row-{other.pk}" not in body
    body = client_for(supervisor).get("/?view=all").content.decode()
    assert f"case-row-{mine.pk}" in body and f"case-row-{other.pk}" in body


def test_a_case_another_reviewer_holds_is_read_only(reviewer, reviewer2, make_case):
    case = make_case()
    escalation_accept(escalation_id=case.pk, reviewer=reviewer2, version=case.version)
    body = client_for(reviewer).get(f"/cases/{case.pk}/").content.decode()
    assert "Bob holds this case." in body
    assert 'id="form-approve"' not in body and 'id="form-accept"' not in body
    response = client_for(reviewer).post(
        f"/cases/{case.pk}/decide", {"verb": "approve", "version": case.version + 1}, follow=True
    )
    assert "Bob holds this case" in response.content.decode()
    case.refresh_from_db()
    assert case.status == Status.IN_REVIEW


def test_a_missing_case_is_404(reviewer):
    assert client_for(reviewer).get("/cases/999999/").status_code == 404


def test_inbox_filters_and_keyset_pages(reviewer, make_case):
    cases = [make_case() for _ in range(5)]
    client = client_for(reviewer)
    seen: list[str] = []
    url = "/?view=queue"
    from escalations import selectors

    for _ in range(10):
        page = selectors.inbox_for_reviewer(
            user=reviewer,
            filters=selectors.InboxFilters(view="queue"),
            after=url.partition("after=")[2] or None,
            limit=2,
        )
        seen += [str(c.pk) for c in page.rows]
        if not page.next_cursor:
            break
        url = f"/?view=queue&after={page.next_cursor}"
    assert sorted(seen) == sorted(str(c.pk) for c in cases) and len(seen) == len(set(seen))
    assert client.get("/?view=queue&trigger=explicit_request").status_code == 200
    assert client.get("/?view=queue&after=garbage").status_code == 400
    assert client.get("/?view=queue&priority=9&status=nope").status_code == 200


def test_inbox_partial_for_htmx(reviewer, make_case):
    make_case()
    response = client_for(reviewer).get("/?view=queue", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="inbox-list"') and "<html" not in body


def test_briefing_shows_the_whole_package_escaped(reviewer, make_case):
    case = make_case(
        summary="<script>alert(1)</script> wants a refund",
        customer={"id": "x", "name": "<img src=x onerror=alert(2)>", "tier": "gold"},
        transcript=[{"role": "customer", "text": "<b>help</b> <script>alert(3)</script>"}],
        draft_response="<iframe src=evil>",
        reasoning={"rationale": "Refund fits policy", "alternatives": [{"action": "voucher"}]},
        suggested_next_steps=["Check the courier's scan"],
        process_state={"completed_steps": ["verify_identity"], "pending_actions": ["refund"]},
        environment={"logs": ["GET /orders 200"], "errors": ["timeout on courier API"]},
    )
    body = client_for(reviewer).get(f"/cases/{case.pk}/").content.decode()
    for raw in ["<script>alert", "<img src=x", "<b>help</b>", "<iframe src=evil>"]:
        assert raw not in body
    for escaped in ["&lt;script&gt;alert(1)", "&lt;img src=x onerror=alert(2)&gt;", "&lt;iframe"]:
        assert escaped in body
    for text in [
        "Refund fits policy",
        "voucher",
        "Check the courier",
        "verify_identity",
        "timeout on courier API",
        "Refunds need a person",
    ]:
        assert text in body


def test_decide_by_form_post_and_the_loser_of_a_race_is_told(reviewer, reviewer2, make_case):
    case = make_case()
    first = client_for(reviewer).post(
        f"/cases/{case.pk}/decide", {"verb": "approve", "version": case.version}, follow=True
    )
    assert "Approved" in first.content.decode()
    second = client_for(reviewer2).post(
        f"/cases/{case.pk}/decide",
        {"verb": "reject", "reason": "no", "version": case.version},
        HTTP_HX_REQUEST="true",
    )
    assert second.status_code == 409
    assert "Ann already decided this case" in second.content.decode()
    assert Decision.objects.filter(escalation=case).count() == 1


def test_accept_by_form_post(reviewer, make_case):
    case = make_case()
    response = client_for(reviewer).post(f"/cases/{case.pk}/accept", {"version": case.version})
    assert response.status_code == 302
    case.refresh_from_db()
    assert case.status == Status.IN_REVIEW and case.assignee == reviewer


def test_get_is_not_allowed_on_actions(reviewer, make_case):
    case = make_case()
    assert client_for(reviewer).get(f"/cases/{case.pk}/decide").status_code == 405


def test_healthz(db):
    response = Client().get("/healthz")
    assert response.status_code == 200 and response.json()["ok"] is True


def test_a_rostered_reviewer_sees_and_takes_only_cases_they_have_the_skills_for(
    reviewer, supervisor, make_case, review_type
):
    from escalations.decisions import escalation_accept
    from escalations.errors import Forbidden
    from routing.models import ReviewerProfile, ReviewerSkill, Skill

    legal, refunds = (
        Skill.objects.create(slug="legal", name="Legal"),
        Skill.objects.create(slug="refunds", name="Refunds"),
    )
    profile = ReviewerProfile.objects.create(user=reviewer, capacity=3)
    ReviewerSkill.objects.create(profile=profile, skill=refunds)
    review_type.required_skills = ["refunds"]
    review_type.save()
    mine = make_case()
    review_type.required_skills = ["refunds", "legal"]
    review_type.save()
    needs_legal = make_case()
    assert needs_legal.required_skills == ["refunds", "legal"] and legal.slug

    body = client_for(reviewer).get("/?view=queue").content.decode()
    assert f"case-row-{mine.pk}" in body and f"case-row-{needs_legal.pk}" not in body
    body = client_for(supervisor).get("/?view=queue").content.decode()
    assert f"case-row-{needs_legal.pk}" in body

    with pytest.raises(Forbidden, match="legal"):
        escalation_accept(
            escalation_id=needs_legal.pk, reviewer=reviewer, version=needs_legal.version
        )
    escalation_accept(escalation_id=mine.pk, reviewer=reviewer, version=mine.version)
