"""The demo: seed_demo, the generated packages, the simulator and the operations commands."""

from __future__ import annotations

import json
import random
import re
import stat
from collections import Counter
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from console.roles import ROLES
from console.services import user_create
from escalations.audit import audit_verify
from escalations.demo_packages import demo_follow_up, demo_package
from escalations.errors import Conflict, InvalidInput
from escalations.models import AuditEvent, Escalation, Integration, PolicyRule, TaskType
from escalations.schemas import HandoffIn, MessagesIn
from escalations.services import escalation_ingest, integration_authenticate

TOKEN = re.compile(r"btn_[A-Za-z0-9_-]+")


def seed(tmp_path: Path) -> tuple[str, Path]:
    out = StringIO()
    token_file = tmp_path / "demo-agent.token"
    call_command("seed_demo", token_file=str(token_file), stdout=out)
    printed = TOKEN.findall(out.getvalue())
    assert len(printed) == 1, out.getvalue()
    return printed[0], token_file


@pytest.mark.django_db
def test_seed_demo_creates_the_demo_and_is_idempotent(tmp_path: Path) -> None:
    first_token, token_file = seed(tmp_path)

    slugs = set(TaskType.objects.values_list("slug", flat=True))
    assert {
        "order_status",
        "refund_request",
        "pricing_exception",
        "fraud_alert",
        "prescription_refill",
        "boiler_repair",
        "gas_safety_check",
    } <= slugs
    order_status = TaskType.objects.get(slug="order_status")
    assert (order_status.level, order_status.sample_rate) == (1, 0.1)
    refund_rule = PolicyRule.objects.get(code="refund_over_500")
    assert refund_rule.conditions == [{"key": "amount", "op": "gt", "value": 500}]
    assert not refund_rule.hard
    User = get_user_model()
    roles = {
        user.username: [g.name for g in user.groups.all()]
        for user in User.objects.filter(
            username__in=["reviewer1", "reviewer2", "supervisor1", "admin1"]
        )
    }
    assert roles == {
        "reviewer1": ["reviewer"],
        "reviewer2": ["reviewer"],
        "supervisor1": ["supervisor"],
        "admin1": ["admin"],
    }
    assert User.objects.get(username="admin1").is_staff
    assert not User.objects.get(username="supervisor1").is_staff
    assert User.objects.get(username="reviewer1").check_password("baton-demo")
    assert integration_authenticate(token=first_token) == Integration.objects.get(name="demo-agent")
    assert token_file.read_text().strip() == first_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    created = Counter(AuditEvent.objects.values_list("verb", flat=True))
    assert created["task_type.created"] == TaskType.objects.count()
    assert created["user.created"] == 4

    counts = (TaskType.objects.count(), PolicyRule.objects.count(), User.objects.count())
    second_token, _ = seed(tmp_path)

    assert (TaskType.objects.count(), PolicyRule.objects.count(), User.objects.count()) == counts
    assert Integration.objects.filter(name="demo-agent").count() == 1
    # Only the hash is stored, so the second run issues a new token and the old one dies.
    assert second_token != first_token
    assert integration_authenticate(token=first_token) is None
    assert integration_authenticate(token=second_token) is not None
    assert token_file.read_text().strip() == second_token
    again = Counter(AuditEvent.objects.values_list("verb", flat=True))
    assert again["task_type.created"] == created["task_type.created"]
    assert again["user.created"] == 4
    assert again["integration.token_rotated"] == 1
    assert audit_verify()[1] is None


@pytest.mark.django_db
def test_demo_packages_are_valid_and_ingest(tmp_path: Path) -> None:
    seed(tmp_path)
    integration = Integration.objects.get(name="demo-agent")
    rng = random.Random(20240601)

    for n in range(200):
        package = json.loads(json.dumps(demo_package(rng, n)))  # exactly what goes on the wire
        result = escalation_ingest(
            integration=integration, package=HandoffIn.model_validate(package)
        )
        assert result.created, package["external_id"]
    MessagesIn.model_validate(demo_follow_up(rng))

    cases = list(Escalation.objects.all())
    assert len(cases) == 200
    task_types = Counter(case.task_type.slug for case in cases)
    assert len(task_types) >= 10, task_types
    statuses = Counter(case.status for case in cases)
    assert statuses["auto_resolved"] > 0 and statuses["queued"] > 0
    codes = Counter(t["code"] for case in cases for t in case.triggers)
    for code in (
        "low_confidence",
        "explicit_request",
        "sentiment",
        "policy_rule",
        "repeated_failure",
    ):
        assert codes[code] > 0, codes
    rules = {t["rule"] for case in cases for t in case.triggers if t.get("rule")}
    assert {"refund_over_500", "gas_leak"} <= rules, rules
    assert {case.priority for case in cases} >= {1, 2, 3, 4}
    acme = [
        case for case in cases if case.customer and case.customer.external_id == "cus_acme_corp"
    ]
    assert acme and all(case.confidence == 0.72 for case in acme)
    assert all({"non-standard request", "high-value account"} <= set(c.flags) for c in acme)


