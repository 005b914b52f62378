"""The decision back to the agent by webhook (DESIGN §7): outbox, signature, retries, sweep.

A real HTTP server on 127.0.0.1 plays the agent, so every request is a real POST that the
Standard Webhooks reference library must accept.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone
from standardwebhooks import Webhook

from console.roles import roles_ensure
from escalations import delivery as delivery_module
from escalations.decisions import DecisionInput, escalation_decide
from escalations.delivery import (
    LEASE,
    MAX_ATTEMPTS,
    RETRY_SCHEDULE,
    decision_payload,
    delivery_attempt,
    delivery_claim,
    delivery_sweep,
)
from escalations.models import (
    AuditEvent,
    Decision,
    DeliveryAttempt,
    Escalation,
    Integration,
    TaskType,
    WebhookDelivery,
)
from escalations.schemas import HandoffIn
from escalations.services import escalation_ingest
from tests.conftest import load_fixture

State = WebhookDelivery.State


# --- The agent's endpoint ----------------------------------------------------------------------


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Answers each POST with the next scripted status (then `default`), recording it."""

    url: str = ""
    script: list[int] = field(default_factory=list)
    default: int = 200
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, received: Received) -> int:
        with self.lock:
            self.requests.append(received)
            return self.script.pop(0) if self.script else self.default


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status = state.answer(
                Received(headers={k.lower(): v for k, v in self.headers.items()}, body=body)
            )
            if state.delay:
                threading.Event().wait(state.delay)
            reply = b"not today" if status >= 300 else b"ok"
            self.send_response(status)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/baton"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- Cases and decisions -------------------------------------------------------------------------


@pytest.fixture
def reviewer(db: None) -> Any:
    user = get_user_model().objects.create_user(
        username="rita", first_name="Rita", last_name="Reyes", password="x"
    )
    roles_ensure()["reviewer"].user_set.add(user)
    return user


_counter = iter(range(1, 1_000_000))


def make_case(integration: Integration, *, callback_url: str | None) -> Escalation:
    """A level-2 pricing case (the fixture package) waiting for a reviewer."""
    data = load_fixture("pricing_acme")
    data["external_id"] = f"conv-delivery-{next(_counter)}"
    data["callback_url"] = callback_url
    escalation = escalation_ingest(
        integration=integration, package=HandoffIn.model_validate(data)
    ).escalation
    assert escalation.level == 2 and escalation.is_open
    return escalation


