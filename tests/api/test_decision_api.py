"""The agent asks for its decision: GET /escalations/{id} and the long-poll (DESIGN §7).

The long-poll is an async view; these tests drive it through Django's AsyncClient (the
ASGI request path) while a reviewer decides in another thread, as under a real server.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.contrib.auth import get_user_model
from django.db import close_old_connections, connection
from django.test import AsyncClient, Client

from console import events
from console.roles import roles_ensure
from escalations.decisions import DecisionInput, escalation_decide
from escalations.models import Decision, Escalation, Integration, TaskType, WebhookDelivery
from escalations.schemas import HandoffIn
from escalations.services import escalation_cancel, escalation_ingest, integration_create
from tests.conftest import API, load_fixture

_counter = iter(range(1, 1_000_000))


@pytest.fixture
def reviewer(db: None) -> Any:
    user = get_user_model().objects.create_user(
        username="rita", first_name="Rita", last_name="Reyes", password="x"
    )
    roles_ensure()["reviewer"].user_set.add(user)
    return user


@pytest.fixture
def quiet_integration(integration: Integration) -> Integration:
    """The integration without a default callback URL: decisions wait to be fetched."""
    integration.default_callback_url = ""
    integration.save(update_fields=["default_callback_url"])
    return integration


def make_case(integration: Integration, *, callback_url: str | None = None) -> Escalation:
    data = load_fixture("pricing_acme")
    data["external_id"] = f"conv-decision-api-{next(_counter)}"
    data["callback_url"] = callback_url
    escalation = escalation_ingest(
        integration=integration, package=HandoffIn.model_validate(data)
    ).escalation
    assert escalation.level == 2 and escalation.is_open
    return escalation


def decide(case_id: int, reviewer: Any, verb: str = "approve", **kwargs: Any) -> Decision:
    version = Escalation.objects.values_list("version", flat=True).get(pk=case_id)
    return escalation_decide(
        escalation_id=case_id,
        reviewer=reviewer,
        data=DecisionInput(verb=verb, version=version, **kwargs),
    )


class AgentAsyncClient:
    """An ASGI test client sending the integration's token on every request.

    Per request: AsyncClient(headers=...) turns them into WSGI names that the ASGI scope
    then mangles (HTTP_AUTHORIZATION → http-authorization) in this Django version.
    """

    def __init__(self, token: str) -> None:
        self.client = AsyncClient()
        self.headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str) -> Any:
        return await self.client.get(path, headers=self.headers)


def run(coroutine_function: Callable[[], Any]) -> Any:
    """Run an async scenario from a sync test: thread-sensitive ORM calls stay on the
    test's thread and connection."""
    return async_to_sync(coroutine_function)()


# --- The case's state --------------------------------------------------------------------------


def test_a_case_carries_its_decision_and_deliveries(
    api_client: Client,
    integration: Integration,
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url="https://agent.example.com/hooks/case")
    before = api_client.get(f"{API}/escalations/{case.pk}").json()
    assert before["decision"] is None
    assert before["deliveries"] == {"count": 0, "last_state": None}

    with django_capture_on_commit_callbacks(execute=False):  # the webhook stays pending
        decide(case.pk, reviewer, "respond", response_text="We can do 18%, not 22%.")

    after = api_client.get(f"{API}/escalations/{case.pk}").json()
    assert after["status"] == "resolved"
    assert after["deliveries"] == {"count": 1, "last_state": "pending"}
    decision = after["decision"]
    assert decision["verb"] == "respond"
    assert decision["instruction"] == "send_response"
    assert decision["response_text"] == "We can do 18%, not 22%."
    assert decision["decided_by"] == "Rita Reyes"
    # The API and the webhook speak the same document.
    fetched = api_client.get(f"{API}/escalations/{case.pk}/decision").json()
    webhook = WebhookDelivery.objects.get(escalation=case).payload
    assert fetched == webhook
    assert fetched["decision"] == decision


def test_wait_zero_answers_202_pending_at_once(
    api_client: Client, quiet_integration: Integration
) -> None:
    case = make_case(quiet_integration)
    started = time.monotonic()
    response = api_client.get(f"{API}/escalations/{case.pk}/decision")
    assert time.monotonic() - started < 1
    assert response.status_code == 202
    assert response.json() == {
        "type": "escalation.pending",
        "escalation_id": case.pk,
        "external_id": case.external_id,
        "status": "queued",
        "decision": None,
    }


@pytest.mark.parametrize("wait", ["-1", "31", "soon"])
def test_wait_out_of_range_is_422(
    api_client: Client, quiet_integration: Integration, wait: str
) -> None:
    case = make_case(quiet_integration)
    response = api_client.get(f"{API}/escalations/{case.pk}/decision?wait={wait}")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"].endswith("wait")


def test_a_withdrawn_case_answers_409_at_once(
    api_client: Client, quiet_integration: Integration
) -> None:
    case = make_case(quiet_integration)
    escalation_cancel(integration=quiet_integration, escalation_id=case.pk, reason="solved")
    started = time.monotonic()
    response = api_client.get(f"{API}/escalations/{case.pk}/decision?wait=20")
    assert time.monotonic() - started < 1
    assert response.status_code == 409
    assert "no decision will come" in response.json()["message"]


