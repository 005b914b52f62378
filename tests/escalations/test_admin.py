"""The Django admin: roles decide access, the audit trail is untouchable, edits are audited."""

from __future__ import annotations

import random
import re
from io import StringIO
from pathlib import Path

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from escalations.audit import audit_verify
from escalations.demo_packages import demo_package
from escalations.models import AuditEvent, Integration, TaskType
from escalations.schemas import HandoffIn
from escalations.services import escalation_ingest, integration_authenticate


@pytest.fixture
def demo(db: None, tmp_path: Path) -> None:
    call_command("seed_demo", token_file=str(tmp_path / "token"), stdout=StringIO())
    integration = Integration.objects.get(name="demo-agent")
    rng = random.Random(5)
    for n in range(5):
        escalation_ingest(
            integration=integration, package=HandoffIn.model_validate(demo_package(rng, n))
        )


def client_for(username: str) -> Client:
    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return client


def admin_url(model: type, view: str, *args: object) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


def test_an_admin_sees_every_baton_model(demo: None) -> None:
    client = client_for("admin1")
    baton_models = [m for m in admin.site._registry if m._meta.app_label == "escalations"]
    assert {m.__name__ for m in baton_models} >= {
        "TaskType",
        "PolicyRule",
        "Integration",
        "Customer",
        "Escalation",
        "Message",
        "Feedback",
        "AuditEvent",
    }
    for model in baton_models:
        assert client.get(admin_url(model, "changelist")).status_code == 200, model
        first = model._default_manager.first()
        if first is not None:
            assert client.get(admin_url(model, "change", first.pk)).status_code == 200, model


def test_the_audit_trail_is_read_only_even_for_a_superuser(demo: None) -> None:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123")
    client = Client()
    client.force_login(root)
    event = AuditEvent.objects.first()
    assert event is not None
    assert client.get(admin_url(AuditEvent, "add")).status_code == 403
    assert client.get(admin_url(AuditEvent, "delete", event.pk)).status_code == 403
    page = client.get(admin_url(AuditEvent, "change", event.pk)).content.decode()
    assert 'name="verb"' not in page and "Save" not in page
    response = client.post(
        admin_url(AuditEvent, "changelist"),
        {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"},
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists(), response.status_code


def test_reviewers_and_supervisors_stay_out_of_policy(demo: None) -> None:
    # Not staff: the admin sends them to its login page.
    response = client_for("reviewer1").get(admin_url(TaskType, "changelist"))
    assert response.status_code == 302
    supervisor = get_user_model().objects.get(username="supervisor1")
    supervisor.is_staff = True
    supervisor.save()
    client = client_for("supervisor1")
    assert client.get(admin_url(TaskType, "changelist")).status_code == 403
    assert client.get(admin_url(AuditEvent, "changelist")).status_code == 200


def test_a_task_type_edit_is_versioned_and_audited(demo: None) -> None:
    client = client_for("admin1")
    task_type = TaskType.objects.get(slug="refund_request")
    form = {
        "slug": task_type.slug,
        "name": task_type.name,
        "description": task_type.description,
        "level": 3,
        "autonomy_threshold": task_type.autonomy_threshold,
        "review_threshold": task_type.review_threshold,
        "sentiment_threshold": task_type.sentiment_threshold,
        "default_priority": task_type.default_priority,
        "sample_rate": task_type.sample_rate,
        "required_skills": '["refunds"]',
        "active": "on",
    }
    response = client.post(admin_url(TaskType, "change", task_type.pk), form)
    assert response.status_code == 302, response.content.decode()[:2000]

    task_type.refresh_from_db()
    assert (task_type.level, task_type.version) == (3, 2)
    event = AuditEvent.objects.order_by("-seq").first()
    assert event is not None
    assert (event.verb, event.actor_label) == ("task_type.changed", "admin1")
    assert event.data["changed"] == {"level": {"from": 2, "to": 3}}
    assert audit_verify()[1] is None


def test_an_integration_added_in_the_admin_gets_a_token_shown_once(demo: None) -> None:
    client = client_for("admin1")
    response = client.post(
        admin_url(Integration, "add"),
        {
            "name": "billing-bot",
            "default_callback_url": "https://bots.example.com/cb",
            "active": "on",
        },
        follow=True,
    )
    page = response.content.decode()
    token = re.search(r"btn_[A-Za-z0-9_-]+", page)
    assert token is not None, page[:3000]
    integration = integration_authenticate(token=token.group(0))
    assert integration is not None and integration.name == "billing-bot"
    assert AuditEvent.objects.filter(verb="integration.created", actor_label="admin1").exists()
    change = client.get(admin_url(Integration, "change", integration.pk)).content.decode()
    assert "token_hash" not in change and integration.token_hash not in change


def test_skills_and_teams_edited_in_the_admin_are_audited_before_and_after(demo: None) -> None:
    from routing.models import Skill, Team

    client = client_for("admin1")
    added = client.post(reverse("admin:routing_team_add"), {"slug": "night", "name": "Night"})
    assert added.status_code == 302, added.content.decode()[:300]
    team = Team.objects.get(slug="night")
    client.post(
        reverse("admin:routing_team_change", args=[team.pk]), {"slug": "night", "name": "Nights"}
    )
    client.post(reverse("admin:routing_team_delete", args=[team.pk]), {"post": "yes"})
    client.post(reverse("admin:routing_skill_add"), {"slug": "warranty", "name": "Warranty"})
    assert not Team.objects.filter(slug="night").exists()
    assert Skill.objects.filter(slug="warranty").exists()
    events = AuditEvent.objects.filter(verb__startswith="roster.").order_by("seq")
    trail = [(e.verb, e.data) for e in events if e.verb.startswith(("roster.team", "roster.skill"))]
    assert trail[-4:] == [
        ("roster.team_added", {"slug": "night", "name": "Night"}),
        ("roster.team_changed", {"changed": {"name": {"from": "Night", "to": "Nights"}}}),
        ("roster.team_removed", {"slug": "night", "name": "Nights"}),
        ("roster.skill_added", {"slug": "warranty", "name": "Warranty"}),
    ]
    assert audit_verify()[1] is None
