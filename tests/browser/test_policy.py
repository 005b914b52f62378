"""Policy in Chromium: an admin lowers a task type's level in the console and the very next
case an agent posts through the API follows it; the audit trail holds the old and new level
(tests/browser/conftest.py has the live server and sign-in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from escalations.models import AuditEvent, Escalation, Level, Status, TaskType
from escalations.services import integration_create
from tests.browser.conftest import LiveServer, in_thread
from tests.people import case_package, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    # WhiteNoise hands Django a sync file iterator for every static file under ASGI.
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous"),
]

SignIn = Callable[..., Page]


def post_case(live: LiveServer, token: str, n: int) -> dict[str, Any]:
    response = httpx.post(
        f"{live.url}/api/v1/escalations",
        json=case_package(n),
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (200, 201, 202), response.text
    return response.json()


def test_a_level_change_in_the_console_rules_the_next_case_from_the_api(
    sign_in: SignIn, live_asgi: LiveServer, review_type: TaskType
) -> None:
    admin: User = in_thread(make_user, "ada", "admin")
    _, token = in_thread(integration_create, name="refund-bot")

    before = post_case(live_asgi, token, 1)
    first = in_thread(Escalation.objects.get, pk=before["id"])
    assert (first.level, first.task_type_version, first.status) == (2, 1, Status.QUEUED)

    page = sign_in(admin)
    page.get_by_role("link", name="Policy").click()
    page.locator(f"#task-type-{review_type.pk} a").click()
    expect(page.locator("#task-type-title")).to_contain_text("policy v1")
    page.select_option("#id_level", str(Level.AUTONOMOUS))
    page.fill("#id_autonomy_threshold", "0.8")  # the package's confidence 0.9 clears it
    page.click("button.primary")
    expect(page.locator(f"#task-type-{review_type.pk}")).to_contain_text("L1 autonomous")
    expect(page.locator(f"#task-type-{review_type.pk}")).to_contain_text("v2")
    expect(page.locator(f"#task-type-{review_type.pk}")).to_contain_text("ada")

    after = post_case(live_asgi, token, 2)
    second = in_thread(Escalation.objects.get, pk=after["id"])
    assert (second.level, second.task_type_version) == (1, 2)
    assert second.status == Status.AUTO_RESOLVED
    assert second.policy_snapshot["task_type"]["version"] == 2
    first = in_thread(Escalation.objects.get, pk=first.pk)
    assert (first.level, first.task_type_version) == (2, 1)  # judged by the version it met

    event = in_thread(lambda: AuditEvent.objects.filter(verb="task_type.changed").get())
    assert event.actor_label == "ada"
    assert event.data["changed"]["level"] == {"from": 2, "to": 1}
    assert event.data["changed"]["autonomy_threshold"] == {"from": 0.85, "to": 0.8}
    assert event.data["version"] == 2