# --- The long-poll over ASGI ---------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_long_poll_answers_at_once_when_already_decided(
    token: str, quiet_integration: Integration, task_types: dict[str, TaskType], reviewer: Any
) -> None:
    case = make_case(quiet_integration)
    decide(case.pk, reviewer, "reject", reason="Outside the pricing policy.")

    async def scenario() -> tuple[Any, float]:
        started = time.monotonic()
        response = await AgentAsyncClient(token).get(
            f"{API}/escalations/{case.pk}/decision?wait=25"
        )
        return response, time.monotonic() - started

    response, elapsed = run(scenario)
    assert response.status_code == 200
    assert elapsed < 1
    body = response.json()
    assert body["type"] == "escalation.decided"
    assert body["status"] == "resolved"
    assert body["decision"]["verb"] == "reject"
    assert body["decision"]["instruction"] == "do_not_execute"
    assert body["decision"]["reason"] == "Outside the pricing policy."


def _decide_in_another_thread(case_id: int, reviewer: Any) -> float:
    """A reviewer's decision on a thread of its own, as a sync view under ASGI makes it;
    returns when it committed."""
    try:
        decide(case_id, reviewer)
        return time.monotonic()
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_long_poll_answers_within_a_second_of_a_decision_made_while_waiting(
    token: str, quiet_integration: Integration, task_types: dict[str, TaskType], reviewer: Any
) -> None:
    case = make_case(quiet_integration)

    async def scenario() -> tuple[Any, float, float, float]:
        async def decide_soon() -> float:
            await asyncio.sleep(0.5)
            decide_elsewhere = sync_to_async(_decide_in_another_thread, thread_sensitive=False)
            return await decide_elsewhere(case.pk, reviewer)

        started = time.monotonic()
        decider = asyncio.create_task(decide_soon())
        response = await AgentAsyncClient(token).get(
            f"{API}/escalations/{case.pk}/decision?wait=20"
        )
        answered = time.monotonic()
        decided = await decider
        return response, started, decided, answered

    response, started, decided, answered = run(scenario)
    assert response.status_code == 200
    assert response.json()["decision"]["verb"] == "approve"
    assert decided - started >= 0.5  # it really was waiting
    # Woken by the case's event, well before the periodic re-read would have noticed.
    assert answered - decided < 1


@pytest.mark.django_db(transaction=True)
def test_long_poll_rereads_the_database_when_the_event_is_lost(
    token: str,
    quiet_integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events, "_send", lambda groups, message: None)  # at-most-once: lost
    case = make_case(quiet_integration)

    async def scenario() -> tuple[Any, float, float]:
        async def decide_soon() -> float:
            await asyncio.sleep(0.3)
            decide_elsewhere = sync_to_async(_decide_in_another_thread, thread_sensitive=False)
            return await decide_elsewhere(case.pk, reviewer)

        decider = asyncio.create_task(decide_soon())
        response = await AgentAsyncClient(token).get(
            f"{API}/escalations/{case.pk}/decision?wait=20"
        )
        answered = time.monotonic()
        return response, await decider, answered

    response, decided, answered = run(scenario)
    assert response.status_code == 200
    assert answered - decided < 3  # the re-read every two seconds found it


@pytest.mark.django_db(transaction=True)
def test_long_poll_answers_202_pending_after_the_wait(
    token: str, quiet_integration: Integration, task_types: dict[str, TaskType]
) -> None:
    case = make_case(quiet_integration)

    async def scenario() -> tuple[Any, float]:
        started = time.monotonic()
        response = await AgentAsyncClient(token).get(f"{API}/escalations/{case.pk}/decision?wait=1")
        return response, time.monotonic() - started

    response, elapsed = run(scenario)
    assert response.status_code == 202
    assert 1 <= elapsed < 3
    assert response.json()["type"] == "escalation.pending"
    assert response.json()["decision"] is None
    assert response.json()["status"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_long_poll_keeps_waiting_through_a_reescalation(
    token: str, quiet_integration: Integration, task_types: dict[str, TaskType], reviewer: Any
) -> None:
    case = make_case(quiet_integration)
    decide(case.pk, reviewer, "escalate", escalate_to_supervisor=True, note="Manager, please.")

    async def scenario() -> Any:
        return await AgentAsyncClient(token).get(f"{API}/escalations/{case.pk}/decision?wait=1")

    response = run(scenario)
    assert response.status_code == 202
    assert response.json()["status"] == "queued"


@pytest.mark.django_db(transaction=True)
def test_another_integrations_case_is_404_and_no_token_is_401(
    token: str, quiet_integration: Integration, task_types: dict[str, TaskType]
) -> None:
    case = make_case(quiet_integration)
    _, other_token = integration_create(name="Other vendor bot")

    async def scenario() -> tuple[Any, Any, float]:
        started = time.monotonic()
        other = await AgentAsyncClient(other_token).get(
            f"{API}/escalations/{case.pk}/decision?wait=5"
        )
        elapsed = time.monotonic() - started
        anonymous = await AsyncClient().get(f"{API}/escalations/{case.pk}/decision")
        return other, anonymous, elapsed

    other, anonymous, elapsed = run(scenario)
    assert other.status_code == 404
    assert other.json()["error"] == "not_found"
    assert elapsed < 1  # refused at once, not after the wait
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthorized"
    close_old_connections()
