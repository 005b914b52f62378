"""Property-based fuzzing of the agent API from its own OpenAPI schema (schemathesis 4).

Every operation gets generated requests, valid and invalid, with a valid bearer token and
seeded task types; no answer may be a 5xx. The requests go through Django's WSGI handler
inside the test's transaction, so the database is the test database and is rolled back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, settings
from pydantic import TypeAdapter
from schemathesis.checks import not_a_server_error

from escalations.models import TaskType
from tests.conftest import API, load_fixture, post_json

AT = TypeAdapter(datetime | None)
CASES = ("pricing_acme", "gas_leak", "human_request", "order_status_l1")


def wsgi_app_keeping_the_test_connection() -> Any:
    """Django's WSGI handler, minus closing the connection at the start and end of a request.

    The test transaction lives on that connection; Django's test client skips the closing
    the same way, a bare WSGI handler needs it done here.
    """
    handler = get_wsgi_application()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        request_started.disconnect(close_old_connections)
        request_finished.disconnect(close_old_connections)
        try:
            response = handler(environ, start_response)
            try:
                return [b"".join(response)]
            finally:
                response.close()
        finally:
            request_started.connect(close_old_connections)
            request_finished.connect(close_old_connections)

    return app


@pytest.fixture
def seeded_cases(api_client: Client) -> list[int]:
    """Real cases in several states, so generated ids sometimes name one."""
    return [post_json(api_client, "/escalations", load_fixture(n)).json()["id"] for n in CASES]


@pytest.fixture
def api_schema(db: None, task_types: dict[str, TaskType]) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_wsgi(
        f"{API}/openapi.json", wsgi_app_keeping_the_test_connection()
    )


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_error_anywhere(case: Any, token: str, seeded_cases: list[int]) -> None:
    if "escalation_id" in (case.path_parameters or {}):
        generated = case.path_parameters["escalation_id"]
        # Half the ids name a real case of this integration, the rest whatever was generated.
        if isinstance(generated, int) and generated % 2 == 0:
            case.path_parameters["escalation_id"] = seeded_cases[generated % len(seeded_cases)]
    if isinstance(case.query, dict) and isinstance(case.query.get("wait"), int):
        # The long-poll is tested on its own; here a wait would only make the run slow.
        case.query["wait"] = 0

    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"}, checks=[not_a_server_error]
    )


def test_schema_lists_every_operation(client: Client) -> None:
    """The fuzzing above covers what the schema lists; make sure it lists the API."""
    operations = {
        (method.upper(), path)
        for path, item in client.get(f"{API}/openapi.json").json()["paths"].items()
        for method in item
    }

    assert {
        ("POST", f"{API}/evaluate"),
        ("POST", f"{API}/escalations"),
        ("GET", f"{API}/escalations/{{escalation_id}}"),
        ("POST", f"{API}/escalations/{{escalation_id}}/messages"),
        ("POST", f"{API}/escalations/{{escalation_id}}/cancel"),
        ("POST", f"{API}/escalations/{{escalation_id}}/feedback"),
        ("GET", f"{API}/task-types"),
    } <= operations