def decide(case: Escalation, reviewer: Any, verb: str = "approve", **kwargs: Any) -> Decision:
    case.refresh_from_db()
    return escalation_decide(
        escalation_id=case.pk,
        reviewer=reviewer,
        data=DecisionInput(verb=verb, version=case.version, **kwargs),
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Callable[[timedelta], datetime]:
    """Move Baton's clock (django.utils.timezone.now) forward; returns the new now."""
    offset = [timedelta(0)]
    real_now = timezone.now

    def now() -> datetime:
        return real_now() + offset[0]

    monkeypatch.setattr(timezone, "now", now)

    def advance(by: timedelta) -> datetime:
        offset[0] += by
        return now()

    return advance


def verify(integration: Integration, received: Received) -> Any:
    """What the Standard Webhooks reference library makes of a request (raises if bad)."""
    return Webhook(integration.webhook_secret).verify(received.body, received.headers)


def audit_verbs(case: Escalation) -> list[str]:
    return list(
        AuditEvent.objects.filter(escalation=case, verb__startswith="delivery.")
        .order_by("seq")
        .values_list("verb", flat=True)
    )


# --- The outbox row ------------------------------------------------------------------------------


def test_a_final_decision_writes_one_outbox_row_with_the_decision_payload(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url="https://agent.example.com/hooks/case")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        decision = decide(
            case,
            reviewer,
            "edit",
            action_args={"discount_percent": 18, "price_lock_months": 12, "seats": 64},
            note="Counter at 18%.",
        )

    row = WebhookDelivery.objects.get(escalation=case)
    assert row.decision == decision
    assert row.url == "https://agent.example.com/hooks/case"  # the case's, not the default
    assert row.state == State.PENDING and row.attempts == 0
    assert row.webhook_id.startswith("msg_") and "." not in row.webhook_id
    assert row.next_attempt_at is not None and row.next_attempt_at <= timezone.now()
    assert row.payload == decision_payload(decision=decision)
    assert len(callbacks) >= 1  # the worker is only asked after commit

    payload = row.payload
    assert payload["type"] == row.event_type == "escalation.decided"
    assert payload["escalation_id"] == case.pk
    assert payload["external_id"] == case.external_id
    assert payload["status"] == "resolved"
    assert payload["decision"]["verb"] == "edit"
    assert payload["decision"]["instruction"] == "execute"
    assert payload["decision"]["action"] == {
        "name": "offer_discount",
        "args": {"discount_percent": 18, "price_lock_months": 12, "seats": 64},
    }
    assert payload["decision"]["diff"]["args"]["discount_percent"] == {"from": 22, "to": 18}
    assert payload["decision"]["note"] == "Counter at 18%."
    assert payload["decision"]["decided_by"] == "Rita Reyes"
    assert payload["decision"]["decided_at"].endswith("Z")


def test_the_integration_default_url_serves_when_the_case_has_none(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url=None)
    with django_capture_on_commit_callbacks(execute=False):
        decide(case, reviewer, "reject", reason="Outside the pricing policy.")
    row = WebhookDelivery.objects.get(escalation=case)
    assert row.url == integration.default_callback_url
    assert row.payload["decision"]["instruction"] == "do_not_execute"


def test_no_callback_url_means_no_delivery_row(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    integration.default_callback_url = ""
    integration.save(update_fields=["default_callback_url"])
    case = make_case(integration, callback_url=None)
    with django_capture_on_commit_callbacks(execute=True):
        decide(case, reviewer)
    assert not WebhookDelivery.objects.exists()
    assert Decision.objects.get(escalation=case).final


def test_an_escalation_is_not_sent_to_the_agent(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url="https://agent.example.com/hooks/case")
    with django_capture_on_commit_callbacks(execute=False):
        decide(case, reviewer, "escalate", escalate_to_supervisor=True, note="Needs a manager.")
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_outbox_row_rolls_back_with_the_decision_and_nothing_is_sent(
    integration: Integration, task_types: dict[str, TaskType], reviewer: Any, receiver: Receiver
) -> None:
    case = make_case(integration, callback_url=receiver.url)
    with pytest.raises(RuntimeError, match="after the decision"), transaction.atomic():
        decide(case, reviewer)
        assert WebhookDelivery.objects.filter(escalation=case).count() == 1
        raise RuntimeError("something failed after the decision, in the same transaction")

    assert not WebhookDelivery.objects.exists()
    assert not Decision.objects.exists()
    assert delivery_sweep() == 0
    assert receiver.requests == []


# --- Sending: signature, retries, 410 -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_500_then_200_delivers_signed_with_the_same_webhook_id(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    receiver: Receiver,
    clock: Callable[[timedelta], datetime],
) -> None:
    receiver.script = [500, 200]
    case = make_case(integration, callback_url=receiver.url)

    decision = decide(case, reviewer)  # commit → deliver_webhook (eager) → 500

    row = WebhookDelivery.objects.get(escalation=case)
    assert len(receiver.requests) == 1
    assert row.state == State.PENDING and row.attempts == 1
    assert row.last_status_code == 500 and row.last_error.startswith("HTTP 500")
    assert row.next_attempt_at is not None
    retry_in = row.next_attempt_at - timezone.now()
    assert timedelta(seconds=3) < retry_in <= RETRY_SCHEDULE[0]
    assert delivery_sweep() == 0  # not due yet: an early call does nothing
    assert len(receiver.requests) == 1

    clock(RETRY_SCHEDULE[0] + timedelta(seconds=1))
    assert delivery_sweep() == 1

    row.refresh_from_db()
    assert row.state == State.DELIVERED and row.delivered_at is not None
    assert row.attempts == 2 and row.last_status_code == 200 and row.last_error == ""
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == row.webhook_id
    assert first.body == second.body  # the same bytes every time
    for received in (first, second):
        assert verify(integration, received) == row.payload == decision_payload(decision=decision)
        assert received.headers["content-type"] == "application/json"
        assert received.headers["user-agent"].startswith("Baton-Webhooks/")
    log = list(row.attempt_log.values_list("number", "status_code"))
    assert log == [(1, 500), (2, 200)]
    assert all(a.duration_ms is not None for a in row.attempt_log.all())
    # Only the outcome is audited, not every attempt.
    assert audit_verbs(case) == ["delivery.delivered"]


def test_a_wrong_secret_does_not_verify(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        decide(case, reviewer)
    delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
    (received,) = receiver.requests
    other = Integration(webhook_secret="whsec_" + "QUJD" * 8)
    with pytest.raises(Exception, match="signature"):
        verify(other, received)
    tampered = Received(headers=received.headers, body=received.body.replace(b"Rita", b"Eve"))
    with pytest.raises(Exception, match="signature"):
        verify(integration, tampered)


def test_410_disables_the_endpoint_and_later_deliveries_are_created_disabled(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    receiver: Receiver,
    clock: Callable[[timedelta], datetime],
    django_capture_on_commit_callbacks: Any,
) -> None:
    receiver.script = [500, 410]
    waiting, gone, later = (make_case(integration, callback_url=receiver.url) for _ in range(3))
    with django_capture_on_commit_callbacks(execute=False):
        decide(waiting, reviewer)
        decide(gone, reviewer)
    waiting_row = WebhookDelivery.objects.get(escalation=waiting)
    gone_row = WebhookDelivery.objects.get(escalation=gone)

    assert delivery_attempt(delivery_id=waiting_row.pk).state == State.PENDING  # 500: retry
    outcome = delivery_attempt(delivery_id=gone_row.pk)
    assert outcome is not None and outcome.state == State.DISABLED and outcome.retry_in is None

    gone_row.refresh_from_db()
    assert gone_row.state == State.DISABLED and gone_row.last_status_code == 410
    assert gone_row.next_attempt_at is None
    integration.refresh_from_db()
    assert integration.disabled_callback_urls == [receiver.url]
    assert audit_verbs(gone) == ["delivery.disabled"]

    # A decision made afterwards keeps its row, created disabled, and is never sent.
    with django_capture_on_commit_callbacks(execute=True):
        decide(later, reviewer)
    later_row = WebhookDelivery.objects.get(escalation=later)
    assert later_row.state == State.DISABLED and later_row.attempts == 0
    assert "410" in later_row.last_error
    assert audit_verbs(later) == ["delivery.disabled"]

    # One that was waiting for its retry is not sent either.
    clock(timedelta(minutes=1))
    assert delivery_sweep() == 1
    waiting_row.refresh_from_db()
    assert waiting_row.state == State.DISABLED and waiting_row.attempts == 1
    assert len(receiver.requests) == 2


def test_retries_follow_the_backoff_schedule_then_give_up(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    receiver: Receiver,
    clock: Callable[[timedelta], datetime],
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver.default = 503
    published: list[str] = []
    monkeypatch.setattr(
        delivery_module,
        "publish_case_changed",
        lambda *, escalation_id, change, actor="", inboxes=True: published.append(change),
    )
    case = make_case(integration, callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        decide(case, reviewer)
    row = WebhookDelivery.objects.get(escalation=case)

    waits = []
    for number in range(1, MAX_ATTEMPTS + 1):
        row.refresh_from_db()
        now = clock(row.next_attempt_at - timezone.now())  # exactly when it is due
        outcome = delivery_attempt(delivery_id=row.pk)
        assert outcome is not None and outcome.attempt == number
        row.refresh_from_db()
        if row.state == State.PENDING:
            waits.append(row.next_attempt_at - now)
            # Not due a moment before its time: an early call does nothing.
            clock(row.next_attempt_at - timezone.now() - timedelta(seconds=1))
            assert delivery_attempt(delivery_id=row.pk) is None

    assert [round(w.total_seconds()) for w in waits] == [d.total_seconds() for d in RETRY_SCHEDULE]
    assert sum(RETRY_SCHEDULE, timedelta()) > timedelta(days=3)
    assert row.state == State.FAILED and row.next_attempt_at is None
    assert row.attempts == MAX_ATTEMPTS == row.attempt_log.count()
    assert row.last_status_code == 503
    assert len(receiver.requests) == MAX_ATTEMPTS
    assert {r.headers["webhook-id"] for r in receiver.requests} == {row.webhook_id}
    assert audit_verbs(case) == ["delivery.failed"]
    assert published == ["delivery"] * MAX_ATTEMPTS  # the briefing hears of every attempt
    assert delivery_sweep() == 0


def test_a_network_error_is_an_attempt_like_any_other(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Nothing listens on port 9 (discard) of localhost here: connection refused.
    case = make_case(integration, callback_url="http://127.0.0.1:9/hooks")
    with django_capture_on_commit_callbacks(execute=False):
        decide(case, reviewer)
    outcome = delivery_attempt(delivery_id=WebhookDelivery.objects.get().pk)
    assert outcome is not None and outcome.state == State.PENDING
    assert outcome.retry_in == RETRY_SCHEDULE[0].total_seconds()
    attempt = DeliveryAttempt.objects.get()
    assert attempt.status_code is None and "ConnectError" in attempt.error


# --- Nothing is lost -----------------------------------------------------------------------------


def test_a_lost_broker_message_is_sent_by_the_sweep(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    receiver: Receiver,
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):  # the .delay() never happens
        decide(case, reviewer)
    assert receiver.requests == []
    assert delivery_sweep() == 1
    assert WebhookDelivery.objects.get().state == State.DELIVERED
    assert len(receiver.requests) == 1


def test_a_worker_killed_after_claiming_loses_nothing(
    integration: Integration,
    task_types: dict[str, TaskType],
    reviewer: Any,
    receiver: Receiver,
    clock: Callable[[timedelta], datetime],
    django_capture_on_commit_callbacks: Any,
) -> None:
    case = make_case(integration, callback_url=receiver.url)
    with django_capture_on_commit_callbacks(execute=False):
        decide(case, reviewer)
    row = WebhookDelivery.objects.get()

    claim = delivery_claim(delivery_id=row.pk)  # the worker takes the lease ...
    assert claim is not None and claim.number == 1
    # ... and dies here: nothing posted, nothing recorded.
    row.refresh_from_db()
    assert row.state == State.PENDING and row.attempts == 1
    assert row.next_attempt_at > timezone.now() + LEASE - timedelta(seconds=5)
    assert delivery_claim(delivery_id=row.pk) is None  # the lease holds
    assert delivery_sweep() == 0

    clock(LEASE + timedelta(seconds=1))
    assert delivery_sweep() == 1

    row.refresh_from_db()
    assert row.state == State.DELIVERED and row.attempts == 2
    assert len(receiver.requests) == 1  # delivered exactly once
    assert verify(integration, receiver.requests[0]) == row.payload
    assert list(row.attempt_log.values_list("number", "status_code")) == [(2, 200)]
    clock(timedelta(hours=1))
    assert delivery_sweep() == 0
    assert len(receiver.requests) == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_attempts_send_once(
    integration: Integration, task_types: dict[str, TaskType], reviewer: Any, receiver: Receiver
) -> None:
    """Two workers handed the same delivery at once (a sweep and a retry): one posts."""
    integration.default_callback_url = ""
    integration.save(update_fields=["default_callback_url"])
    case = make_case(integration, callback_url=None)
    decide(case, reviewer)  # no URL: nothing sent on commit
    row = WebhookDelivery.objects.create(
        escalation=case,
        decision=Decision.objects.get(),
        webhook_id="msg_concurrent",
        event_type="escalation.decided",
        url=receiver.url,
        payload={"type": "escalation.decided"},
        next_attempt_at=timezone.now(),
    )
    receiver.delay = 0.3
    start = threading.Barrier(4)
    outcomes: list[Any] = []

    def worker() -> None:
        try:
            start.wait()
            outcomes.append(delivery_attempt(delivery_id=row.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert len(outcomes) == 4
    assert sum(o is not None for o in outcomes) == 1
    assert len(receiver.requests) == 1
    row.refresh_from_db()
    assert row.state == State.DELIVERED and row.attempts == 1
