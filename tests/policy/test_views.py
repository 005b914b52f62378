"""The policy pages: admins only, forms with errors beside the fields, secrets shown once."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from escalations.models import AuditEvent, Integration, PolicyRule, TaskType
from escalations.services import integration_authenticate
from routing.models import SlaTarget
from tests.people import case_package


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def urls(task_type: TaskType, rule: PolicyRule, integration: Integration) -> list[tuple[str, str]]:
    i = integration.pk
    return [
        ("get", reverse("policy")),
        ("get", reverse("policy_task_types")),
        ("get", reverse("policy_task_type", args=[task_type.pk])),
        ("post", reverse("policy_task_type", args=[task_type.pk])),
        ("get", reverse("policy_task_type_new")),
        ("post", reverse("policy_task_type_new")),
        ("get", reverse("policy_rules")),
        ("get", reverse("policy_rule_new")),
        ("post", reverse("policy_rule_new")),
        ("get", reverse("policy_rule", args=[rule.pk])),
        ("post", reverse("policy_rule", args=[rule.pk])),
        ("post", reverse("policy_rule_enabled", args=[rule.pk])),
        ("get", reverse("policy_test")),
        ("post", reverse("policy_test")),
        ("get", reverse("policy_sla")),
        ("post", reverse("policy_sla")),
        ("get", reverse("policy_integrations")),
        ("post", reverse("policy_integration_create")),
        ("post", reverse("policy_integration_rotate", args=[i])),
        ("post", reverse("policy_integration_secret", args=[i])),
        ("post", reverse("policy_integration_webhook", args=[i])),
        ("post", reverse("policy_integration_active", args=[i])),
        ("post", reverse("policy_integration_callback_enable", args=[i])),
    ]


@pytest.fixture
def rule(db: None) -> PolicyRule:
    return PolicyRule.objects.get(hard=True, code="legal")


def test_reviewers_and_supervisors_get_403_on_every_policy_url(
    reviewer: User,
    supervisor: User,
    review_type: TaskType,
    rule: PolicyRule,
    agent: Integration,
) -> None:
    before = AuditEvent.objects.count()
    for user in (reviewer, supervisor):
        client = client_for(user)
        for method, url in urls(review_type, rule, agent):
            response = getattr(client, method)(url)
            if url == reverse("policy"):  # a redirect to the task types, which refuse
                response = client.get(response.url)
            assert response.status_code == 403, (user.username, method, url)
    anonymous = Client()
    for method, url in urls(review_type, rule, agent):
        assert getattr(anonymous, method)(url).status_code == 302, url
    assert AuditEvent.objects.count() == before


def test_an_admin_sees_every_page_with_versions_and_the_link(
    admin_user: User, review_type: TaskType, rule: PolicyRule, agent: Integration
) -> None:
    client = client_for(admin_user)
    for method, url in urls(review_type, rule, agent):
        if method == "get":
            response = client.get(url, follow=True)
            assert response.status_code == 200, url
    page = client.get(reverse("policy_task_types")).content.decode()
    assert 'href="/policy/"' in page and "v1" in page
    reviewer_page = client_for(admin_user).get(reverse("policy_rules")).content.decode()
    assert "hard" in reviewer_page and "legal" in reviewer_page


def test_a_level_change_from_the_form_is_versioned_and_shows_who_changed_it(
    admin_user: User, review_type: TaskType
) -> None:
    client = client_for(admin_user)
    form = {
        "level": "3",
        "review_threshold": "0.7",
        "autonomy_threshold": "0.85",
        "default_priority": "3",
        "required_skills": "refunds, billing",
        "sample_rate": "0.05",
        "active": "on",
    }
    response = client.post(reverse("policy_task_type", args=[review_type.pk]), form)
    assert response.status_code == 302
    review_type.refresh_from_db()
    assert (review_type.level, review_type.version) == (3, 2)
    assert review_type.required_skills == ["refunds", "billing"]
    event = AuditEvent.objects.get(verb="task_type.changed")
    assert event.data["changed"]["level"] == {"from": 2, "to": 3}
    page = client.get(reverse("policy_task_type", args=[review_type.pk])).content.decode()
    assert "policy v2" in page and "ada" in page


def test_task_type_errors_are_shown_beside_the_field(
    admin_user: User, review_type: TaskType
) -> None:
    form = {
        "level": "2",
        "review_threshold": "0.95",
        "autonomy_threshold": "0.85",
        "default_priority": "3",
        "sample_rate": "1.5",
        "active": "on",
    }
    response = client_for(admin_user).post(reverse("policy_task_type", args=[review_type.pk]), form)
    assert response.status_code == 422
    page = response.content.decode()
    assert 'id="id_sample_rate_error"' in page
    review_type.refresh_from_db()
    assert review_type.version == 1


def test_an_admin_creates_a_task_type_that_agents_can_use_at_once(
    admin_user: User, review_type: TaskType
) -> None:
    client = client_for(admin_user)
    blank = client.get(reverse("policy_task_type_new")).content.decode()
    assert 'name="slug"' in blank and 'value="0.05"' in blank  # the model's defaults
    form = {
        "name": "Warranty claims",
        "slug": "warranty",
        "description": "Repairs and replacements.",
        "level": "3",
        "review_threshold": "0.7",
        "autonomy_threshold": "0.9",
        "default_priority": "2",
        "required_skills": "repairs",
        "sample_rate": "0.1",
        "active": "on",
    }
    taken = client.post(reverse("policy_task_type_new"), {**form, "slug": review_type.slug})
    assert taken.status_code == 422
    assert 'id="id_slug_error"' in taken.content.decode()
    response = client.post(reverse("policy_task_type_new"), form)
    assert response.status_code == 302
    created = TaskType.objects.get(slug="warranty")
    assert (created.name, created.level, created.required_skills) == (
        "Warranty claims",
        3,
        ["repairs"],
    )
    event = AuditEvent.objects.get(verb="task_type.created")
    assert event.data["level"] == 3 and event.user == admin_user
    assert "Warranty claims" in client.get(reverse("policy_task_types")).content.decode()


def test_a_rule_is_created_and_toggled_and_a_hard_one_stays_on(
    admin_user: User, review_type: TaskType, rule: PolicyRule
) -> None:
    client = client_for(admin_user)
    bad = client.post(reverse("policy_rule_new"), {"code": "x", "name": "X", "pattern": "("})
    assert bad.status_code == 422
    assert 'id="id_pattern_error"' in bad.content.decode()
    created = client.post(
        reverse("policy_rule_new"),
        {
            "code": "vip",
            "name": "VIP",
            "enabled": "on",
            "keywords": "vip\ngold member",
            "conditions": '[{"key": "amount", "op": "gt", "value": 500}]',
            "priority": "2",
            "task_types": [review_type.pk],
        },
    )
    assert created.status_code == 302
    vip = PolicyRule.objects.get(code="vip")
    assert vip.keywords == ["vip", "gold member"] and vip.conditions[0]["value"] == 500
    toggled = client.post(
        reverse("policy_rule_enabled", args=[vip.pk]), headers={"HX-Request": "true"}
    )
    assert toggled.status_code == 200 and f'id="rule-{vip.pk}"' in toggled.content.decode()
    vip.refresh_from_db()
    assert not vip.enabled and vip.version == 2
    refused = client.post(reverse("policy_rule_enabled", args=[rule.pk]))
    assert refused.status_code == 302
    rule.refresh_from_db()
    assert rule.enabled
    # The disabled box on a hard rule's form cannot switch it off either.
    form = {"code": "renamed", "name": rule.name, "keywords": "\n".join(rule.keywords),
            "pattern": rule.pattern, "level": str(rule.level or ""),
            "priority": str(rule.priority or "")}  # fmt: skip
    client.post(reverse("policy_rule", args=[rule.pk]), form)
    rule.refresh_from_db()
    assert rule.enabled and rule.code == "legal"


def test_testing_a_package_lists_the_triggers_and_reports_bad_json(
    admin_user: User, review_type: TaskType
) -> None:
    client = client_for(admin_user)
    before = AuditEvent.objects.count()
    package = case_package(
        confidence=0.5,
        transcript=[{"role": "customer", "text": "Let me talk to a human, my lawyer says so."}],
    )
    response = client.post(reverse("policy_test"), {"package": json.dumps(package)})
    page = response.content.decode()
    assert response.status_code == 200
    for code in ("low_confidence", "explicit_request", "policy_rule"):
        assert code in page, code
    assert "policy v1" in page and "L3 flag" in page
    bad = client.post(reverse("policy_test"), {"package": "{oops"})
    assert bad.status_code == 422 and "Not valid JSON" in bad.content.decode()
    assert AuditEvent.objects.count() == before


def test_sla_targets_are_saved_through_the_service(admin_user: User) -> None:
    client = client_for(admin_user)
    form = {"band": "2", "p2-priority": "2", "p2-accept_minutes": "10",
            "p2-resolve_minutes": "5", "p2-warning_share": "0.75"}  # fmt: skip
    bad = client.post(reverse("policy_sla"), form)
    assert bad.status_code == 422 and 'id="id_p2-resolve_minutes_error"' in bad.content.decode()
    form["p2-resolve_minutes"] = "120"
    assert client.post(reverse("policy_sla"), form).status_code == 302
    row = SlaTarget.objects.get(priority=2)
    assert (row.accept_seconds, row.resolve_seconds) == (600, 7200)
    assert AuditEvent.objects.filter(verb="sla_target.changed").exists()


def test_a_new_token_and_a_rotated_one_are_shown_once(admin_user: User, agent: Integration) -> None:
    client = client_for(admin_user)
    page = client.post(
        reverse("policy_integration_create"),
        {"name": "billing-bot", "callback_url": "https://bots.example.com/cb"},
    ).content.decode()
    token = re.search(r"btn_[A-Za-z0-9_-]{20,}", page)
    assert token is not None
    bot = integration_authenticate(token=token.group(0))
    assert bot is not None and bot.name == "billing-bot"
    assert token.group(0) not in client.get(reverse("policy_integrations")).content.decode()
    rotated = client.post(reverse("policy_integration_rotate", args=[bot.pk])).content.decode()
    new = re.search(r"btn_[A-Za-z0-9_-]{20,}", rotated)
    assert new is not None and new.group(0) != token.group(0)
    assert integration_authenticate(token=token.group(0)) is None
    secret_page = client.post(reverse("policy_integration_secret", args=[bot.pk])).content.decode()
    bot.refresh_from_db()
    assert bot.webhook_secret in secret_page
    assert bot.webhook_secret not in client.get(reverse("policy_integrations")).content.decode()
    duplicate = client.post(reverse("policy_integration_create"), {"name": "billing-bot"})
    assert duplicate.status_code == 422


def test_webhook_url_callbacks_and_switching_off(admin_user: User, agent: Integration) -> None:
    client = client_for(admin_user)
    url = reverse("policy_integration_webhook", args=[agent.pk])
    bad = client.post(url, {"callback_url": "not a url at all"})
    assert bad.status_code == 422 and "field-error" in bad.content.decode()
    assert client.post(url, {"callback_url": "https://bot.example.com/hook"}).status_code == 302
    Integration.objects.filter(pk=agent.pk).update(disabled_callback_urls=["https://gone.test/"])
    client.post(
        reverse("policy_integration_callback_enable", args=[agent.pk]),
        {"url": "https://gone.test/"},
    )
    client.post(reverse("policy_integration_active", args=[agent.pk]))
    agent.refresh_from_db()
    assert agent.default_callback_url == "https://bot.example.com/hook"
    assert agent.disabled_callback_urls == [] and not agent.active
