"""The benchmark baseline endpoint: absent unless BATON_BENCH_ENDPOINTS is on."""

from __future__ import annotations

import pytest
from django.test import Client
from ninja import NinjaAPI
from ninja.testing import TestClient

from escalations.api import IntegrationToken, api, bench_router
from escalations.models import AuditEvent, Escalation
from tests.conftest import load_fixture, post_json

pytestmark = pytest.mark.django_db


def test_the_noop_endpoint_does_not_exist_by_default(api_client: Client) -> None:
    response = post_json(api_client, "/bench/noop", load_fixture("refund_over_amount"))
    assert response.status_code == 404
    assert not any("bench" in path for path in api.get_openapi_schema()["paths"])


def _bench_client() -> TestClient:
    # The route is mounted when the API module is imported, so the "on" case is an API of
    # its own with the same authentication, as `api` has when the setting is on.
    bench_api = NinjaAPI(auth=IntegrationToken(), urls_namespace="api-bench-test")
    bench_api.add_router("/bench", bench_router())
    return TestClient(bench_api)


def test_when_on_it_parses_the_package_and_stores_nothing(token: str) -> None:
    package = load_fixture("refund_over_amount")
    client = _bench_client()
    response = client.post(
        "/bench/noop", json=package, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert response.json() == {"external_id": package["external_id"]}
    assert not Escalation.objects.exists()
    assert not AuditEvent.objects.filter(verb__startswith="escalation.").exists()


def test_when_on_it_checks_the_token_and_the_schema(token: str) -> None:
    client = _bench_client()
    package = load_fixture("refund_over_amount")
    assert client.post("/bench/noop", json=package).status_code == 401
    del package["summary"]
    response = client.post(
        "/bench/noop", json=package, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 422
