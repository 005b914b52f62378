"""Races, on PostgreSQL with real separate connections (one per thread).

Inside one test transaction `select_for_update` and unique constraints pass trivially, so
these tests commit (`transaction=True`) and let two threads hit the same row at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connection
from django.test import Client

from escalations.audit import audit_verify
from escalations.models import AuditEvent, Customer, Escalation, Message, TaskType
from tests.conftest import bearer_client, load_fixture, post_json

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 5


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; each thread closes its own connection."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except BaseException as exc:  # the main thread re-raises it
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive(), "a request hung"
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return results


def poster(token: str, path: str, body: dict[str, Any]) -> Callable[[], tuple[int, Any]]:
    def call() -> tuple[int, Any]:
        response = post_json(bearer_client(token), path, body)
        return response.status_code, response.json()

    return call


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_same_package_posted_twice_at_once_is_one_case(
    token: str, task_types: dict[str, TaskType], round_: int
) -> None:
    package = load_fixture("pricing_acme") | {"external_id": f"race-{round_}"}

    answers = at_once(*(poster(token, "/escalations", package) for _ in range(2)))

    statuses = sorted(status for status, _ in answers)
    assert statuses == [200, 201], answers
    assert answers[0][1]["id"] == answers[1][1]["id"]
    assert Escalation.objects.filter(external_id=f"race-{round_}").count() == 1
    assert Customer.objects.filter(external_id="cust-acme-001").count() == 1
    assert Message.objects.count() == len(package["transcript"])
    assert AuditEvent.objects.filter(verb="escalation.received").count() == 1
    assert audit_verify()[1] is None


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_different_packages_under_one_key_at_once_one_wins_one_conflicts(
    token: str, task_types: dict[str, TaskType], round_: int
) -> None:
    first = load_fixture("pricing_acme") | {"external_id": f"clash-{round_}"}
    second = first | {"confidence": 0.3}

    answers = at_once(poster(token, "/escalations", first), poster(token, "/escalations", second))

    assert sorted(status for status, _ in answers) == [201, 409], answers
    winner = next(body for status, body in answers if status == 201)
    stored = Escalation.objects.get()
    assert stored.pk == winner["id"]
    assert stored.confidence == (0.72 if answers[0][0] == 201 else 0.3)
    assert audit_verify()[1] is None


def test_many_cases_at_once_keep_one_linear_audit_chain(
    token: str, task_types: dict[str, TaskType]
) -> None:
    packages = [
        load_fixture(name) | {"external_id": f"burst-{i}"}
        for i, name in enumerate(
            ["pricing_acme", "gas_leak", "human_request", "frustrated_customer"] * 2
        )
    ]

    answers = at_once(*(poster(token, "/escalations", p) for p in packages))

    assert [status for status, _ in answers] == [201] * len(packages)
    assert Escalation.objects.count() == len(packages)
    count, first_break = audit_verify()
    assert first_break is None
    seqs = list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))
    assert seqs == list(range(1, count + 1))


def test_messages_appended_at_once_get_distinct_consecutive_seqs(
    token: str, task_types: dict[str, TaskType]
) -> None:
    client: Client = bearer_client(token)
    case = post_json(client, "/escalations", load_fixture("pricing_acme")).json()
    path = f"/escalations/{case['id']}/messages"
    bodies = [{"messages": [{"role": "customer", "text": f"ping {i}"}]} for i in range(4)]

    answers = at_once(*(poster(token, path, body) for body in bodies))

    assert [status for status, _ in answers] == [201] * 4, answers
    seqs = list(
        Message.objects.filter(escalation_id=case["id"])
        .order_by("seq")
        .values_list("seq", flat=True)
    )
    assert seqs == list(range(1, 10))
    assert audit_verify()[1] is None


def test_cancel_racing_a_message_leaves_a_consistent_case(
    token: str, task_types: dict[str, TaskType]
) -> None:
    client: Client = bearer_client(token)
    case = post_json(client, "/escalations", load_fixture("pricing_acme")).json()
    message = {"messages": [{"role": "customer", "text": "Still there?"}]}

    (cancel_status, cancelled), (message_status, _) = at_once(
        poster(token, f"/escalations/{case['id']}/cancel", {"reason": "race"}),
        poster(token, f"/escalations/{case['id']}/messages", message),
    )

    assert cancel_status == 200 and cancelled["status"] == "cancelled"
    appended = Message.objects.filter(escalation_id=case["id"], source="appended").count()
    # Either the message got in before the cancel, or it was refused after it.
    assert (message_status, appended) in {(201, 1), (409, 0)}
    assert Escalation.objects.get(pk=case["id"]).status == "cancelled"
    assert audit_verify()[1] is None
