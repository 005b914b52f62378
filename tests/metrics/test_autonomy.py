"""Earned autonomy (DESIGN §10) over a hand-built history of decisions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from escalations.models import AuditEvent, Decision, Escalation, Level, Status, TaskType
from metrics.autonomy import DOWN, UP, autonomy_recommendations
from tests.people import (  # noqa: F401  (fixtures)
    agent,
    make_case,
    make_user,
    nobody,
    review_type,
    reviewer,
    supervisor,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def thresholds(settings):
    settings.BATON_AUTONOMY_MIN_DECISIONS = 50
    settings.BATON_AUTONOMY_WINDOW_DAYS = 30
    settings.BATON_AUTONOMY_APPROVE_SHARE = 0.95
    settings.BATON_AUTONOMY_REVERSAL_RATE = 0.05
    settings.BATON_AUTONOMY_MIN_REVIEWS = 20


@pytest.fixture
def admin_user(db: None) -> User:
    return make_user("ada", "admin")


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def history(make_case, reviewer, verbs: list[str], *, days_ago: float = 1) -> list[Decision]:
    """One case per verb (cloned from a real ingest, so it carries the policy snapshot of
    the task type's current level) and its final decision, `days_ago` old."""
    template = make_case()
    cases = []
    for i, verb in enumerate(verbs):
        case = Escalation.objects.get(pk=template.pk)
        case.pk = None
        case.external_id = f"{template.external_id}-h{i}"
        post_hoc = verb in ("confirm", "reverse")
        case.status = Status.AUTO_RESOLVED if post_hoc else Status.RESOLVED
        cases.append(case)
    cases = Escalation.objects.bulk_create(cases)
    decisions = Decision.objects.bulk_create(
        Decision(
            escalation=case,
            reviewer=reviewer,
            verb="approve" if verb == "confirm" else verb,
            final=True,
            case_version=1,
            reason="because" if verb in ("reject", "reverse") else "",
        )
        for case, verb in zip(cases, verbs, strict=True)
    )
    when = timezone.now() - timedelta(days=days_ago)
    Decision.objects.filter(pk__in=[d.pk for d in decisions]).update(created_at=when)
    return decisions


def recs(direction: str) -> list[tuple[str, int, int]]:
    return [
        (r.task_type.slug, r.from_level, r.to_level)
        for r in autonomy_recommendations()
        if r.direction == direction
    ]


# --- Down a level -------------------------------------------------------------------------------


def test_95_percent_unchanged_over_n_decisions_recommends_a_level_down(
    make_case, reviewer, review_type
):
    history(make_case, reviewer, ["approve"] * 48 + ["edit", "reject"])  # 48/50 = 96%
    [rec] = autonomy_recommendations()
    assert (rec.task_type.slug, rec.direction, rec.from_level, rec.to_level) == (
        "refund_review",
        DOWN,
        Level.DRAFT_REVIEW,
        Level.AUTONOMOUS,
    )
    assert rec.evidence["decisions"] == 50 and rec.evidence["approved_unchanged"] == 48
    assert rec.evidence["approved_share"] == 0.96 and rec.evidence["window_days"] == 30


def test_exactly_95_percent_is_enough(make_case, reviewer, review_type, settings):
    settings.BATON_AUTONOMY_MIN_DECISIONS = 20
    history(make_case, reviewer, ["approve"] * 19 + ["edit"])  # 19/20 = 95%
    assert recs(DOWN) == [("refund_review", 2, 1)]


def test_94_percent_is_not_enough(make_case, reviewer, review_type):
    history(make_case, reviewer, ["approve"] * 47 + ["edit", "edit", "reject"])  # 94%
    assert recs(DOWN) == []


def test_fewer_than_n_decisions_is_not_enough(make_case, reviewer, review_type):
    history(make_case, reviewer, ["approve"] * 49)
    assert recs(DOWN) == []


def test_only_the_last_n_decisions_in_the_window_count(make_case, reviewer, review_type):
    history(make_case, reviewer, ["reject"] * 30, days_ago=40)  # outside the window
    history(make_case, reviewer, ["edit"] * 10, days_ago=5)  # older than the last 50
    history(make_case, reviewer, ["approve"] * 50, days_ago=1)
    [rec] = autonomy_recommendations()
    assert (rec.evidence["decisions"], rec.evidence["approved_unchanged"]) == (50, 50)


def test_never_below_l1_and_decisions_from_an_earlier_level_do_not_count(
    make_case, reviewer, review_type
):
    history(make_case, reviewer, ["approve"] * 50)
    TaskType.objects.filter(pk=review_type.pk).update(level=Level.FLAG_STOP)
    # Those cases arrived at L2: no evidence for the type at L3.
    assert recs(DOWN) == []
    TaskType.objects.filter(pk=review_type.pk).update(level=Level.AUTONOMOUS)
    assert recs(DOWN) == []


# --- Back up ------------------------------------------------------------------------------------


@pytest.fixture
def l1_type(review_type: TaskType) -> TaskType:
    TaskType.objects.filter(pk=review_type.pk).update(level=Level.AUTONOMOUS)
    return review_type


def test_reversals_above_the_rate_recommend_a_level_up(make_case, reviewer, l1_type):
    history(make_case, reviewer, ["confirm"] * 18 + ["reverse"] * 2)  # 10% of 20
    [rec] = autonomy_recommendations()
    assert (rec.direction, rec.from_level, rec.to_level) == (UP, 1, 2)
    assert (rec.evidence["reviewed"], rec.evidence["reversed"]) == (20, 2)
    assert rec.evidence["reversal_rate"] == 0.1


def test_reversals_at_the_rate_or_below_the_sample_are_not_enough(make_case, reviewer, l1_type):
    history(make_case, reviewer, ["confirm"] * 19 + ["reverse"])  # 5% is not above 5%
    assert recs(UP) == []
    Decision.objects.all().delete()
    history(make_case, reviewer, ["confirm"] * 16 + ["reverse"] * 3)  # 19 reviews < 20
    assert recs(UP) == []


# --- The page: apply, dismiss, permissions -------------------------------------------------------


def test_only_admins_see_and_act_on_recommendations(
    make_case, reviewer, review_type, supervisor, admin_user
):
    history(make_case, reviewer, ["approve"] * 50)
    post = {"task_type": review_type.pk, "direction": DOWN, "from_level": 2}
    assert Client().get("/autonomy/").status_code == 302
    for user in (reviewer, supervisor):
        client = client_for(user)
        assert client.get("/autonomy/").status_code == 403
        assert client.post("/autonomy/apply", post).status_code == 403
        assert client.post("/autonomy/dismiss", post).status_code == 403
    assert TaskType.objects.get(pk=review_type.pk).level == Level.DRAFT_REVIEW
    body = client_for(admin_user).get("/autonomy/").content.decode()
    assert 'id="rec-refund_review-down"' in body
    assert "50 of the last 50 decisions approved unchanged" in body


def test_apply_moves_the_level_versioned_and_audited_old_to_new(
    make_case, reviewer, review_type, admin_user
):
    history(make_case, reviewer, ["approve"] * 50)
    version = TaskType.objects.get(pk=review_type.pk).version
    client = client_for(admin_user)
    response = client.post(
        "/autonomy/apply", {"task_type": review_type.pk, "direction": DOWN, "from_level": 2}
    )
    assert response.status_code == 302
    task_type = TaskType.objects.get(pk=review_type.pk)
    assert (task_type.level, task_type.version) == (Level.AUTONOMOUS, version + 1)
    changed = AuditEvent.objects.filter(verb="task_type.changed").latest("seq")
    assert changed.actor_label == "ada"
    assert changed.data["changed"]["level"] == {"from": 2, "to": 1}
    applied = AuditEvent.objects.filter(verb="autonomy.applied").latest("seq")
    assert applied.data["evidence"]["decisions"] == 50 and applied.seq > changed.seq
    # The next case follows the new level at once.
    assert make_case().status == Status.AUTO_RESOLVED
    # Applying again (a stale page) changes nothing.
    post = {"task_type": review_type.pk, "direction": DOWN, "from_level": 2}
    assert client.post("/autonomy/apply", post, follow=True).status_code == 200
    assert TaskType.objects.get(pk=review_type.pk).version == version + 1
    assert 'id="rec-refund_review' not in client.get("/autonomy/").content.decode()


def test_dismiss_is_audited_and_hides_it_until_a_fresh_sample_arrives(
    make_case, reviewer, review_type, admin_user, settings
):
    settings.BATON_AUTONOMY_MIN_DECISIONS = 20
    history(make_case, reviewer, ["approve"] * 20)
    client = client_for(admin_user)
    client.post("/autonomy/dismiss", {"task_type": review_type.pk, "direction": DOWN})
    dismissed = AuditEvent.objects.get(verb="autonomy.dismissed")
    assert dismissed.actor_label == "ada" and dismissed.data["evidence"]["decisions"] == 20
    assert TaskType.objects.get(pk=review_type.pk).level == Level.DRAFT_REVIEW
    assert 'id="rec-refund_review-down"' not in client.get("/autonomy/").content.decode()
    history(make_case, reviewer, ["approve"] * 19)  # not yet a whole new sample
    assert recs(DOWN) == []
    history(make_case, reviewer, ["approve"])
    assert recs(DOWN) == [("refund_review", 2, 1)]