@pytest.mark.django_db(transaction=True)
def test_simulate_agent_posts_through_the_http_api(tmp_path: Path, live_server) -> None:  # type: ignore[no-untyped-def]
    token, _ = seed(tmp_path)
    out = StringIO()

    call_command(
        "simulate_agent",
        url=live_server.url,
        token=token,
        count=6,
        rate=6000,
        seed=3,
        stdout=out,
    )

    assert Escalation.objects.count() == 6, out.getvalue()
    assert "-> 4" not in out.getvalue() and "-> 5" not in out.getvalue(), out.getvalue()


@pytest.mark.django_db
def test_simulate_agent_gives_up_on_a_bad_token(tmp_path: Path, live_server) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="401"):
        call_command(
            "simulate_agent", url=live_server.url, token="btn_wrong", count=1, stdout=StringIO()
        )


@pytest.mark.django_db
def test_create_integration_prints_a_working_token() -> None:
    out = StringIO()
    call_command(
        "create_integration",
        "helpdesk-bot",
        callback_url="https://agent.example.com/cb",
        stdout=out,
    )

    token = TOKEN.findall(out.getvalue())
    assert len(token) == 1
    integration = integration_authenticate(token=token[0])
    assert integration is not None and integration.name == "helpdesk-bot"
    assert integration.default_callback_url == "https://agent.example.com/cb"
    assert "not stored" in out.getvalue()
    with pytest.raises(CommandError, match="exists already"):
        call_command("create_integration", "helpdesk-bot", stdout=StringIO())
    with pytest.raises(CommandError, match="valid URL"):
        call_command("create_integration", "other", callback_url="not a url", stdout=StringIO())


@pytest.mark.django_db
def test_add_user_prints_the_login_and_password() -> None:
    out = StringIO()
    call_command("add_user", "carol", role="supervisor", stdout=out)

    password = re.search(r"password:\s+(\S+)", out.getvalue())
    assert password is not None
    carol = get_user_model().objects.get(username="carol")
    assert carol.check_password(password.group(1))
    assert [g.name for g in carol.groups.all()] == ["supervisor"]
    assert carol.has_perm("escalations.reassign_escalation")
    assert not carol.has_perm("escalations.manage_policy")
    event = AuditEvent.objects.get(verb="user.created")
    assert (event.actor_label, event.data["role"]) == ("cli", "supervisor")

    with pytest.raises(CommandError):
        call_command("add_user", "dave", role="boss", stdout=StringIO())
    with pytest.raises(CommandError, match="exists already"):
        call_command("add_user", "Carol", role="reviewer", stdout=StringIO())
    call_command("add_user", "erin", role="admin", password="chosen-pass-1", stdout=StringIO())
    erin = get_user_model().objects.get(username="erin")
    assert erin.is_staff and not erin.is_superuser and erin.check_password("chosen-pass-1")


@pytest.mark.django_db
def test_user_create_refuses_bad_input() -> None:
    with pytest.raises(InvalidInput, match="Unknown role"):
        user_create(username="frank", role="root")
    with pytest.raises(InvalidInput):
        user_create(username="  ", role=ROLES[0])
    with pytest.raises(InvalidInput, match="username"):
        user_create(username="no spaces allowed", role=ROLES[0])
    user_create(username="gina", role=ROLES[0])
    with pytest.raises(Conflict):
        user_create(username="gina", role=ROLES[1])
    assert get_user_model().objects.filter(username__in=["frank", "no spaces allowed"]).count() == 0
