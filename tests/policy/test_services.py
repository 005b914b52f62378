"""Policy services: every real change versioned and audited old → new; hard rules kept on."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import User

from escalations.audit import Actor, audit_verify
from escalations.errors import Forbidden, InvalidInput
from escalations.models import AuditEvent, Integration, PolicyRule, TaskType
from escalations.policy_admin import (
    integration_enable_callback_url,
    integration_regenerate_webhook_secret,
    integration_update,
    rule_save,
    rule_set_enabled,
    rule_test,
    task_type_update,
)
from tests.people import case_package


def last_event() -> AuditEvent:
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    return event


def test_a_task_type_change_bumps_the_version_and_audits_old_and_new(
    admin_user: User, review_type: TaskType
) -> None:
    updated = task_type_update(
        task_type=review_type,
        actor=Actor.person(admin_user),
        level=3,
        review_threshold=0.6,
        required_skills=["refunds"],
    )
    assert (updated.level, updated.version) == (3, 2)
    event = last_event()
    assert (event.verb, event.actor_label) == ("task_type.changed", "ada")
    assert event.data["changed"] == {
        "level": {"from": 2, "to": 3},
        "review_threshold": {"from": 0.7, "to": 0.6},
        "required_skills": {"from": [], "to": ["refunds"]},
    }
    assert event.data["version"] == 2
    assert audit_verify()[1] is None


def test_saving_the_same_values_changes_nothing(admin_user: User, review_type: TaskType) -> None:
    before = AuditEvent.objects.count()
    task_type_update(task_type=review_type, actor=Actor.person(admin_user), level=2)
    review_type.refresh_from_db()
    assert review_type.version == 1 and AuditEvent.objects.count() == before


def test_an_invalid_task_type_is_refused_by_field(admin_user: User, review_type: TaskType) -> None:
    with pytest.raises(InvalidInput) as caught:
        task_type_update(
            task_type=review_type,
            actor=Actor.person(admin_user),
            review_threshold=0.9,
            autonomy_threshold=0.8,
        )
    assert {e["field"] for e in caught.value.errors} == {"review_threshold"}
    review_type.refresh_from_db()
    assert (review_type.review_threshold, review_type.version) == (0.7, 1)


def test_only_admins_change_the_policy(supervisor: User, review_type: TaskType) -> None:
    with pytest.raises(Forbidden):
        task_type_update(task_type=review_type, actor=Actor.person(supervisor), level=4)
    with pytest.raises(Forbidden):
        rule_save(rule=None, actor=Actor.person(supervisor), code="x", name="x", keywords=["x"])


def test_a_rule_is_created_then_changed_with_its_version(
    admin_user: User, review_type: TaskType
) -> None:
    actor = Actor.person(admin_user)
    rule = rule_save(
        rule=None,
        actor=actor,
        code="big_refund",
        name="Big refund",
        conditions=[{"key": "amount", "op": "gt", "value": 500}],
        level=3,
        task_types=[review_type],
    )
    assert rule.version == 1 and last_event().verb == "policy_rule.created"
    assert last_event().data["task_types"] == ["refund_review"]
    rule = rule_save(rule=rule, actor=actor, level=4, task_types=[])
    assert rule.version == 2
    event = last_event()
    assert event.verb == "policy_rule.changed"
    assert event.data["changed"] == {
        "level": {"from": 3, "to": 4},
        "task_types": {"from": ["refund_review"], "to": []},
    }


def test_a_rule_that_matches_nothing_is_refused(admin_user: User) -> None:
    with pytest.raises(InvalidInput) as caught:
        rule_save(rule=None, actor=Actor.person(admin_user), code="empty", name="Empty", level=3)
    assert "keywords" in {e["field"] for e in caught.value.errors}
    assert not PolicyRule.objects.filter(code="empty").exists()


def test_hard_rules_cannot_be_disabled_or_made_soft(admin_user: User) -> None:
    actor = Actor.person(admin_user)
    hard = rule_save(
        rule=None, actor=actor, code="boiler", name="Boiler", keywords=["boiler smoke"], level=4,
        hard=True,
    )  # fmt: skip
    with pytest.raises(InvalidInput):
        rule_set_enabled(rule=hard, enabled=False, actor=actor)
    with pytest.raises(InvalidInput):
        rule_save(rule=hard, actor=actor, hard=False)
    hard.refresh_from_db()
    assert hard.enabled and hard.hard and hard.version == 1
    soft = rule_save(rule=None, actor=actor, code="vip", name="VIP", keywords=["vip"], priority=2)
    soft = rule_set_enabled(rule=soft, enabled=False, actor=actor)
    assert not soft.enabled and soft.version == 2
    assert last_event().data["changed"] == {"enabled": {"from": True, "to": False}}


def test_a_rule_test_shows_the_triggers_and_writes_nothing(
    admin_user: User, review_type: TaskType
) -> None:
    rule_save(
        rule=None, actor=Actor.person(admin_user), code="lawyer_word", name="Lawyer",
        keywords=["platypus"], level=3, priority=2,
    )  # fmt: skip
    before = AuditEvent.objects.count()
    package = case_package(transcript=[{"role": "customer", "text": "A platypus ate my parcel."}])
    result = rule_test(package_json=json.dumps(package), task_type_slug=None)
    assert result.ok and result.decision is not None
    assert result.decision.level == 3 and result.decision.priority == 2
    fired = {t.rule: t for t in result.decision.triggers if t.code == "policy_rule"}
    assert list(fired) == ["lawyer_word"] and "platypus" in fired["lawyer_word"].detail
    assert AuditEvent.objects.count() == before


def test_a_rule_test_with_bad_json_or_a_bad_package_gives_field_errors(
    review_type: TaskType,
) -> None:
    bad_json = rule_test(package_json="{not json", task_type_slug=None)
    assert not bad_json.ok and bad_json.errors[0]["field"] == "package"
    assert "Not valid JSON" in bad_json.errors[0]["message"]
    missing = rule_test(package_json=json.dumps({"summary": "x"}), task_type_slug="refund_review")
    assert not missing.ok
    assert any("confidence" in e["message"] for e in missing.errors)
    unknown = rule_test(package_json=json.dumps(case_package()), task_type_slug="nope")
    assert unknown.errors[0]["field"] == "task_type"


def test_integration_edits_are_audited(admin_user: User, agent: Integration) -> None:
    actor = Actor.person(admin_user)
    integration_update(integration=agent, actor=actor, callback_url="https://bot.example.com/cb")
    assert last_event().data == {
        "default_callback_url": {"from": "", "to": "https://bot.example.com/cb"}
    }
    old_secret = agent.webhook_secret
    secret = integration_regenerate_webhook_secret(integration=agent, actor=actor)
    assert secret != old_secret and secret.startswith("whsec_")
    assert secret not in json.dumps(last_event().data)
    Integration.objects.filter(pk=agent.pk).update(disabled_callback_urls=["https://gone.test/"])
    agent = integration_enable_callback_url(
        integration=agent, url="https://gone.test/", actor=actor
    )
    assert agent.disabled_callback_urls == []
    with pytest.raises(InvalidInput):
        integration_enable_callback_url(integration=agent, url="https://gone.test/", actor=actor)
    agent = integration_update(integration=agent, actor=actor, active=False)
    assert not agent.active
    with pytest.raises(InvalidInput):
        integration_update(integration=agent, actor=actor, callback_url="not a url")
